//! Prompt-sized products (more input rows than [`super::GGML_TILE_MAX_ROWS`]) from Q4_0 and
//! Q4_1 blocks on AVX-512 VNNI, instead of dequantizing the weight and multiplying in f32:
//! the input rows are quantized to 8 bits per 32 values as for decoding and interleaved 16 to
//! a tile ([`Tile16`], lane `r` of a 512-bit register is row `r`); per weight block, eight
//! `vpdpbusd` sum a broadcast of four weight codes times the same four codes of the 16 rows
//! into one exact integer sum per row, then one multiply-add applies the two steps and one
//! the minimum's term. Per 32 × 16 products that is about 30 instructions, where the f32
//! matmul needs 32 fused multiply-adds and the dequantization besides.
//!
//! The integer sums are exact; the float sums run in another order than the decode kernels',
//! so a prompt row's result may differ from the decode kernels' in the last bits (prompts and
//! decode steps never share a product).
//!
//! # Safety
//! The kernels need [`available`]'s instruction sets, a weight row of whole blocks of their
//! type and a tile quantized from rows of as many values.

#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use super::act::{ActRow, QA};
use crate::weights::gguf::quants::GgmlType;

/// Rows of a tile: the 16 f32 / i32 lanes of a 512-bit register.
pub(super) const ROWS: usize = 16;

/// Whether this CPU runs these kernels (AVX-512 F/BW/VNNI, F16C), checked once.
pub(super) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("f16c")
    })
}

/// The kernel for `ty` on this CPU, if any.
pub(super) fn kernel(ty: GgmlType) -> Option<TileDot16> {
    if !available() {
        return None;
    }
    match ty {
        GgmlType::Q4_0 => Some(q4_0),
        GgmlType::Q4_1 => Some(q4_1),
        _ => None,
    }
}

/// One stored row · a tile of 16 activation rows: lane `r` of the result is row `r`'s product.
pub(super) type TileDot16 = unsafe fn(&[u8], &Tile16) -> [f32; ROWS];

/// Up to 16 quantized rows interleaved: one register holds the same four codes, the step or the
/// sum of every row of the tile (rows past the last are zero).
pub(super) struct Tile16 {
    /// `[blocks][8][16]`: the codes of values `4k..4k + 4` of each block, one `i32` per row.
    codes: Vec<i32>,
    /// `[blocks][16]` steps.
    d: Vec<f32>,
    /// `[blocks][16]` `d·Σq` of each block.
    s: Vec<f32>,
    /// How many lanes hold rows.
    pub rows: usize,
}

impl Tile16 {
    /// The tile of `rows` (1 to 16 quantized rows of one width).
    pub fn new(rows: &[ActRow]) -> Self {
        debug_assert!(!rows.is_empty() && rows.len() <= ROWS);
        let blocks = rows[0].d.len();
        let mut t = Self { codes: vec![0; blocks * 8 * ROWS], d: vec![0.0; blocks * ROWS], s: vec![0.0; blocks * ROWS], rows: rows.len() };
        for (r, a) in rows.iter().enumerate() {
            for b in 0..blocks {
                for k in 0..8 {
                    let q = &a.qs[QA * b + 4 * k..QA * b + 4 * k + 4];
                    t.codes[(b * 8 + k) * ROWS + r] = i32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]);
                }
                t.d[b * ROWS + r] = a.d[b];
                t.s[b * ROWS + r] = a.ds[b][1];
            }
        }
        t
    }
}

/// The f16 at `p` in all 16 lanes.
#[inline(always)]
unsafe fn f16_splat(p: *const u8) -> __m512 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm512_cvtph_ps(_mm256_set1_epi16(bits as i16))
}

/// A Q4 row (`SIZE`-byte blocks, 16 bytes of nibbles last; a stored minimum `[d, m]` first when
/// `MIN`, else `[d]` and codes offset by 8) · a tile.
#[inline(always)]
unsafe fn q4<const SIZE: usize, const MIN: bool>(w: &[u8], t: &Tile16) -> [f32; ROWS] {
    let low = _mm512_set1_epi8(0x0F);
    let mut acc = _mm512_setzero_ps();
    let mut mins = _mm512_setzero_ps();
    for b in 0..w.len() / SIZE {
        let blk = w.as_ptr().add(b * SIZE);
        let qs = blk.add(SIZE - 16);
        let xc = t.codes.as_ptr().add(b * 8 * ROWS);
        let mut sum = _mm512_setzero_si512();
        for k in 0..4 {
            // Values 4k..4k + 4 are the low nibbles of bytes 4k..4k + 4, values 16 + 4k.. the high.
            let raw = _mm512_set1_epi32(qs.add(4 * k).cast::<i32>().read_unaligned());
            let lo = _mm512_and_si512(raw, low);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(raw), low);
            sum = _mm512_dpbusd_epi32(sum, lo, _mm512_loadu_si512(xc.add(ROWS * k).cast()));
            sum = _mm512_dpbusd_epi32(sum, hi, _mm512_loadu_si512(xc.add(ROWS * (k + 4)).cast()));
        }
        let d = f16_splat(blk);
        let m = if MIN { f16_splat(blk.add(2)) } else { _mm512_mul_ps(d, _mm512_set1_ps(-8.0)) };
        let dd = _mm512_mul_ps(d, _mm512_loadu_ps(t.d.as_ptr().add(b * ROWS)));
        acc = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sum), acc);
        mins = _mm512_fmadd_ps(m, _mm512_loadu_ps(t.s.as_ptr().add(b * ROWS)), mins);
    }
    let mut out = [0f32; ROWS];
    _mm512_storeu_ps(out.as_mut_ptr(), _mm512_add_ps(acc, mins));
    out
}

/// Q4_0 row · a tile.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn q4_0(w: &[u8], t: &Tile16) -> [f32; ROWS] {
    q4::<18, false>(w, t)
}

/// Q4_1 row · a tile.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
unsafe fn q4_1(w: &[u8], t: &Tile16) -> [f32; ROWS] {
    q4::<20, true>(w, t)
}
