//! The K-quants Q2_K, Q3_K, Q4_K, Q5_K and Q6_K: super-blocks of 256 with quantized sub-block
//! scales, ported from ggml's reference quantizers (`quantize_row_q*_K_ref` and their helpers
//! `make_qkx2_quants`, `make_q3_quants`, `make_qx_quants` in `ggml-quants.c`), the path
//! `llama-quantize` takes without an importance matrix. Every f32 operation is kept in C's
//! order (Rust, like ggml-base's plain x86-64 build, fuses no multiply-adds), so the blocks
//! come out byte for byte as llama.cpp's; the test against llama.cpp's own files holds it.
//!
//! With an importance matrix (`quant_weights`), Q2_K..Q6_K take ggml's weighted variants
//! (`quantize_row_q*_K_impl`) instead.

// Indexed loops mirror ggml's C line for line, which is what keeps the bytes identical.
#![allow(clippy::needless_range_loop)]

use half::f16;

/// Elements of a K-quant super-block.
pub const QK_K: usize = 256;
pub(super) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round half to even through the 1.5·2²³ trick (exact for |v| < 2²²).
pub(super) fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0f32).to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

pub(super) fn f16_round(v: f32) -> f16 {
    f16::from_f32(v)
}

/// `make_qkx2_quants`: a scale and a (negated) minimum for `x` with codes `0..=nmax`, the
/// weighted error minimised over `nstep + 1` trial scales. Returns `(scale, the_min)`.
#[allow(clippy::too_many_arguments)]
pub(super) fn make_qkx2_quants(nmax: i32, x: &[f32], weights: &[f32], l: &mut [u8], rmin: f32, rdelta: f32, nstep: i32, use_mad: bool) -> (f32, f32) {
    let n = x.len();
    let mut laux = [0u8; 32];
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let err = |d: f32| if use_mad { d.abs() } else { d * d };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min));
        l[i] = q.clamp(0, nmax) as u8;
        let diff = scale * l[i] as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let (w, lf) = (weights[i], q as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// `make_q3_quants` with `do_rmse`: symmetric codes in `-nmax..nmax` (stored `+ nmax`), refined
/// by coordinate descent on the x²-weighted error.
fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let n = x.len();
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = q as i8;
        let w = x[i] * x[i];
        sumlx += w * x[i] * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for i in 0..n {
            let w = x[i] * x[i];
            let li = l[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l[i] as i32 {
                    slx += w * x[i] * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for v in &mut l[..n] {
        *v += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// `make_qx_quants` with `rmse_type = 1`: symmetric codes refined over 18 trial scales around
/// `nmax`, weighted by `qw` (an importance matrix's) or by x².
pub(super) fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [i8], qw: Option<&[f32]>) -> f32 {
    let n = x.len();
    let weight = |i: usize| qw.map_or(x[i] * x[i], |w| w[i]);
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let mut iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = (q + nmax) as i8;
        let w = weight(i);
        sumlx += w * x[i] * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (mut slx, mut sl2) = (0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
            let w = weight(i);
            slx += w * x[i] * q as f32;
            sl2 += w * q as f32 * q as f32;
        }
        if sl2 > 0.0 && slx * slx > best * sl2 {
            for i in 0..n {
                l[i] = (nmax + nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1)) as i8;
            }
            scale = slx / sl2;
            best = scale * slx;
        }
    }
    scale
}

/// `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` of Q4_K / Q5_K.
pub(super) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// Q2_K: 16 sub-blocks of 16, 2-bit codes, 4-bit scale and min each.
pub fn q2_k_row(x: &[f32], out: &mut Vec<u8>) {
    for x in x.chunks_exact(QK_K) {
        let mut l = [0u8; QK_K];
        let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..16 {
            let sub = &x[16 * j..16 * j + 16];
            let weights: [f32; 16] = std::array::from_fn(|l| sub[l].abs());
            (scales[j], mins[j]) = make_qkx2_quants(3, sub, &weights, &mut l[16 * j..], -0.5, 0.1, 15, true);
            max_scale = max_scale.max_c(scales[j]);
            max_min = max_min.max_c(mins[j]);
        }
        let mut sc = [0u8; 16];
        let d = if max_scale > 0.0 {
            let iscale = 15.0 / max_scale;
            for j in 0..16 {
                sc[j] = nearest_int(iscale * scales[j]) as u8;
            }
            f16_round(max_scale / 15.0)
        } else {
            f16_round(0.0)
        };
        let dmin = if max_min > 0.0 {
            let iscale = 15.0 / max_min;
            for j in 0..16 {
                sc[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
            }
            f16_round(max_min / 15.0)
        } else {
            f16_round(0.0)
        };
        for j in 0..16 {
            let dj = d.to_f32() * (sc[j] & 0xf) as f32;
            if dj == 0.0 {
                continue;
            }
            let dm = dmin.to_f32() * (sc[j] >> 4) as f32;
            for ii in 0..16 {
                l[16 * j + ii] = nearest_int((x[16 * j + ii] + dm) / dj).clamp(0, 3) as u8;
            }
        }
        out.extend(sc);
        push_2bit(&l, out);
        out.extend(d.to_le_bytes());
        out.extend(dmin.to_le_bytes());
    }
}

/// Codes `j, j+32, j+64, j+96` of each 128 share a byte, two bits each.
pub(super) fn push_2bit(l: &[u8], out: &mut Vec<u8>) {
    for j in (0..QK_K).step_by(128) {
        for i in 0..32 {
            out.push(l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6));
        }
    }
}

/// `if (v > m) m = v;` as C writes it (NaN-blind, unlike `f32::max`).
trait MaxC {
    fn max_c(self, v: f32) -> f32;
}

impl MaxC for f32 {
    fn max_c(self, v: f32) -> f32 {
        if v > self {
            v
        } else {
            self
        }
    }
}

/// Q3_K: 16 sub-blocks of 16, 3-bit codes (high bit in `hmask`), 6-bit signed scales.
pub fn q3_k_row(x: &[f32], out: &mut Vec<u8>) {
    for x in x.chunks_exact(QK_K) {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..]);
            if scales[j].abs() > amax {
                amax = scales[j].abs();
                max_scale = scales[j];
            }
        }
        let mut sc = [0u8; 12];
        let d = if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for j in 0..16 {
                // C stores nearest_int into an int8_t before clamping.
                let q = (nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) as i32 + 32;
                if j < 8 {
                    sc[j] = (q & 0xf) as u8;
                } else {
                    sc[j - 8] |= ((q & 0xf) << 4) as u8;
                }
                sc[j % 4 + 8] |= ((q >> 4) << (2 * (j / 4))) as u8;
            }
            f16_round(1.0 / iscale)
        } else {
            f16_round(0.0)
        };
        q3_k_finish(x, &sc, d, l, out);
    }
}

/// The end of Q3_K (reference and weighted alike): codes re-rounded against the stored
/// 6-bit scales (sub-blocks whose scale is 0 keep `l`), high bits into `hmask`, then packed.
pub(super) fn q3_k_finish(x: &[f32], sc: &[u8; 12], d: f16, mut l: [i8; QK_K], out: &mut Vec<u8>) {
    for j in 0..16 {
        let low = if j < 8 { sc[j] & 0xf } else { sc[j - 8] >> 4 };
        let s = (low | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i32 - 32;
        let dj = d.to_f32() * s as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dj).clamp(-4, 3) + 4) as i8;
        }
    }
    let mut hmask = [0u8; QK_K / 8];
    let mut codes = [0u8; QK_K];
    for j in 0..QK_K {
        let mut c = l[j] as u8;
        if c > 3 {
            hmask[j % 32] |= 1 << (j / 32);
            c -= 4;
        }
        codes[j] = c;
    }
    out.extend(hmask);
    push_2bit(&codes, out);
    out.extend(sc);
    out.extend(d.to_le_bytes());
}

/// Q4_K and Q5_K share their scales: 8 sub-blocks of 32, 6-bit scale and min packed in 12 bytes.
/// Returns `(d, dmin, scales, codes)` with codes in `0..=nmax`.
fn k4_scales(x: &[f32], nmax: i32, rmin: f32, nstep: i32) -> (f16, f16, [u8; 12], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let sub = &x[32 * j..32 * j + 32];
        let sum_x2 = sub.iter().fold(0.0f32, |s, v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|l| av_x + sub[l].abs());
        (scales[j], mins[j]) = make_qkx2_quants(nmax, sub, &weights, &mut l[32 * j..], rmin, 0.1, nstep, false);
        max_scale = max_scale.max_c(scales[j]);
        max_min = max_min.max_c(mins[j]);
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut sc = [0u8; 12];
    for j in 0..8 {
        // C: `uint8_t ls = nearest_int(...)` truncates to a byte before `MIN(63, ls)`.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    (f16_round(max_scale / 63.0), f16_round(max_min / 63.0), sc, l)
}

/// The end of Q4_K (`nmax` 15) and Q5_K (31), reference and weighted alike: codes re-rounded
/// against the stored 6-bit scales and mins (sub-blocks whose scale is 0 keep `l`), then packed.
pub(super) fn k4_finish(x: &[f32], d: f16, dmin: f16, sc: &[u8; 12], mut l: [u8; QK_K], nmax: i32, out: &mut Vec<u8>) {
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, sc);
        let dj = d.to_f32() * s as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
    out.extend(d.to_le_bytes());
    out.extend(dmin.to_le_bytes());
    out.extend(sc);
    if nmax == 15 {
        for j in (0..QK_K).step_by(64) {
            out.extend((0..32).map(|i| l[j + i] | (l[j + i + 32] << 4)));
        }
        return;
    }
    // Q5_K: the fifth bits in `qh`, two per 64-value chunk.
    let (mut qh, mut ql) = ([0u8; 32], [0u8; 128]);
    for (n, chunk) in (0..QK_K).step_by(64).enumerate() {
        for j in 0..32 {
            let (mut l1, mut l2) = (l[chunk + j], l[chunk + j + 32]);
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= 1 << (2 * n);
            }
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= 2 << (2 * n);
            }
            ql[32 * n + j] = l1 | (l2 << 4);
        }
    }
    out.extend(qh);
    out.extend(ql);
}

/// Q4_K: 8 sub-blocks of 32, 4-bit codes, 6-bit scale and min each.
pub fn q4_k_row(x: &[f32], out: &mut Vec<u8>) {
    for x in x.chunks_exact(QK_K) {
        let (d, dmin, sc, l) = k4_scales(x, 15, -1.0, 20);
        k4_finish(x, d, dmin, &sc, l, 15, out);
    }
}

/// Q5_K: as Q4_K with 5-bit codes, the fifth bits in `qh`.
pub fn q5_k_row(x: &[f32], out: &mut Vec<u8>) {
    for x in x.chunks_exact(QK_K) {
        let (d, dmin, sc, l) = k4_scales(x, 31, -0.5, 15);
        k4_finish(x, d, dmin, &sc, l, 31, out);
    }
}

/// Q6_K: 16 sub-blocks of 16, 6-bit codes, 8-bit signed scales.
pub fn q6_k_row(x: &[f32], out: &mut Vec<u8>) {
    q6_k_blocks(x, None, out);
}

/// Q6_K, its sub-block scales weighted by an importance matrix `qw` (one per column) when
/// given (`quantize_row_q6_K_impl`), by x² otherwise.
pub(super) fn q6_k_blocks(x: &[f32], qw: Option<&[f32]>, out: &mut Vec<u8>) {
    for (b, x) in x.chunks_exact(QK_K).enumerate() {
        let qw = qw.map(|w| &w[b * QK_K..(b + 1) * QK_K]);
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let (mut max_scale, mut max_abs) = (0.0f32, 0.0f32);
        for ib in 0..16 {
            scales[ib] = make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..], qw.map(|w| &w[16 * ib..16 * ib + 16]));
            if scales[ib].abs() > max_abs {
                max_abs = scales[ib].abs();
                max_scale = scales[ib];
            }
        }
        if max_abs < GROUP_MAX_EPS {
            out.extend([0u8; 210]);
            continue;
        }
        let iscale = -128.0 / max_scale;
        let d = f16_round(1.0 / iscale);
        let mut sc = [0i8; 16];
        for ib in 0..16 {
            sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
        }
        for j in 0..16 {
            let dj = d.to_f32() * sc[j] as f32;
            if dj == 0.0 {
                continue;
            }
            for ii in 0..16 {
                l[16 * j + ii] = (nearest_int(x[16 * j + ii] / dj).clamp(-32, 31) + 32) as i8;
            }
        }
        let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
        for (h, j) in (0..QK_K).step_by(128).enumerate() {
            for i in 0..32 {
                let q = |k: usize| l[j + i + k] as u8;
                ql[64 * h + i] = (q(0) & 0xf) | ((q(64) & 0xf) << 4);
                ql[64 * h + i + 32] = (q(32) & 0xf) | ((q(96) & 0xf) << 4);
                qh[32 * h + i] = (q(0) >> 4) | ((q(32) >> 4) << 2) | ((q(64) >> 4) << 4) | ((q(96) >> 4) << 6);
            }
        }
        out.extend(ql);
        out.extend(qh);
        out.extend(sc.map(|s| s as u8));
        out.extend(d.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_core::weights::gguf::quants::{dequantize, GgmlType};

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, -3.7].map(nearest_int), [0, 2, 2, 0, -2, 2, -4]);
    }

    #[test]
    fn k_quant_blocks_have_their_size_and_dequantize_close() {
        let x: Vec<f32> = (0..512).map(|i| (((i * 7919) % 1013) as f32 / 1013.0 - 0.5) * (1.0 + (i % 5) as f32)).collect();
        let cases: [(GgmlType, super::super::RowQuantizer, f32); 5] = [
            (GgmlType::Q2_K, q2_k_row, 0.45),
            (GgmlType::Q3_K, q3_k_row, 0.25),
            (GgmlType::Q4_K, q4_k_row, 0.12),
            (GgmlType::Q5_K, q5_k_row, 0.06),
            (GgmlType::Q6_K, q6_k_row, 0.03),
        ];
        let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
        for (ty, quantize, bound) in cases {
            let mut bytes = vec![];
            quantize(&x, &mut bytes);
            assert_eq!(bytes.len(), 2 * ty.block_layout().unwrap().1, "{}", ty.name());
            let back = dequantize(ty, &bytes);
            let err = (back.iter().zip(&x).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / x.len() as f32).sqrt();
            // Relative RMS error shrinks about 2x per bit; bounds sit ~1.5x above what each type gives.
            assert!(err / rms < bound, "{}: relative rms error {}", ty.name(), err / rms);
        }
    }
}
