//! Q4_0 and Q4_1 rows against a tile of eight activation rows ([`ActTile`]), the tile's rows in
//! the lanes of each register: one broadcast of four weight codes is multiplied with the same
//! four codes of all eight rows by one `vpdpbusd` (AVX-512 VNNI on 256-bit registers) or by
//! `vpmaddubsw` + `vpmaddwd` (AVX2), so each block's codes are unpacked once for eight rows and
//! its scales are applied to eight rows in one instruction.
//!
//! Each row's result is, bit for bit, what [`super::avx2`]'s one-row kernel gives that row
//! alone (a decode row of the server does not depend on what else shares its step, while the
//! step stays on the integer path: up to 32 rows in all). That kernel keeps
//! eight partial sums per row, lane `k` summing values `4k..4k + 4` of every block
//! (`acc_k = fma(d·dₓ, Σ₄ q·qₓ, acc_k)`), the minimum's terms `m·dₓΣqₓ` in a separate sum, and
//! adds them as `((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)) + mins`; here register `k` holds
//! `acc_k` of the eight rows, and the same operations run in the same order. The integer sums
//! of both instruction sets are exact and equal.
//!
//! # Safety
//! Every kernel needs the instruction sets of [`super::avx2::available`] (or [`super::avx2::vnni_available`] for
//! the `_vnni` ones), a weight row of whole blocks of its type and a tile quantized from rows
//! of as many values.

#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use super::act::{ActTile, TILE};
use super::avx2::{Avx2, Dot4, Vnni};

/// A Q4 block's layout: `SIZE` bytes with the 16 bytes of nibbles last, and whether it stores a
/// minimum (`[d, m]` first: Q4_1) or not (`[d]`, codes offset by 8: Q4_0).
trait Q4 {
    const SIZE: usize;
    const MIN: bool;
}

/// Q4_0: `[d f16][16 bytes]`, value `d·(q − 8)`.
struct Q40;
impl Q4 for Q40 {
    const SIZE: usize = 18;
    const MIN: bool = false;
}

/// Q4_1: `[d f16][m f16][16 bytes]`, value `d·q + m`.
struct Q41;
impl Q4 for Q41 {
    const SIZE: usize = 20;
    const MIN: bool = true;
}

/// The f16 at `p` in all eight lanes.
#[inline(always)]
unsafe fn f16_splat(p: *const u8) -> __m256 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm256_cvtph_ps(_mm_set1_epi16(bits as i16))
}

/// One Q4 row · the eight rows of a tile: lane `r` of the result is row `r`'s dot product.
#[inline(always)]
unsafe fn tile<F: Q4, D: Dot4>(w: &[u8], t: &ActTile) -> [f32; TILE] {
    debug_assert!(t.blocks() * F::SIZE == w.len());
    let low = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); 8];
    let mut mins = _mm256_setzero_ps();
    for (b, blk) in w.chunks_exact(F::SIZE).enumerate() {
        let blk = blk.as_ptr();
        let qs = blk.add(F::SIZE - 16);
        let xc = t.codes.as_ptr().add(b * 8 * TILE);
        let d = f16_splat(blk);
        let m = if F::MIN { f16_splat(blk.add(2)) } else { _mm256_mul_ps(d, _mm256_set1_ps(-8.0)) };
        let dd = _mm256_mul_ps(d, _mm256_loadu_ps(t.d.as_ptr().add(b * TILE)));
        mins = _mm256_add_ps(mins, _mm256_mul_ps(m, _mm256_loadu_ps(t.s.as_ptr().add(b * TILE))));
        for k in 0..4 {
            // Values 4k..4k + 4 are the low nibbles of bytes 4k..4k + 4, values 16 + 4k.. the high.
            let raw = _mm256_set1_epi32(qs.add(4 * k).cast::<i32>().read_unaligned());
            let lo = _mm256_and_si256(raw, low);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), low);
            let x_lo = _mm256_loadu_si256(xc.add(TILE * k).cast());
            let x_hi = _mm256_loadu_si256(xc.add(TILE * (k + 4)).cast());
            acc[k] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(D::dot(lo, x_lo)), acc[k]);
            acc[k + 4] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(D::dot(hi, x_hi)), acc[k + 4]);
        }
    }
    let s = [_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[2], acc[6]), _mm256_add_ps(acc[3], acc[7])];
    let total = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s[0], s[2]), _mm256_add_ps(s[1], s[3])), mins);
    let mut out = [0f32; TILE];
    _mm256_storeu_ps(out.as_mut_ptr(), total);
    out
}

/// Q4_0 row · a tile of eight activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_0(w: &[u8], t: &ActTile) -> [f32; TILE] {
    tile::<Q40, Avx2>(w, t)
}

/// Q4_1 row · a tile of eight activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q4_1(w: &[u8], t: &ActTile) -> [f32; TILE] {
    tile::<Q41, Avx2>(w, t)
}

/// [`q4_0`] through AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub unsafe fn q4_0_vnni(w: &[u8], t: &ActTile) -> [f32; TILE] {
    tile::<Q40, Vnni>(w, t)
}

/// [`q4_1`] through AVX-512 VNNI.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
pub unsafe fn q4_1_vnni(w: &[u8], t: &ActTile) -> [f32; TILE] {
    tile::<Q41, Vnni>(w, t)
}
