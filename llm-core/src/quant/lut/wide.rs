//! 4-bit rows at the memory's pace: 64 bytes (128 codes) per load. Lane `i` of a load holds a
//! dword of 8 codes; shifting it right by `4k` brings nibble `k` down, one ternary-logic op
//! keeps that nibble and sets bit 4 on lanes 8..16, and `vpermt2ps` then takes each code's
//! value from the table of the half (64 codes) its lane belongs to. Widening 16 bytes to 16
//! lanes per step (`vpmovzxbd`) is gone. Measured on this 2-core Zen 4 (a noisy shared VM):
//! 1.1-1.9x the one-table kernel's weights per second on a cached `[8192, 2048]` NF4 weight,
//! 5-10% faster SmolLM2 decode (NF4, 4-bit g64). Both remain bound by arithmetic here (four
//! 512-bit ops per 16 weights), not by reading the weights.
//!
//! Lanes visit codes out of order, so the input is reordered once per product ([`order`]) to
//! match; a row of `d_in ≡ 64 (mod 128)` ends with a half load whose missing inputs are zero.

use std::arch::x86_64::*;

/// Where the nibbles of a row's bytes sit in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::quant) enum Nibbles {
    /// Affine 4-bit codes: blocks of 32 in 16 bytes, low nibbles first (`kernels.rs`).
    Q4,
    /// bitsandbytes NF4/FP4: element `2j` in the high nibble of byte `j`, `2j + 1` in the low.
    HighFirst,
}

impl Nibbles {
    /// Position, within a 128-code chunk, of the code that is nibble `k` of lane `i`'s dword
    /// (bytes `4i..4i + 4`, little-endian: nibble `k` is in byte `k / 2`, low when `k` is even).
    fn element(self, i: usize, k: usize) -> usize {
        match self {
            Self::Q4 => 32 * (i / 4) + 4 * (i % 4) + k / 2 + 16 * (k % 2),
            Self::HighFirst => 8 * i + (k ^ 1),
        }
    }
}

/// Inputs per reordered row: `d_in` rounded up to whole 128-code chunks.
pub(super) fn padded(d_in: usize) -> usize {
    d_in.div_ceil(128) * 128
}

/// xs `[rows, d_in]` in the order the lanes visit codes: per 128-code chunk, slot `16k + i`
/// holds the input of nibble `k` of lane `i`; a last half chunk is padded with zeros.
/// -> `[rows, padded(d_in)]`.
pub(super) fn order(xs: &[f32], d_in: usize, nibbles: Nibbles) -> Vec<f32> {
    let width = padded(d_in);
    let mut out = vec![0f32; xs.len() / d_in * width];
    for (dst, src) in out.chunks_exact_mut(width).zip(xs.chunks_exact(d_in)) {
        for (c, chunk) in dst.chunks_exact_mut(128).enumerate() {
            for k in 0..8 {
                for i in 0..16 {
                    let p = 128 * c + nibbles.element(i, k);
                    if p < d_in {
                        chunk[16 * k + i] = src[p];
                    }
                }
            }
        }
    }
    out
}

/// The weight values of a row's codes, per half chunk.
pub(super) trait Tables {
    /// The 16-value tables of codes `128c..128c + 64` and `128c + 64..128c + 128` (the first
    /// again when the chunk is a last half).
    ///
    /// # Safety
    /// Needs AVX-512 F.
    unsafe fn halves(&mut self, c: usize, full: bool) -> [__m512; 2];
}

/// A row of `d_in` 4-bit codes (`d_in` a multiple of 64, `bytes` its `d_in / 2` bytes) against
/// `N` input rows in [`order`]'s layout.
///
/// # Safety
/// Needs AVX-512 F; `bytes` must hold `d_in / 2` bytes and each `x` `padded(d_in)` values.
#[inline(always)]
pub(super) unsafe fn dot<const N: usize>(bytes: &[u8], d_in: usize, tables: &mut impl Tables, x: [&[f32]; N]) -> [f32; N] {
    let mut acc = [[_mm512_setzero_ps(); 2]; N];
    let nibble = _mm512_set1_epi32(0xF);
    let upper = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 16, 16, 16, 16, 16, 16, 16, 16);
    for c in 0..d_in.div_ceil(128) {
        let full = 128 * (c + 1) <= d_in;
        let at = bytes.as_ptr().add(64 * c);
        // A last half chunk loads its 32 bytes only; lanes 8..16 read zero codes against zero inputs.
        let v = if full { _mm512_loadu_si512(at.cast()) } else { _mm512_maskz_loadu_epi32(0x00FF, at.cast()) };
        let [lo, hi] = tables.halves(c, full);
        macro_rules! nibble {
            ($k:literal) => {{
                // (v >> 4k) & 0xF | upper: the code, and which half's table holds its value.
                let idx = _mm512_ternarylogic_epi32::<0xEA>(_mm512_srli_epi32::<{ 4 * $k }>(v), nibble, upper);
                let w = _mm512_permutex2var_ps(lo, idx, hi);
                for (a, xr) in acc.iter_mut().zip(&x) {
                    a[$k % 2] = _mm512_fmadd_ps(w, _mm512_loadu_ps(xr.as_ptr().add(128 * c + 16 * $k)), a[$k % 2]);
                }
            }};
        }
        nibble!(0);
        nibble!(1);
        nibble!(2);
        nibble!(3);
        nibble!(4);
        nibble!(5);
        nibble!(6);
        nibble!(7);
    }
    acc.map(|[a, b]| _mm512_reduce_add_ps(_mm512_add_ps(a, b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_a_chunk_is_visited_once() {
        for nibbles in [Nibbles::Q4, Nibbles::HighFirst] {
            let mut seen = [false; 128];
            for k in 0..8 {
                for i in 0..16 {
                    let p = nibbles.element(i, k);
                    assert!(!seen[p], "{nibbles:?}: code {p} twice");
                    seen[p] = true;
                    // The half a lane's table covers holds its code.
                    assert_eq!(p / 64, i / 8, "{nibbles:?}: lane {i} nibble {k}");
                }
            }
        }
    }
}
