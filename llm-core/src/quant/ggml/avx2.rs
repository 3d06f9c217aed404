//! AVX2 row dots: the arithmetic of [`super::dot`] with 32 weight codes unpacked to bytes in
//! one register and multiplied with the 32 activation codes by `vpmaddubsw` (unsigned weight
//! byte × signed activation byte, adjacent pairs summed to i16) and `vpmaddwd` (pairs of i16
//! summed to i32, optionally times a per-16-value scale), as llama.cpp's AVX2 kernels do.
//!
//! Every weight code is made unsigned first: a format with signed codes `q − o` (Q4_0's 8,
//! Q5_0's 16, Q3_K's 4, Q6_K's 32) is computed as `Σ q·x − o·Σ x`, with `Σ x` the activation
//! row's half-block sums. The integer sums per 32 (or 16) values are exact, so each kernel
//! equals the scalar one up to the order of the per-block f32 products.
//!
//! Overflow: `vpmaddubsw` saturates at ±32767; its largest pair here is 2·63·127 = 16002
//! (Q6_K) and for Q8_0 (signed × signed, through `|w|` and `sign(x, w)`) 2·128·127 = 32512.

//!
//! # Safety
//! Every kernel needs AVX2, FMA and F16C ([`available`]), a weight row of whole blocks of its
//! type, and an activation row quantized from as many values as the weight row holds.

#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use super::act::{ActRow, QA};
use crate::weights::gguf::quants::q3_k_scales;

/// Whether this CPU runs these kernels (AVX2, FMA, F16C), checked once.
pub fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c"))
}

/// The f16 at `b[i..i + 2]` in all eight lanes. Broadcast before the conversion: a scalar
/// `vcvtph2ps` from memory is emitted as a `vpinsrw` merging into whatever register holds the
/// running sum, which chains every block of a row on the previous one.
#[inline(always)]
pub(super) unsafe fn f16(b: &[u8], i: usize) -> __m256 {
    let bits = u16::from_le_bytes([b[i], b[i + 1]]);
    _mm256_cvtph_ps(_mm_set1_epi16(bits as i16))
}

/// `v` in all eight lanes.
#[inline(always)]
pub(super) unsafe fn splat(v: f32) -> __m256 {
    _mm256_set1_ps(v)
}

/// Lane 0 of `v`.
#[inline(always)]
unsafe fn lane0(v: __m256) -> f32 {
    _mm256_cvtss_f32(v)
}

/// 32 activation codes of block `b`.
#[inline(always)]
unsafe fn act(a: &ActRow, b: usize) -> __m256i {
    debug_assert!(QA * b + QA <= a.qs.len());
    _mm256_loadu_si256(a.qs.as_ptr().add(QA * b).cast())
}

/// 16 bytes of nibbles -> 32 bytes: low nibbles (values 0..16), then high (16..32). The 16
/// bytes are broadcast to both lanes by the load and the upper lane shifted by 4 in 32-bit
/// units (`vpsrlvd`), which keeps the unpacking off the shuffle port.
#[inline(always)]
unsafe fn nibbles(p: &[u8]) -> __m256i {
    debug_assert!(p.len() >= 16);
    let both = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.as_ptr().cast()));
    let shifted = _mm256_srlv_epi32(both, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0));
    _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F))
}

/// `[dₓ, dₓ·Σqₓ]` of block `b` in lanes 0 and 1.
#[inline(always)]
unsafe fn act_ds(a: &ActRow, b: usize) -> __m128 {
    debug_assert!(b < a.ds.len());
    _mm_castpd_ps(_mm_load_sd(a.ds.as_ptr().add(b).cast()))
}

/// The two f16 at `b[i..i + 4]` in lanes 0 and 1.
#[inline(always)]
unsafe fn f16_pair(b: &[u8], i: usize) -> __m128 {
    let bits = u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))
}

/// Bit `j` of the little-endian u32 at `p` -> byte `j` = 0x10 where set (Q5's fifth bits).
#[inline(always)]
unsafe fn fifth_bits(p: &[u8]) -> __m256i {
    let x = u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as i32;
    let shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x), shuf);
    let bit = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    _mm256_and_si256(_mm256_cmpeq_epi8(bit, _mm256_set1_epi8(-1)), _mm256_set1_epi8(0x10))
}

/// Eight i32 lanes of `Σ₄ u·s` (unsigned bytes `u` times signed bytes `s`, four adjacent
/// bytes per lane), by one instruction set. Both give the same exact sums.
pub(super) trait Dot4 {
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i;

    /// `acc` plus eight i32 lanes of `Σ₂ p·s` (signed 16-bit pairs; `vpmaddwd` + `vpaddd`).
    #[inline(always)]
    unsafe fn madd_acc(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
    }

    /// Bit `j` of the little-endian u32 at `p` -> byte `j` = 0x10 where set (Q5's fifth bits).
    #[inline(always)]
    unsafe fn fifth_bits(p: &[u8]) -> __m256i {
        fifth_bits(p)
    }
}

/// `vpmaddubsw` then `vpmaddwd` by ones (pairs are at most 2·128·127, below saturation).
pub(super) struct Avx2;
impl Dot4 for Avx2 {
    #[inline(always)]
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }
}

/// `vpdpbusd` into zero (AVX-512 VNNI on 256-bit registers): one instruction for the two.
pub(super) struct Vnni;
impl Dot4 for Vnni {
    #[inline(always)]
    unsafe fn dot(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
    }

    /// One `vpdpwssd` (AVX-512 VNNI): the same exact sums.
    #[inline(always)]
    unsafe fn madd_acc(acc: __m256i, p: __m256i, s: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, p, s)
    }

    /// The mask register made bytes by one `vpmovm2b` (AVX-512 BW/VL).
    #[inline(always)]
    unsafe fn fifth_bits(p: &[u8]) -> __m256i {
        let bits = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
        _mm256_and_si256(_mm256_movm_epi8(bits), _mm256_set1_epi8(0x10))
    }
}

/// Whether this CPU runs the `_vnni` kernels (those of [`available`] and AVX-512 F/VL/BW/VNNI),
/// checked once.
pub fn vnni_available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        available()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    })
}

/// Defines a kernel twice from one body generic over the integer dot `D`: `$name` with
/// `vpmaddubsw` + `vpmaddwd` (AVX2) and `$vnni` with `vpdpbusd`. The integer sums are exact and
/// equal, so both return the same bits.
macro_rules! with_vnni {
    ($(#[$meta:meta])* fn $name:ident, $vnni:ident ($($arg:ident: $ty:ty),*) -> $ret:ty $body:block) => {
        $(#[$meta])*
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $name($($arg: $ty),*) -> $ret {
            #[allow(dead_code)]
            type D = Avx2;
            $body
        }

        #[doc = concat!("[`", stringify!($name), "`] through AVX-512 VNNI.")]
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512vnni")]
        pub unsafe fn $vnni($($arg: $ty),*) -> $ret {
            #[allow(dead_code)]
            type D = Vnni;
            $body
        }
    };
}

pub(super) use with_vnni;

/// Eight i32 partial sums of `w·x` (w unsigned bytes, x signed), as f32.
#[inline(always)]
unsafe fn dot_us<D: Dot4>(w: __m256i, x: __m256i) -> __m256 {
    _mm256_cvtepi32_ps(D::dot(w, x))
}

/// `(Σ₀..₁₆ w·x)·s0 + (Σ₁₆..₃₂ w·x)·s1` as eight i32 partial sums (lanes 0..4 hold the first
/// 16 values, 4..8 the second).
#[inline(always)]
unsafe fn dot_us_scaled(w: __m256i, x: __m256i, s0: i16, s1: i16) -> __m256i {
    let pairs = _mm256_maddubs_epi16(w, x);
    let scales = _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
    _mm256_madd_epi16(pairs, scales)
}

#[inline(always)]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Blocks of 32: `codes` unpacks a block to unsigned bytes and returns `(q, [d, m])` where the
/// weight is `d·q + m` (an offset `o` is `m = −o·d`). Per block one multiply gives
/// `[d·dₓ, m·dₓ·Σqₓ]`: lane 0 scales the integer dot, lane 1 (the minimum's term) is summed
/// in a second register.
#[inline(always)]
unsafe fn legacy<const SIZE: usize, D: Dot4>(w: &[u8], a: &ActRow, codes: impl Fn(&[u8]) -> (__m256i, __m128)) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = _mm_setzero_ps();
    for (b, blk) in w.chunks_exact(SIZE).enumerate() {
        let (q, dm) = codes(blk);
        let t = _mm_mul_ps(dm, act_ds(a, b));
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(t), dot_us::<D>(q, act(a, b)), acc);
        mins = _mm_add_ps(mins, t);
    }
    hsum(acc) + _mm_cvtss_f32(_mm_movehdup_ps(mins))
}

/// [`legacy`] for four activation rows at once: each block's codes are unpacked once and
/// dotted with the four rows, each row's arithmetic exactly as [`legacy`] does it (the same
/// operations in the same order), so every result equals the one-row kernel's bit for bit.
#[inline(always)]
unsafe fn legacy4<const SIZE: usize, D: Dot4>(w: &[u8], a: [&ActRow; 4], codes: impl Fn(&[u8]) -> (__m256i, __m128)) -> [f32; 4] {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut mins = [_mm_setzero_ps(); 4];
    for (b, blk) in w.chunks_exact(SIZE).enumerate() {
        let (q, dm) = codes(blk);
        for r in 0..4 {
            let t = _mm_mul_ps(dm, act_ds(a[r], b));
            acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(t), dot_us::<D>(q, act(a[r], b)), acc[r]);
            mins[r] = _mm_add_ps(mins[r], t);
        }
    }
    std::array::from_fn(|r| hsum(acc[r]) + _mm_cvtss_f32(_mm_movehdup_ps(mins[r])))
}

/// Asks for the cache lines of `bytes` bytes from `p` (rounded out to whole lines). A prefetch
/// never faults, so `p` may point past the weights (the last rows of a matrix).
#[inline(always)]
pub(super) unsafe fn prefetch(p: *const u8, bytes: usize) {
    let mut at = 0;
    while at < bytes + 64 {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at).cast());
        at += 64;
    }
}

/// [`legacy`] for four weight rows against one activation row: four independent running sums,
/// where one row's sums chain every block on the previous block's `vfmadd` (its latency, not the
/// instructions, bounds a lone decode row). Each row's arithmetic is exactly [`legacy`]'s, so
/// every result equals the one-row kernel's bit for bit.
#[inline(always)]
unsafe fn legacy_w4<const SIZE: usize, D: Dot4>(w: [&[u8]; 4], a: &ActRow, codes: impl Fn(&[u8]) -> (__m256i, __m128)) -> [f32; 4] {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut mins = [_mm_setzero_ps(); 4];
    // The four rows are interleaved block by block, which the hardware prefetchers do not
    // follow: the next four rows (stored right after these) are fetched ahead explicitly.
    let next = w[3].as_ptr().wrapping_add(w[3].len());
    for b in 0..w[0].len() / SIZE {
        prefetch(next.wrapping_add(4 * SIZE * b), 4 * SIZE);
        let (x, ds) = (act(a, b), act_ds(a, b));
        for r in 0..4 {
            debug_assert!(w[r].len() == w[0].len());
            let (q, dm) = codes(w[r].get_unchecked(b * SIZE..(b + 1) * SIZE));
            let t = _mm_mul_ps(dm, ds);
            acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(t), dot_us::<D>(q, x), acc[r]);
            mins[r] = _mm_add_ps(mins[r], t);
        }
    }
    std::array::from_fn(|r| hsum(acc[r]) + _mm_cvtss_f32(_mm_movehdup_ps(mins[r])))
}

with_vnni! {
    /// [`q4_0`] for four weight rows.
    fn q4_0_w4, q4_0_w4_vnni(w: [&[u8]; 4], a: &ActRow) -> [f32; 4] {
        legacy_w4::<18, D>(w, a, |b| (nibbles(&b[2..18]), d_offset(b, 8.0)))
    }
}

with_vnni! {
    /// [`q4_1`] for four weight rows.
    fn q4_1_w4, q4_1_w4_vnni(w: [&[u8]; 4], a: &ActRow) -> [f32; 4] {
        legacy_w4::<20, D>(w, a, |b| (nibbles(&b[4..20]), f16_pair(b, 0)))
    }
}

with_vnni! {
    /// [`q5_0`] for four weight rows.
    fn q5_0_w4, q5_0_w4_vnni(w: [&[u8]; 4], a: &ActRow) -> [f32; 4] {
        legacy_w4::<22, D>(w, a, |b| (_mm256_or_si256(nibbles(&b[6..22]), D::fifth_bits(&b[2..6])), d_offset(b, 16.0)))
    }
}

with_vnni! {
    /// [`q5_1`] for four weight rows.
    fn q5_1_w4, q5_1_w4_vnni(w: [&[u8]; 4], a: &ActRow) -> [f32; 4] {
        legacy_w4::<24, D>(w, a, |b| (_mm256_or_si256(nibbles(&b[8..24]), D::fifth_bits(&b[4..8])), f16_pair(b, 0)))
    }
}

with_vnni! {
    /// [`q8_0`] for four weight rows (the same arithmetic per row, four running sums).
    fn q8_0_w4, q8_0_w4_vnni(w: [&[u8]; 4], a: &ActRow) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        let next = w[3].as_ptr().wrapping_add(w[3].len());
        for b in 0..w[0].len() / 34 {
            prefetch(next.wrapping_add(4 * 34 * b), 4 * 34);
            let (x, dx) = (act(a, b), splat(a.d[b]));
            for r in 0..4 {
                let blk = w[r].get_unchecked(b * 34..(b + 1) * 34);
                let q = _mm256_loadu_si256(blk[2..34].as_ptr().cast());
                let dot = dot_us::<D>(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(f16(blk, 0), dx), dot, acc[r]);
            }
        }
        std::array::from_fn(|r| hsum(acc[r]))
    }
}

with_vnni! {
    /// [`q4_0`] for four activation rows.
    fn q4_0_x4, q4_0_x4_vnni(w: &[u8], a: [&ActRow; 4]) -> [f32; 4] {
        legacy4::<18, D>(w, a, |b| (nibbles(&b[2..18]), d_offset(b, 8.0)))
    }
}

with_vnni! {
    /// [`q4_1`] for four activation rows.
    fn q4_1_x4, q4_1_x4_vnni(w: &[u8], a: [&ActRow; 4]) -> [f32; 4] {
        legacy4::<20, D>(w, a, |b| (nibbles(&b[4..20]), f16_pair(b, 0)))
    }
}

/// `[d, −o·d]` for a block with step `d` at `b[0..2]` and code offset `o`.
#[inline(always)]
unsafe fn d_offset(b: &[u8], o: f32) -> __m128 {
    let d = _mm_cvtph_ps(_mm_set1_epi16(u16::from_le_bytes([b[0], b[1]]) as i16));
    _mm_mul_ps(d, _mm_set_ps(0.0, 0.0, -o, 1.0))
}

with_vnni! {
    /// Q4_0 row · activations.
    fn q4_0, q4_0_vnni(w: &[u8], a: &ActRow) -> f32 {
        legacy::<18, D>(w, a, |b| (nibbles(&b[2..18]), d_offset(b, 8.0)))
    }
}

with_vnni! {
    /// Q4_1 row · activations.
    fn q4_1, q4_1_vnni(w: &[u8], a: &ActRow) -> f32 {
        legacy::<20, D>(w, a, |b| (nibbles(&b[4..20]), f16_pair(b, 0)))
    }
}

with_vnni! {
    /// Q5_0 row · activations.
    fn q5_0, q5_0_vnni(w: &[u8], a: &ActRow) -> f32 {
        legacy::<22, D>(w, a, |b| (_mm256_or_si256(nibbles(&b[6..22]), D::fifth_bits(&b[2..6])), d_offset(b, 16.0)))
    }
}

with_vnni! {
    /// Q5_1 row · activations.
    fn q5_1, q5_1_vnni(w: &[u8], a: &ActRow) -> f32 {
        legacy::<24, D>(w, a, |b| (_mm256_or_si256(nibbles(&b[8..24]), D::fifth_bits(&b[4..8])), f16_pair(b, 0)))
    }
}

with_vnni! {
    /// Q8_0 row · activations (signed × signed through `|w|` and `sign(x, w)`).
    fn q8_0, q8_0_vnni(w: &[u8], a: &ActRow) -> f32 {
        q8_0_row::<D>(w, a)
    }
}

#[inline(always)]
unsafe fn q8_0_row<D: Dot4>(w: &[u8], a: &ActRow) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (b, blk) in w.chunks_exact(34).enumerate() {
        let q = _mm256_loadu_si256(blk[2..34].as_ptr().cast());
        let x = _mm256_sign_epi8(act(a, b), q);
        let dot = dot_us::<D>(_mm256_sign_epi8(q, q), x);
        acc = _mm256_fmadd_ps(_mm256_mul_ps(f16(blk, 0), splat(a.d[b])), dot, acc);
    }
    hsum(acc)
}

/// `(v >> shift) & mask` per byte (shift < 8).
#[inline(always)]
pub(super) unsafe fn bits(v: __m256i, shift: i32, mask: i8) -> __m256i {
    _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8(mask))
}

/// Q2_K row · activations.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q2_k(w: &[u8], a: &ActRow) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = _mm256_setzero_ps();
    for (sb, blk) in w.chunks_exact(84).enumerate() {
        let (scales, qs) = (&blk[..16], &blk[16..80]);
        let (d, dmin) = (f16(blk, 80), f16(blk, 82));
        for h in 0..2 {
            let packed = _mm256_loadu_si256(qs[32 * h..].as_ptr().cast());
            for j in 0..4 {
                let u = 4 * h + j;
                let b = sb * 8 + u;
                let (s0, s1) = (scales[2 * u], scales[2 * u + 1]);
                let q = bits(packed, 2 * j as i32, 3);
                let isc = dot_us_scaled(q, act(a, b), i16::from(s0 & 0xF), i16::from(s1 & 0xF));
                acc = _mm256_fmadd_ps(_mm256_mul_ps(d, splat(a.d[b])), _mm256_cvtepi32_ps(isc), acc);
                let imin = i32::from(s0 >> 4) * a.sums[2 * b] + i32::from(s1 >> 4) * a.sums[2 * b + 1];
                mins = _mm256_fmadd_ps(dmin, splat(a.d[b] * imin as f32), mins);
            }
        }
    }
    hsum(acc) - lane0(mins)
}

/// Q3_K row · activations: codes `low + 4·hbit − 4`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q3_k(w: &[u8], a: &ActRow) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut offs = _mm256_setzero_ps();
    for (sb, blk) in w.chunks_exact(110).enumerate() {
        let (hmask, qs) = (&blk[..32], &blk[32..96]);
        let scales = q3_k_scales(&blk[96..108]);
        let d = f16(blk, 108);
        let hm = _mm256_loadu_si256(hmask.as_ptr().cast());
        for h in 0..2 {
            let packed = _mm256_loadu_si256(qs[32 * h..].as_ptr().cast());
            for j in 0..4 {
                let u = 4 * h + j;
                let b = sb * 8 + u;
                let high = _mm256_slli_epi16(bits(hm, u as i32, 1), 2);
                let q = _mm256_or_si256(bits(packed, 2 * j as i32, 3), high);
                let (s0, s1) = (i32::from(scales[2 * u]), i32::from(scales[2 * u + 1]));
                let isc = dot_us_scaled(q, act(a, b), s0 as i16, s1 as i16);
                let ddx = _mm256_mul_ps(d, splat(a.d[b]));
                acc = _mm256_fmadd_ps(ddx, _mm256_cvtepi32_ps(isc), acc);
                offs = _mm256_fmadd_ps(ddx, splat((4 * (s0 * a.sums[2 * b] + s1 * a.sums[2 * b + 1])) as f32), offs);
            }
        }
    }
    hsum(acc) - lane0(offs)
}

/// Q8_0 row · a float row `x` (`[d_in]`): each block's 32 codes widened to f32 in registers,
/// no rounding of `x`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0_f32(w: &[u8], x: &[f32]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (b, blk) in w.chunks_exact(34).enumerate() {
        debug_assert!(32 * b + 32 <= x.len());
        let xp = x.as_ptr().add(32 * b);
        let mut sum = _mm256_setzero_ps();
        for k in 0..4 {
            let q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(blk[2 + 8 * k..].as_ptr().cast())));
            sum = _mm256_fmadd_ps(q, _mm256_loadu_ps(xp.add(8 * k)), sum);
        }
        acc = _mm256_fmadd_ps(f16(blk, 0), sum, acc);
    }
    hsum(acc)
}

/// [`q8_0_f32`] for four float rows: each block's codes widened once, then each row's sum
/// computed exactly as [`q8_0_f32`] computes it (the same results, bit for bit).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_0_f32_x4(w: &[u8], x: [&[f32]; 4]) -> [f32; 4] {
    let mut acc = [_mm256_setzero_ps(); 4];
    for (b, blk) in w.chunks_exact(34).enumerate() {
        debug_assert!(x.iter().all(|r| 32 * b + 32 <= r.len()));
        let q: [__m256; 4] =
            std::array::from_fn(|k| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(blk[2 + 8 * k..].as_ptr().cast()))));
        let d = f16(blk, 0);
        for r in 0..4 {
            let xp = x[r].as_ptr().add(32 * b);
            let mut sum = _mm256_setzero_ps();
            for (k, qk) in q.iter().enumerate() {
                sum = _mm256_fmadd_ps(*qk, _mm256_loadu_ps(xp.add(8 * k)), sum);
            }
            acc[r] = _mm256_fmadd_ps(d, sum, acc[r]);
        }
    }
    std::array::from_fn(|r| hsum(acc[r]))
}
