//! Activations quantized once per matmul for the integer dot products: blocks of 32 values,
//! each with an f32 step `d = max|x| / 127` and codes `round(x / d)` (llama.cpp's Q8_0 with
//! the step kept in f32), plus the sum of the codes of each half-block of 16, which the
//! weight formats with an offset or a per-sub-block minimum need.

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
}

impl ActRow {
    /// Quantizes `x` (`[d_in]`, `d_in` a multiple of 32) into `self`, reusing its buffers.
    pub fn quantize(&mut self, x: &[f32]) {
        debug_assert!(x.len().is_multiple_of(QA));
        let blocks = x.len() / QA;
        self.d.clear();
        self.qs.clear();
        self.sums.clear();
        self.qs.reserve(x.len());
        for xb in x.chunks_exact(QA) {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            self.d.push(d);
            for half in xb.chunks_exact(16) {
                let mut sum = 0i32;
                for &v in half {
                    let q = (v * id).round() as i8;
                    sum += i32::from(q);
                    self.qs.push(q);
                }
                self.sums.push(sum);
            }
        }
        debug_assert_eq!(self.d.len(), blocks);
    }

    /// The value the codes stand for: `[d_in]`.
    pub fn dequantize(&self) -> Vec<f32> {
        self.qs.iter().enumerate().map(|(i, &q)| self.d[i / QA] * f32::from(q)).collect()
    }
}
