//! Attention of short forwards with a cache (decode steps, speculative verification), alone or
//! packed with other sequences, on the CPU backend, reading and writing each sequence's cache
//! buffers in place: no strided cache
//! view is copied to contiguous memory, no per-head tensor is split, narrowed or joined, and
//! the rotary embedding runs once over the packed row's rows.
//!
//! The arithmetic is what [`super::Attention`]'s plain kernel computes: the rotary embedding
//! as [`super::apply_rotary`] does it (`x·cos + rotate_half(x)·sin`, each product and the sum
//! rounded in f32, so the cached keys are the same bits), then per query head
//! `softmax(q·kᵀ·scale)·v` over the keys the mask leaves visible, in f32 with its own
//! summation order. A sequence's short forwards take this path whether it runs alone
//! ([`super::Attention::heads`] with a cache) or packed with others, so on the CPU a sequence
//! gets the same bits either way: the 8-bit activations of the GGML kernels would turn any
//! difference of summation order into a flipped code and a visible change of the logits.

use rayon::prelude::*;

use crate::quant::kernels::multiversion;

/// Segments up to this many new tokens run here; longer ones (prompt chunks) go through the
/// backend's fused attention, whose matrix products pay at that size.
pub(crate) const HOST_MAX_LEN: usize = 8;

/// The shape of one layer's attention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
}

/// `x` (`[rows, heads, d]` row-major) rotated in place by the tables `cos`, `sin`
/// (`[rows, d]`), as [`super::apply_rotary`] computes it.
pub(crate) fn rotate(x: &mut [f32], heads: usize, d: usize, cos: &[f32], sin: &[f32]) {
    let half = d / 2;
    for ((row, c), s) in x.chunks_exact_mut(heads * d).zip(cos.chunks_exact(d)).zip(sin.chunks_exact(d)) {
        for head in row.chunks_exact_mut(d) {
            for i in 0..half {
                let (x1, x2) = (head[i], head[i + half]);
                head[i] = x1 * c[i] + (-x2) * s[i];
                head[i + half] = x2 * c[i + half] + x1 * s[i + half];
            }
        }
    }
}

/// One segment's attention: writes its rotated keys and values (`k`, `v`: `[len, kv_heads, d]`)
/// into the cache buffers (`[kv_heads, capacity, d]`) at `past..past + len`, then attends its
/// queries (`q`: `[len, heads, d]`) over positions `0..past + len` into `out` (`[len, heads, d]`).
/// `mask` (`[len, past + len]`, true = hidden) is the layer's; `None` shows query `i` every key
/// up to its own position. Returns false (and touches nothing) when the buffers do not hold
/// `[kv_heads, capacity, d]`, the new positions do not fit or the mask has another size.
#[allow(clippy::too_many_arguments)]
pub(crate) fn segment(
    g: Geometry,
    past: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: Option<&[bool]>,
    keys: &mut [f32],
    values: &mut [f32],
    capacity: usize,
    out: &mut [f32],
) -> bool {
    let (h, kv, d) = (g.heads, g.kv_heads, g.head_dim);
    let len = q.len() / (h * d);
    let total = past + len;
    let need = kv * capacity * d;
    if keys.len() < need || values.len() < need || total > capacity || h % kv != 0 || mask.is_some_and(|m| m.len() != len * total) {
        return false;
    }
    for (i, (kr, vr)) in k.chunks_exact(kv * d).zip(v.chunks_exact(kv * d)).enumerate() {
        for head in 0..kv {
            let at = (head * capacity + past + i) * d;
            keys[at..at + d].copy_from_slice(&kr[head * d..(head + 1) * d]);
            values[at..at + d].copy_from_slice(&vr[head * d..(head + 1) * d]);
        }
    }
    let scale = (d as f64).powf(-0.5) as f32;
    let rep = h / kv;
    let (keys, values) = (&*keys, &*values);
    // One task per (query, head): `out` is `[len, heads, d]`, so chunk `t` is query t / h, head t % h.
    let task = |scores: &mut Vec<f32>, (t, o): (usize, &mut [f32])| {
        let (i, head) = (t / h, t % h);
        // Keys 0..=last are scored; those the mask hides get no weight.
        let hidden = mask.map(|m| &m[i * total..(i + 1) * total]);
        let last = hidden.map_or(past + i, |m| m.iter().rposition(|&x| !x).unwrap_or(0));
        let group = head / rep;
        let qh = &q[(i * h + head) * d..(i * h + head + 1) * d];
        let ks = &keys[group * capacity * d..(group * capacity + last + 1) * d];
        let vs = &values[group * capacity * d..(group * capacity + last + 1) * d];
        attend_one(qh, ks, vs, hidden.unwrap_or(&[]), scale, scores, o);
    };
    if len * h * total * d >= PARALLEL_WORK {
        out.par_chunks_mut(d).enumerate().for_each_init(Vec::new, task);
    } else {
        let mut scores = Vec::new();
        out.chunks_mut(d).enumerate().for_each(|t| task(&mut scores, t));
    }
    true
}

/// Multiply-adds of query·key products (queries × heads × keys × width) from which a segment's
/// heads run on the pool's threads: below, a fork-join costs more than the work it splits.
const PARALLEL_WORK: usize = 1 << 16;

multiversion! {
    fn attend_one(q: &[f32], keys: &[f32], values: &[f32], hidden: &[bool], scale: f32, scores: &mut Vec<f32>, out: &mut [f32]) {
        let d = q.len();
        scores.clear();
        scores.resize(keys.len() / d, 0.0);
        products::scores(q, keys, scale, scores);
        for (s, _) in scores.iter_mut().zip(hidden).filter(|(_, &h)| h) {
            *s = f32::NEG_INFINITY;
        }
        let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        out.fill(0.0);
        if max == f32::NEG_INFINITY {
            return;
        }
        let mut sum = 0f32;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        products::weighted_sum(scores, values, out);
        let inv = 1.0 / sum;
        for o in out.iter_mut() {
            *o *= inv;
        }
    }
}

/// The two products of attention for one query: its scores against every key, and the
/// weighted sum of the values. On x86-64 with AVX2 (heads a multiple of 8 wide) eight keys are
/// scored at a time, each in its own register, and the eight sums reduced together, and the
/// output row stays in registers while the values stream past; elsewhere plain loops.
mod products {
    use crate::quant::kernels::dot;

    /// `scores[j] = (q · keys[j]) · scale`; keys `[n, d]`, scores `[n]`.
    pub(super) fn scores(q: &[f32], keys: &[f32], scale: f32, scores: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if q.len().is_multiple_of(8) && crate::quant::kernels::has_avx2() {
            // SAFETY: AVX2 and FMA checked at run time; `keys` holds `scores.len()` rows of `q.len()`.
            return unsafe { x86::scores(q, keys, scale, scores) };
        }
        for (s, k) in scores.iter_mut().zip(keys.chunks_exact(q.len())) {
            *s = dot(q, k) * scale;
        }
    }

    /// `out = Σ_j p[j] · values[j]`; values `[n, d]`, out `[d]`.
    pub(super) fn weighted_sum(p: &[f32], values: &[f32], out: &mut [f32]) {
        let d = out.len();
        #[cfg(target_arch = "x86_64")]
        if d.is_multiple_of(8) && crate::quant::kernels::has_avx2() {
            // SAFETY: as above; `values` holds `p.len()` rows of `d`.
            return unsafe { x86::weighted_sum(p, values, out) };
        }
        for (&pj, vrow) in p.iter().zip(values.chunks_exact(d)) {
            for (o, &x) in out.iter_mut().zip(vrow) {
                *o += pj * x;
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_op_in_unsafe_fn)]
    mod x86 {
        use std::arch::x86_64::*;

        /// The eight lane sums of `a[0..8]` as one register: lane `t` is `Σ a[t]`.
        #[inline(always)]
        unsafe fn sums8(a: &[__m256; 8]) -> __m256 {
            let t: [__m256; 4] = std::array::from_fn(|i| _mm256_hadd_ps(a[2 * i], a[2 * i + 1]));
            let (u0, u1) = (_mm256_hadd_ps(t[0], t[1]), _mm256_hadd_ps(t[2], t[3]));
            _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(u0, u1), _mm256_permute2f128_ps::<0x31>(u0, u1))
        }

        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn scores(q: &[f32], keys: &[f32], scale: f32, scores: &mut [f32]) {
            let d = q.len();
            let n = scores.len();
            debug_assert!(keys.len() >= n * d && d % 8 == 0);
            let (qp, kp) = (q.as_ptr(), keys.as_ptr());
            let full = n / 8 * 8;
            for j0 in (0..full).step_by(8) {
                let mut acc = [_mm256_setzero_ps(); 8];
                for c in (0..d).step_by(8) {
                    let qv = _mm256_loadu_ps(qp.add(c));
                    for (t, a) in acc.iter_mut().enumerate() {
                        *a = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kp.add((j0 + t) * d + c)), *a);
                    }
                }
                _mm256_storeu_ps(scores.as_mut_ptr().add(j0), _mm256_mul_ps(sums8(&acc), _mm256_set1_ps(scale)));
            }
            for j in full..n {
                let mut acc = [_mm256_setzero_ps(); 8];
                for c in (0..d).step_by(8) {
                    acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(qp.add(c)), _mm256_loadu_ps(kp.add(j * d + c)), acc[0]);
                }
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), sums8(&acc));
                scores[j] = lanes[0] * scale;
            }
        }

        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn weighted_sum(p: &[f32], values: &[f32], out: &mut [f32]) {
            let d = out.len();
            debug_assert!(values.len() >= p.len() * d && d % 8 == 0);
            // Four registers (32 columns) of the output at a time, over every value row.
            for c0 in (0..d).step_by(32) {
                let width = (d - c0).min(32) / 8;
                let mut acc = [_mm256_setzero_ps(); 4];
                for (j, &pj) in p.iter().enumerate() {
                    let pv = _mm256_set1_ps(pj);
                    let row = values.as_ptr().add(j * d + c0);
                    for (t, a) in acc.iter_mut().enumerate().take(width) {
                        *a = _mm256_fmadd_ps(pv, _mm256_loadu_ps(row.add(8 * t)), *a);
                    }
                }
                for (t, a) in acc.iter().enumerate().take(width) {
                    let o = out.as_mut_ptr().add(c0 + 8 * t);
                    _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), *a));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_attention_is_softmax_attention() {
        // Heads 12 wide run the plain loops; 16 wide the AVX2 products (where the CPU has them),
        // with 21 keys: two blocks of eight and a tail.
        for (d, past, len, window) in [(12, 6, 3, 5), (16, 18, 3, 40)] {
            segment_case(d, past, len, window);
        }
    }

    /// Against the textbook softmax attention in f64, with a window and grouped heads.
    fn segment_case(d: usize, past: usize, len: usize, window: usize) {
        let g = Geometry { heads: 4, kv_heads: 2, head_dim: d };
        let capacity = 32;
        let val = |i: usize| ((i * 37 % 101) as f32 / 50.0) - 1.0;
        let mut keys: Vec<f32> = (0..2 * capacity * d).map(|i| val(i + 3)).collect();
        let mut values: Vec<f32> = (0..2 * capacity * d).map(|i| val(i + 11)).collect();
        let q: Vec<f32> = (0..len * 4 * d).map(|i| val(i + 29)).collect();
        let k: Vec<f32> = (0..len * 2 * d).map(|i| val(i + 41)).collect();
        let v: Vec<f32> = (0..len * 2 * d).map(|i| val(i + 53)).collect();
        // Causal with a window, and key 1 hidden as padding.
        let total = past + len;
        let hidden = |i: usize, j: usize| j > past + i || past + i >= j + window || j == 1;
        let mask: Vec<bool> = (0..len).flat_map(|i| (0..total).map(move |j| hidden(i, j))).collect();
        let mut out = vec![0f32; q.len()];
        assert!(segment(g, past, &q, &k, &v, Some(&mask), &mut keys, &mut values, capacity, &mut out));
        for i in 0..len {
            for head in 0..4 {
                let group = head / 2;
                let row = |buf: &[f32], j: usize| buf[(group * capacity + j) * d..(group * capacity + j + 1) * d].to_vec();
                let qh = &q[(i * 4 + head) * d..(i * 4 + head + 1) * d];
                let visible: Vec<usize> = (0..total).filter(|&j| !hidden(i, j)).collect();
                let s: Vec<f64> = visible
                    .iter()
                    .map(|&j| row(&keys, j).iter().zip(qh).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() / (d as f64).sqrt())
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..d {
                    let want: f64 = visible.iter().zip(&e).map(|(&j, w)| w / z * row(&values, j)[c] as f64).sum();
                    let got = out[(i * 4 + head) * d + c] as f64;
                    assert!((got - want).abs() < 1e-5, "d {d} query {i} head {head} [{c}]: {got} vs {want}");
                }
            }
        }
        // The new keys landed at past..past + len of their head's rows.
        assert_eq!(&keys[(capacity + past) * d..(capacity + past + 1) * d], &k[d..2 * d]);
    }

    /// The host rotation is Burn's `apply_rotary`, bit for bit (keys cached by a long prompt's
    /// Burn path and by later host steps must agree).
    #[cfg(feature = "flex")]
    #[test]
    fn rotate_is_apply_rotary_bit_for_bit() {
        use crate::config::{RopeConfig, RopeScaling};
        use crate::nn::{apply_rotary, RotaryEmbedding};
        use burn::tensor::{DType, Tensor, TensorData};
        type F = burn::backend::Flex;
        let (heads, rows, d) = (3, 5, 16);
        let rope = RotaryEmbedding::new(&RopeConfig { rope_theta: 10_000.0, scaling: RopeScaling::Default }, d);
        let device = Default::default();
        let tables = rope.tables::<F>(&[vec![0, 7, 8, 31, 300]], DType::F32, &device);
        let x: Vec<f32> = (0..heads * rows * d).map(|i| ((i * 37 % 101) as f32 / 25.0) - 2.0).collect();
        // Burn: [1, heads, rows, d]; host: [rows, heads, d].
        let burn = apply_rotary(Tensor::<F, 4>::from_data(TensorData::new(x.clone(), [1, heads, rows, d]), &device), &tables);
        let burn = burn.swap_dims(1, 2).into_data().convert::<f32>().into_vec::<f32>().unwrap();
        let mut host: Vec<f32> = (0..rows).flat_map(|r| (0..heads).flat_map(move |h| (0..d).map(move |c| (h, r, c)))).map(|(h, r, c)| x[(h * rows + r) * d + c]).collect();
        let table = |t: &Tensor<F, 4>| t.clone().into_data().convert::<f32>().into_vec::<f32>().unwrap();
        rotate(&mut host, heads, d, &table(&tables.cos), &table(&tables.sin));
        assert!(host == burn, "host rotation differs from apply_rotary");
    }

    #[test]
    fn a_segment_past_the_capacity_or_with_a_wrong_mask_is_refused() {
        let g = Geometry { heads: 2, kv_heads: 1, head_dim: 4 };
        let (mut keys, mut values, mut out) = (vec![0f32; 8], vec![0f32; 8], vec![0f32; 8]);
        assert!(!segment(g, 2, &[0.0; 8], &[0.0; 4], &[0.0; 4], None, &mut keys, &mut values, 2, &mut out));
        // A mask of the wrong size.
        let (mut keys, mut values) = (vec![0f32; 16], vec![0f32; 16]);
        assert!(!segment(g, 1, &[0.0; 8], &[0.0; 4], &[0.0; 4], Some(&[false; 3]), &mut keys, &mut values, 4, &mut out));
    }
}
