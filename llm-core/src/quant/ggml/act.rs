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

multiversion! {
    fn quantize_blocks(x: &[f32], d: &mut [f32], qs: &mut [i8], sums: &mut [i32]) {
        for (((xb, db), qb), sb) in x.chunks_exact(QA).zip(d.iter_mut()).zip(qs.chunks_exact_mut(QA)).zip(sums.chunks_exact_mut(2)) {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let step = amax / 127.0;
            let inv = if step > 0.0 { 1.0 / step } else { 0.0 };
            *db = step;
            for ((xh, qh), s) in xb.chunks_exact(16).zip(qb.chunks_exact_mut(16)).zip(sb.iter_mut()) {
                let mut sum = 0i32;
                for (q, &v) in qh.iter_mut().zip(xh) {
                    *q = (v * inv).round_ties_even() as i8;
                    sum += i32::from(*q);
                }
                *s = sum;
            }
        }
    }
}
