//! Activations quantized once per matmul for the integer dot products: blocks of 32 values,
//! each with an f32 step `d = max|x| / 127` and codes `round(x / d)` (llama.cpp's Q8_0 with
//! the step kept in f32), plus the sum of the codes of each half-block of 16, which the
//! weight formats with an offset or a per-sub-block minimum need. Codes round half to even
//! (`vroundps`, as llama.cpp's AVX2 `quantize_row_q8_0`), so the loop vectorizes.

use crate::quant::kernels::multiversion;

/// Values per activation block.
pub const QA: usize = 32;

/// One input row `[d_in]` quantized (`d_in` a multiple of [`QA`]).
#[derive(Debug, Clone, Default)]
pub struct ActRow {
    /// `[d_in / 32]` step of each block.
    pub d: Vec<f32>,
    /// `[d_in]` codes.
    pub qs: Vec<i8>,
    /// `[d_in / 16]` sum of the codes of each half-block.
    pub sums: Vec<i32>,
    /// `[d_in / 32]` pairs `[d, d·Σq]` of each block (the step and the block's value sum), as
    /// llama.cpp's Q8_1 keeps them: a weight's minimum term needs only a multiply.
    pub ds: Vec<[f32; 2]>,
}

impl ActRow {
    /// `x` (`[d_in]`, a multiple of 32) quantized.
    pub fn from_row(x: &[f32]) -> Self {
        let mut a = Self::default();
        a.quantize(x);
        a
    }

    /// Quantizes `x` (`[d_in]`, `d_in` a multiple of 32) into `self`, reusing its buffers.
    pub fn quantize(&mut self, x: &[f32]) {
        debug_assert!(x.len().is_multiple_of(QA));
        let blocks = x.len() / QA;
        self.d.resize(blocks, 0.0);
        self.qs.resize(x.len(), 0);
        self.sums.resize(2 * blocks, 0);
        quantize_blocks(x, &mut self.d, &mut self.qs, &mut self.sums);
        self.ds.clear();
        self.ds.extend(self.d.iter().zip(self.sums.chunks_exact(2)).map(|(&d, s)| [d, d * (s[0] + s[1]) as f32]));
    }

    /// The value the codes stand for: `[d_in]`.
    pub fn dequantize(&self) -> Vec<f32> {
        self.qs.iter().enumerate().map(|(i, &q)| self.d[i / QA] * f32::from(q)).collect()
    }
}

/// Values per super-block activation block ([`ActRowK`]).
pub const QK: usize = 256;

/// One input row `[d_in]` quantized for the K-quant weights (Q4_K, Q5_K, Q6_K) as llama.cpp's
/// Q8_K: one f32 step `d = max|x| / 127` per 256 values (a weight super-block), codes
/// `round(x / d)` (half to even) and the sum of each 16 codes. With one activation step per
/// super-block, a super-block's eight (or sixteen) sub-block products are summed in integers,
/// each times its integer sub-block scale, and scaled in f32 once.
#[derive(Debug, Clone, Default)]
pub struct ActRowK {
    /// `[d_in / 256]` step of each block.
    pub d: Vec<f32>,
    /// `[d_in]` codes.
    pub qs: Vec<i8>,
    /// `[d_in / 16]` sum of the codes of each 16 values.
    pub bsums: Vec<i16>,
}

impl ActRowK {
    /// `x` (`[d_in]`, a multiple of 256) quantized.
    pub fn from_row(x: &[f32]) -> Self {
        let mut a = Self::default();
        a.quantize(x);
        a
    }

    /// Quantizes `x` (`[d_in]`, `d_in` a multiple of 256) into `self`, reusing its buffers.
    pub fn quantize(&mut self, x: &[f32]) {
        debug_assert!(x.len().is_multiple_of(QK));
        self.d.resize(x.len() / QK, 0.0);
        self.qs.resize(x.len(), 0);
        self.bsums.resize(x.len() / 16, 0);
        quantize_super_blocks(x, &mut self.d, &mut self.qs, &mut self.bsums);
    }

    /// The value the codes stand for: `[d_in]`.
    pub fn dequantize(&self) -> Vec<f32> {
        self.qs.iter().enumerate().map(|(i, &q)| self.d[i / QK] * f32::from(q)).collect()
    }
}

/// An input row quantized to the activation blocks a weight type pairs with: blocks of 32
/// ([`ActRow`]) for the 32-value formats, Q2_K and Q3_K; super-blocks of 256 ([`ActRowK`]) for
/// Q4_K, Q5_K and Q6_K ([`super::dot::pairs_with_q8_k`]).
#[derive(Debug, Clone)]
pub enum QuantizedRow {
    /// Blocks of 32 values.
    Blocks(ActRow),
    /// Super-blocks of 256 values.
    SuperBlocks(ActRowK),
}

impl QuantizedRow {
    /// `x` (`[d_in]`) quantized for weights of type `ty`.
    pub fn new(ty: crate::weights::gguf::quants::GgmlType, x: &[f32]) -> Self {
        if super::dot::pairs_with_q8_k(ty) {
            Self::SuperBlocks(ActRowK::from_row(x))
        } else {
            Self::Blocks(ActRow::from_row(x))
        }
    }

    /// The values the codes stand for: `[d_in]`.
    pub fn dequantize(&self) -> Vec<f32> {
        match self {
            Self::Blocks(a) => a.dequantize(),
            Self::SuperBlocks(a) => a.dequantize(),
        }
    }

    /// The step of value `i`'s block (half of it bounds that value's rounding).
    pub fn step(&self, i: usize) -> f32 {
        match self {
            Self::Blocks(a) => a.d[i / QA],
            Self::SuperBlocks(a) => a.d[i / QK],
        }
    }
}

/// Rows of a tile: the lanes of the tile kernels' registers.
pub const TILE: usize = 8;

/// Up to `N` quantized rows interleaved so that one register holds the same four codes, step
/// or sum of every row of the tile (lane `r` is row `r`; rows past the last are zero): [`TILE`]
/// rows for the decode tile kernels, 16 for the prompt kernels (512-bit lanes).
#[derive(Debug, Clone)]
pub struct ActTile<const N: usize = TILE> {
    /// `[blocks][8][N]`: the codes of values `4k..4k + 4` of each block, as one `i32` per row.
    pub codes: Vec<i32>,
    /// `[blocks][N]` steps.
    pub d: Vec<f32>,
    /// `[blocks][N]` `d·Σq` of each block.
    pub s: Vec<f32>,
    /// How many of the lanes hold rows.
    pub rows: usize,
}

impl<const N: usize> ActTile<N> {
    /// The tile of `rows` (1 to `N` rows of one width).
    pub fn new(rows: &[ActRow]) -> Self {
        debug_assert!(!rows.is_empty() && rows.len() <= N);
        let blocks = rows[0].d.len();
        let mut t = Self { codes: vec![0; blocks * 8 * N], d: vec![0.0; blocks * N], s: vec![0.0; blocks * N], rows: rows.len() };
        for (r, a) in rows.iter().enumerate() {
            for b in 0..blocks {
                for k in 0..8 {
                    let q = &a.qs[QA * b + 4 * k..QA * b + 4 * k + 4];
                    t.codes[(b * 8 + k) * N + r] = i32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8]);
                }
                t.d[b * N + r] = a.d[b];
                t.s[b * N + r] = a.ds[b][1];
            }
        }
        t
    }

    /// Blocks of 32 per row.
    pub fn blocks(&self) -> usize {
        self.d.len() / N
    }
}

/// Blocks of `block` values of `x`: each block's step `max|x| / 127` into `d`, its codes
/// (rounded half to even) into `qs`, the sum of each 16 codes into `sums`.
#[inline(always)]
fn quantize<S: From<i8> + std::ops::AddAssign + Default>(x: &[f32], block: usize, d: &mut [f32], qs: &mut [i8], sums: &mut [S]) {
    for (((xb, db), qb), sb) in x.chunks_exact(block).zip(d.iter_mut()).zip(qs.chunks_exact_mut(block)).zip(sums.chunks_exact_mut(block / 16)) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let step = amax / 127.0;
        let inv = if step > 0.0 { 1.0 / step } else { 0.0 };
        *db = step;
        for ((xh, qh), s) in xb.chunks_exact(16).zip(qb.chunks_exact_mut(16)).zip(sb.iter_mut()) {
            let mut sum = S::default();
            for (q, &v) in qh.iter_mut().zip(xh) {
                *q = (v * inv).round_ties_even() as i8;
                sum += S::from(*q);
            }
            *s = sum;
        }
    }
}

multiversion! {
    fn quantize_blocks(x: &[f32], d: &mut [f32], qs: &mut [i8], sums: &mut [i32]) {
        quantize(x, QA, d, qs, sums)
    }
}

multiversion! {
    fn quantize_super_blocks(x: &[f32], d: &mut [f32], qs: &mut [i8], bsums: &mut [i16]) {
        quantize(x, QK, d, qs, bsums)
    }
}
