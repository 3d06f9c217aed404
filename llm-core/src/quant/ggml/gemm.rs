//! Prompt-sized products ([`super::GEMM_MIN_ROWS`] input rows or more) from Q4_0 and Q4_1
//! blocks on AVX-512 VNNI, instead of dequantizing the weight and multiplying in f32:
//! the input rows are quantized to 8 bits per 32 values as for decoding and interleaved 16 to
//! a tile ([`Tile16`], lane `r` of a 512-bit register is row `r`); each weight row is unpacked
//! once to a byte per code ([`Unpacked`]), then per block and tile eight `vpdpbusd` sum a
//! broadcast of four weight codes times the same four codes of the 16 rows into one exact
//! integer sum per row, one multiply-add applies the two steps and one the minimum's term, and
//! four weight rows share each load of the tile: about 12 vector instructions per 32 × 16
//! products, where the f32 matmul needs 32 fused multiply-adds and the dequantization besides.
//!
//! The integer sums are exact; the float sums run in another order than the decode kernels',
//! so a prompt row's result may differ from the decode kernels' in the last bits (prompts and
//! decode steps never share a product).

#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use super::act::{ActTile, QA};
use crate::weights::gguf::quants::GgmlType;

/// Rows of a tile: the 16 f32 / i32 lanes of a 512-bit register.
pub(super) const ROWS: usize = 16;

/// Whether this CPU runs these kernels (AVX-512 F/BW/VNNI), checked once.
pub(super) fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni"))
}

/// Whether this CPU runs the prompt kernel of `ty`.
pub(super) fn supports(ty: GgmlType) -> bool {
    available() && matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1)
}

/// One weight row unpacked for the tiles it meets: every code as a byte in value order and
/// each block's step and minimum in f32 (a Q4_0 block's minimum is `−8·d`). Unpacking once per
/// row, not once per tile, leaves the tile loop only the products.
#[derive(Default)]
pub(super) struct Unpacked {
    codes: Vec<u8>,
    d: Vec<f32>,
    m: Vec<f32>,
}

impl Unpacked {
    /// Unpacks `w`, a row of `ty` blocks (one [`supports`] accepts), reusing the buffers.
    pub fn fill(&mut self, ty: GgmlType, w: &[u8]) {
        let (size, min) = if ty == GgmlType::Q4_1 { (20, true) } else { (18, false) };
        self.codes.clear();
        self.d.clear();
        self.m.clear();
        for blk in w.chunks_exact(size) {
            let d = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
            self.d.push(d);
            self.m.push(if min { half::f16::from_le_bytes([blk[2], blk[3]]).to_f32() } else { -8.0 * d });
            let qs = &blk[size - 16..];
            self.codes.extend(qs.iter().map(|b| b & 0x0F));
            self.codes.extend(qs.iter().map(|b| b >> 4));
        }
    }

    /// Whether `t` holds rows as wide as this one.
    fn fits(&self, t: &Tile16) -> bool {
        t.codes.len() == self.codes.len() / 4 * ROWS
    }
}

/// Weight rows `w` · the 16 rows of `t`: lane `r` of result `i` is row `r`'s product with
/// `w[i]`. Four weight rows share each load of the tile's codes.
///
/// # Panics
/// Unless the CPU has [`available`]'s instruction sets and `t` is as wide as every row.
pub(super) fn dot4(w: [&Unpacked; 4], t: &Tile16) -> [[f32; ROWS]; 4] {
    assert!(available() && w.iter().all(|w| w.fits(t)), "a tile of the rows' width on an AVX-512 VNNI CPU");
    // SAFETY: the instruction sets are checked above, and the tile holds as many blocks.
    unsafe { dot_rows(w, t) }
}

/// [`dot4`] for one weight row.
///
/// # Panics
/// As [`dot4`].
pub(super) fn dot(w: &Unpacked, t: &Tile16) -> [f32; ROWS] {
    assert!(available() && w.fits(t), "a tile of this row's width on an AVX-512 VNNI CPU");
    // SAFETY: as in `dot4`.
    unsafe { dot_rows([w], t)[0] }
}

/// 16 quantized rows interleaved, one per lane of a 512-bit register.
pub(super) type Tile16 = ActTile<ROWS>;

/// `N` weight rows · a tile: per block the tile's eight registers of codes are loaded once and
/// met by each row's eight broadcasts of four codes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_rows<const N: usize>(w: [&Unpacked; N], t: &Tile16) -> [[f32; ROWS]; N] {
    let mut acc = [_mm512_setzero_ps(); N];
    let mut mins = [_mm512_setzero_ps(); N];
    for b in 0..t.codes.len() / (8 * ROWS) {
        let xc = t.codes.as_ptr().add(b * 8 * ROWS);
        let x: [__m512i; 8] = std::array::from_fn(|k| _mm512_loadu_si512(xc.add(ROWS * k).cast()));
        let (td, ts) = (_mm512_loadu_ps(t.d.as_ptr().add(b * ROWS)), _mm512_loadu_ps(t.s.as_ptr().add(b * ROWS)));
        for r in 0..N {
            let codes = w[r].codes.as_ptr().add(b * QA);
            let mut sum = _mm512_setzero_si512();
            for (k, xk) in x.iter().enumerate() {
                // Values 4k..4k + 4 of the weight in every lane, against the same values of each row.
                let w4 = _mm512_set1_epi32(codes.add(4 * k).cast::<i32>().read_unaligned());
                sum = _mm512_dpbusd_epi32(sum, w4, *xk);
            }
            let dd = _mm512_mul_ps(_mm512_set1_ps(*w[r].d.get_unchecked(b)), td);
            acc[r] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sum), acc[r]);
            mins[r] = _mm512_fmadd_ps(_mm512_set1_ps(*w[r].m.get_unchecked(b)), ts, mins[r]);
        }
    }
    std::array::from_fn(|r| {
        let mut out = [0f32; ROWS];
        _mm512_storeu_ps(out.as_mut_ptr(), _mm512_add_ps(acc[r], mins[r]));
        out
    })
}
