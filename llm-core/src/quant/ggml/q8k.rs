//! Q4_K, Q5_K and Q6_K rows · activation rows quantized per 256 values ([`ActRowK`]), AVX2
//! and AVX-512 VNNI, as llama.cpp's `ggml_vec_dot_q*_K_q8_K`: per sub-block of 32 values,
//! `vpmaddubsw` (unsigned weight codes × signed activation codes, pairs summed to i16), then
//! `vpmaddwd` by the sub-block's integer scale (AVX-512 VNNI: `vpdpwssd`, multiply and
//! accumulate in one) into a super-block's i32 sums; one f32 multiply-add per super-block. The
//! minimums (Q4_K/Q5_K) and Q6_K's `−32` offset come from the activation row's sums of 16 codes,
//! once per super-block. Every integer sum is exact, so the kernels equal [`super::dot`]'s
//! scalar ones up to the order of the f32 sums, and the four-row kernels equal the one-row
//! kernels bit for bit.
//!
//! Overflow: `vpmaddubsw` pairs are at most 2·63·127 = 16002 (Q6_K), below its saturation; a
//! super-block's i32 sums stay below 2³¹ (`63·15·127·256` for Q4_K, `127·63·127·256` for Q6_K).
//!
//! # Safety
//! Every kernel needs AVX2, FMA and F16C (and AVX-512 F/VL/BW/VNNI for `_vnni`), a weight row of
//! whole super-blocks of its type, and an activation row quantized from as many values.

#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use super::act::{ActRowK, QK};
use super::avx2::{bits, f16, hsum, prefetch, splat, with_vnni, Avx2, Dot4, Vnni};

/// 32 activation codes of super-block `sb`, sub-block `u`.
#[inline(always)]
unsafe fn act(a: &ActRowK, sb: usize, u: usize) -> __m256i {
    debug_assert!(QK * sb + 32 * u + 32 <= a.qs.len());
    _mm256_loadu_si256(a.qs.as_ptr().add(QK * sb + 32 * u).cast())
}

/// The sixteen sums of 16 codes of super-block `sb`, as i16 lanes.
#[inline(always)]
unsafe fn bsums(a: &ActRowK, sb: usize) -> __m256i {
    debug_assert!(16 * sb + 16 <= a.bsums.len());
    _mm256_loadu_si256(a.bsums.as_ptr().add(16 * sb).cast())
}

/// The step of super-block `sb` times the f16 at `blk[i..i + 2]`, in all eight lanes.
#[inline(always)]
unsafe fn scaled(blk: &[u8], i: usize, a: &ActRowK, sb: usize) -> __m256 {
    _mm256_mul_ps(f16(blk, i), splat(*a.d.get_unchecked(sb)))
}

/// A Q4_K / Q5_K super-block's 6-bit scales and minimums (12 bytes at `blk[4..16]`) as i16:
/// the eight scales in both 128-bit halves, and the eight minimums (llama.cpp's unpacking of
/// three words into four; [`crate::weights::gguf::quants::k_scale_min`] by bytes).
#[inline(always)]
unsafe fn scales_mins(blk: &[u8]) -> (__m256i, __m128i) {
    const LOW6: u32 = 0x3f3f3f3f;
    const LOW4: u32 = 0x0f0f0f0f;
    const TOP2: u32 = 0x03030303;
    let word = |i: usize| u32::from_le_bytes([blk[4 + 4 * i], blk[5 + 4 * i], blk[6 + 4 * i], blk[7 + 4 * i]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let sc_lo = w0 & LOW6;
    let sc_hi = (w2 & LOW4) | (((w0 >> 6) & TOP2) << 4);
    let mn_lo = w1 & LOW6;
    let mn_hi = ((w2 >> 4) & LOW4) | (((w1 >> 6) & TOP2) << 4);
    let both = _mm256_cvtepu8_epi16(_mm_set_epi32(mn_hi as i32, mn_lo as i32, sc_hi as i32, sc_lo as i32));
    let sc = _mm256_castsi256_si128(both);
    (_mm256_set_m128i(sc, sc), _mm256_extracti128_si256(both, 1))
}

/// Lane `u` of the i16 scales `s` (as [`scales_mins`] leaves them) in all sixteen lanes.
#[inline(always)]
unsafe fn scale_of(s: __m256i, u: usize) -> __m256i {
    let pick = (2 * u | (2 * u + 1) << 8) as i16;
    _mm256_shuffle_epi8(s, _mm256_set1_epi16(pick))
}

/// The sums of 32 codes of super-block `sb` (pairs of its sums of 16), as eight i16.
#[inline(always)]
unsafe fn sums32(a: &ActRowK, sb: usize) -> __m128i {
    let b = bsums(a, sb);
    _mm_hadd_epi16(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1))
}

/// The four running sums of one weight row.
#[derive(Clone, Copy)]
struct Sums {
    /// `d·dₓ·Σ sc·(q·x)`, eight f32 partial sums.
    acc: __m256,
    /// `dmin·dₓ·Σ mn·Σx`, four partial sums (Q4_K/Q5_K).
    mins: __m128,
}

impl Sums {
    #[inline(always)]
    unsafe fn zero() -> Self {
        Self { acc: _mm256_setzero_ps(), mins: _mm_setzero_ps() }
    }

    #[inline(always)]
    unsafe fn total(self) -> f32 {
        let m = _mm_add_ps(self.mins, _mm_movehl_ps(self.mins, self.mins));
        let m = _mm_add_ss(m, _mm_movehdup_ps(m));
        hsum(self.acc) - _mm_cvtss_f32(m)
    }
}

/// The codes of sub-blocks `2·pair` and `2·pair + 1` of a Q4_K / Q5_K super-block (`qs` its
/// 128 code bytes, `hv` Q5_K's 32 fifth-bit bytes) as unsigned bytes.
#[inline(always)]
unsafe fn q45_codes(five: bool, qs: &[u8], hv: __m256i, pair: usize) -> (__m256i, __m256i) {
    let packed = _mm256_loadu_si256(qs.as_ptr().add(32 * pair).cast());
    let mut lo = bits(packed, 0, 0x0F);
    let mut hi = bits(packed, 4, 0x0F);
    if five {
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(bits(hv, 2 * pair as i32, 1), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(bits(hv, 2 * pair as i32 + 1, 1), 4));
    }
    (lo, hi)
}

/// The code bytes (`qs`) and the fifth-bit bytes (zero for Q4_K) of a Q4_K / Q5_K block.
#[inline(always)]
unsafe fn q45_parts<const SIZE: usize>(blk: &[u8]) -> (&[u8], __m256i) {
    if SIZE == 176 {
        (&blk[48..176], _mm256_loadu_si256(blk[16..48].as_ptr().cast()))
    } else {
        (&blk[16..144], _mm256_setzero_si256())
    }
}

/// One Q4_K / Q5_K super-block's terms added to `s`: `sumi` holds its integer sums
/// `Σᵤ sc[u]·(q·x)ᵤ` (eight i32 partial sums), `mn` its minimums, `s32` the activation's sums of
/// 32 codes.
#[inline(always)]
unsafe fn q45_finish(s: &mut Sums, blk: &[u8], a: &ActRowK, sb: usize, sumi: __m256i, mn: __m128i, s32: __m128i) {
    s.acc = _mm256_fmadd_ps(scaled(blk, 0, a, sb), _mm256_cvtepi32_ps(sumi), s.acc);
    let prod = _mm_cvtepi32_ps(_mm_madd_epi16(mn, s32));
    s.mins = _mm_fmadd_ps(_mm256_castps256_ps128(scaled(blk, 2, a, sb)), prod, s.mins);
}

/// Q4_K / Q5_K row · a Q8_K row.
#[inline(always)]
unsafe fn q45_k<const SIZE: usize, D: Dot4>(w: &[u8], a: &ActRowK) -> f32 {
    let mut s = Sums::zero();
    for (sb, blk) in w.chunks_exact(SIZE).enumerate() {
        let (sc, mn) = scales_mins(blk);
        let (qs, hv) = q45_parts::<SIZE>(blk);
        let mut sumi = _mm256_setzero_si256();
        for pair in 0..4 {
            let (lo, hi) = q45_codes(SIZE == 176, qs, hv, pair);
            sumi = D::madd_acc(sumi, _mm256_maddubs_epi16(lo, act(a, sb, 2 * pair)), scale_of(sc, 2 * pair));
            sumi = D::madd_acc(sumi, _mm256_maddubs_epi16(hi, act(a, sb, 2 * pair + 1)), scale_of(sc, 2 * pair + 1));
        }
        q45_finish(&mut s, blk, a, sb, sumi, mn, sums32(a, sb));
    }
    s.total()
}

/// [`q45_k`] for four weight rows: each activation load shared by the four, each row's
/// arithmetic exactly the one-row kernel's (the same bits).
#[inline(always)]
unsafe fn q45_k_w4<const SIZE: usize, D: Dot4>(w: [&[u8]; 4], a: &ActRowK) -> [f32; 4] {
    let mut s = [Sums::zero(); 4];
    let next = w[3].as_ptr().wrapping_add(w[3].len());
    for sb in 0..w[0].len() / SIZE {
        prefetch(next.wrapping_add(4 * SIZE * sb), 4 * SIZE);
        let blk: [&[u8]; 4] = std::array::from_fn(|r| w[r].get_unchecked(sb * SIZE..(sb + 1) * SIZE));
        let sm = [scales_mins(blk[0]), scales_mins(blk[1]), scales_mins(blk[2]), scales_mins(blk[3])];
        let parts = [q45_parts::<SIZE>(blk[0]), q45_parts::<SIZE>(blk[1]), q45_parts::<SIZE>(blk[2]), q45_parts::<SIZE>(blk[3])];
        let mut sumi = [_mm256_setzero_si256(); 4];
        for pair in 0..4 {
            let (x_lo, x_hi) = (act(a, sb, 2 * pair), act(a, sb, 2 * pair + 1));
            for r in 0..4 {
                let (lo, hi) = q45_codes(SIZE == 176, parts[r].0, parts[r].1, pair);
                sumi[r] = D::madd_acc(sumi[r], _mm256_maddubs_epi16(lo, x_lo), scale_of(sm[r].0, 2 * pair));
                sumi[r] = D::madd_acc(sumi[r], _mm256_maddubs_epi16(hi, x_hi), scale_of(sm[r].0, 2 * pair + 1));
            }
        }
        let s32 = sums32(a, sb);
        for r in 0..4 {
            q45_finish(&mut s[r], blk[r], a, sb, sumi[r], sm[r].1, s32);
        }
    }
    [s[0].total(), s[1].total(), s[2].total(), s[3].total()]
}

with_vnni! {
    /// Q4_K row · a Q8_K row.
    fn q4_k, q4_k_vnni(w: &[u8], a: &ActRowK) -> f32 {
        q45_k::<144, D>(w, a)
    }
}

with_vnni! {
    /// Q5_K row · a Q8_K row.
    fn q5_k, q5_k_vnni(w: &[u8], a: &ActRowK) -> f32 {
        q45_k::<176, D>(w, a)
    }
}

with_vnni! {
    /// [`q4_k`] for four weight rows.
    fn q4_k_w4, q4_k_w4_vnni(w: [&[u8]; 4], a: &ActRowK) -> [f32; 4] {
        q45_k_w4::<144, D>(w, a)
    }
}

with_vnni! {
    /// [`q5_k`] for four weight rows.
    fn q5_k_w4, q5_k_w4_vnni(w: [&[u8]; 4], a: &ActRowK) -> [f32; 4] {
        q45_k_w4::<176, D>(w, a)
    }
}

/// Sub-block `u = 4h + t`'s scales (the i8 at `scales[2u]`, `scales[2u + 1]`, one per 16
/// values) as i16: the first in the low 128-bit half, the second in the high.
#[inline(always)]
unsafe fn q6_scale(scales: __m128i, u: usize) -> __m256i {
    let (a, b) = ((2 * u) as i64 * 0x0101010101010101, (2 * u + 1) as i64 * 0x0101010101010101);
    _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, _mm_set_epi64x(b, a)))
}

/// Sub-block `u = 4h + t` of a Q6_K block's codes (before their `−32`) as unsigned bytes:
/// `low` the 32 bytes at `ql[64h + 32(t % 2)..]`, `high` those at `qh[32h..]`.
#[inline(always)]
unsafe fn q6_codes(low: __m256i, high: __m256i, t: usize) -> __m256i {
    let low = bits(low, 4 * (t / 2) as i32, 0x0F);
    _mm256_or_si256(low, _mm256_slli_epi16(bits(high, 2 * t as i32, 3), 4))
}

/// A Q6_K block's parts: its scales (16 i8) and `32·Σ s·Σx` over its 16 groups of 16 as
/// eight i32 partial sums (the `−32` offset of the codes).
#[inline(always)]
unsafe fn q6_parts(blk: &[u8], b16: __m256i) -> (__m128i, __m256i) {
    let scales = _mm_loadu_si128(blk[192..208].as_ptr().cast());
    let offset = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), b16);
    (scales, _mm256_slli_epi32(offset, 5))
}

/// Q6_K row · a Q8_K row: per super-block, `Σ s·(q·x) − 32·Σ s·Σx` in i32, one multiply-add.
#[inline(always)]
unsafe fn q6_k_body<D: Dot4>(w: &[u8], a: &ActRowK) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (sb, blk) in w.chunks_exact(210).enumerate() {
        let (scales, offset) = q6_parts(blk, bsums(a, sb));
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let high = _mm256_loadu_si256(blk[128 + 32 * h..].as_ptr().cast());
            let low = [_mm256_loadu_si256(blk[64 * h..].as_ptr().cast()), _mm256_loadu_si256(blk[64 * h + 32..].as_ptr().cast())];
            for t in 0..4 {
                let q = q6_codes(low[t % 2], high, t);
                sumi = D::madd_acc(sumi, _mm256_maddubs_epi16(q, act(a, sb, 4 * h + t)), q6_scale(scales, 4 * h + t));
            }
        }
        let sumi = _mm256_sub_epi32(sumi, offset);
        acc = _mm256_fmadd_ps(scaled(blk, 208, a, sb), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum(acc)
}

/// [`q6_k`] for four weight rows (each row's arithmetic exactly the one-row kernel's).
#[inline(always)]
unsafe fn q6_k_w4_body<D: Dot4>(w: [&[u8]; 4], a: &ActRowK) -> [f32; 4] {
    let mut acc = [_mm256_setzero_ps(); 4];
    let next = w[3].as_ptr().wrapping_add(w[3].len());
    for sb in 0..w[0].len() / 210 {
        prefetch(next.wrapping_add(4 * 210 * sb), 4 * 210);
        let blk: [&[u8]; 4] = std::array::from_fn(|r| w[r].get_unchecked(sb * 210..(sb + 1) * 210));
        let b16 = bsums(a, sb);
        let parts = [q6_parts(blk[0], b16), q6_parts(blk[1], b16), q6_parts(blk[2], b16), q6_parts(blk[3], b16)];
        let mut sumi = [_mm256_setzero_si256(); 4];
        for h in 0..2 {
            let high: [__m256i; 4] = std::array::from_fn(|r| _mm256_loadu_si256(blk[r][128 + 32 * h..].as_ptr().cast()));
            for t in 0..4 {
                let x = act(a, sb, 4 * h + t);
                for r in 0..4 {
                    let low = _mm256_loadu_si256(blk[r][64 * h + 32 * (t % 2)..].as_ptr().cast());
                    let q = q6_codes(low, high[r], t);
                    sumi[r] = D::madd_acc(sumi[r], _mm256_maddubs_epi16(q, x), q6_scale(parts[r].0, 4 * h + t));
                }
            }
        }
        for r in 0..4 {
            let sumi = _mm256_sub_epi32(sumi[r], parts[r].1);
            acc[r] = _mm256_fmadd_ps(scaled(blk[r], 208, a, sb), _mm256_cvtepi32_ps(sumi), acc[r]);
        }
    }
    [hsum(acc[0]), hsum(acc[1]), hsum(acc[2]), hsum(acc[3])]
}

with_vnni! {
    /// Q6_K row · a Q8_K row.
    fn q6_k, q6_k_vnni(w: &[u8], a: &ActRowK) -> f32 {
        q6_k_body::<D>(w, a)
    }
}

with_vnni! {
    /// [`q6_k`] for four weight rows.
    fn q6_k_w4, q6_k_w4_vnni(w: [&[u8]; 4], a: &ActRowK) -> [f32; 4] {
        q6_k_w4_body::<D>(w, a)
    }
}
