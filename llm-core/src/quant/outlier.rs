//! LLM.int8() (Dettmers et al. 2022; bitsandbytes `Linear8bitLt`): weights int8 per output row
//! (vector-wise absmax, `SCB`); at run time the input columns holding an outlier
//! (`|x| ≥ threshold`) are multiplied in float against the dequantized weight columns, the rest
//! is quantized per input row to int8 and multiplied in integers.


use super::affine::by_output_row;
use crate::error::{LlmError, Result};

/// An LLM.int8() weight `[d_out, d_in]`.
#[derive(Clone)]
pub struct OutlierInt8Weight {
    /// Output features.
    pub d_out: usize,
    /// Input features.
    pub d_in: usize,
    /// `[d_out, d_in]` codes in `-127..=127`.
    pub codes: Vec<i8>,
    /// `[d_out]` absmax of each weight row (bitsandbytes' `SCB`).
    pub row_absmax: Vec<f32>,
    /// Input magnitude from which a column is an outlier (bitsandbytes' `llm_int8_threshold`,
    /// 6.0); `0` disables the decomposition.
    pub threshold: f32,
}

impl OutlierInt8Weight {
    /// Checks the parts against `[d_out, d_in]`.
    pub fn new(d_out: usize, d_in: usize, codes: Vec<i8>, row_absmax: Vec<f32>, threshold: f32) -> Result<Self> {
        if codes.len() != d_out * d_in || row_absmax.len() != d_out {
            return Err(LlmError::Quant {
                tensor: "int8 weight".into(),
                message: format!("codes {} / SCB {} do not fit [{d_out}, {d_in}]", codes.len(), row_absmax.len()),
            });
        }
        Ok(Self { d_out, d_in, codes, row_absmax, threshold })
    }

    /// `[d_out, d_in]`: `q · SCB · (1/127)`, in bitsandbytes' `int8_vectorwise_dequant` order.
    pub fn dequantize(&self) -> Vec<f32> {
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q) * self.row_absmax[i / self.d_in] * (1.0 / 127.0))
            .collect()
    }

    /// Input columns with an outlier in any row ([`outlier_columns`]). x: `[rows, d_in]`.
    pub fn outlier_columns(&self, x: &[f32]) -> Vec<usize> {
        outlier_columns(x, x.len() / self.d_in.max(1), self.d_in, self.threshold)
    }

    /// x: `[rows, d_in]` -> `[rows, d_out]`: float product over outlier columns plus the int8
    /// product (`Σ qx·qw · absmax_x · SCB / 127²`) over the rest.
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let outliers = self.outlier_columns(x);
        // As bitsandbytes: each row's absmax ignores the outlier elements (|x| ≥ threshold),
        // and the outlier columns are left out of the int8 codes entirely.
        let is_outlier = |v: f32| is_outlier(v, self.threshold);
        let x_absmax: Vec<f32> = x
            .chunks_exact(self.d_in)
            .map(|r| r.iter().filter(|v| !is_outlier(**v)).fold(0f32, |m, v| m.max(v.abs())))
            .collect();
        let mut qx8: Vec<i8> = x
            .chunks_exact(self.d_in)
            .zip(&x_absmax)
            .flat_map(|(r, &m)| {
                let s = if m > 0.0 { 127.0 / m } else { 0.0 };
                r.iter().map(move |&v| if is_outlier(v) { 0 } else { (v * s).round_ties_even().clamp(-127.0, 127.0) as i8 })
            })
            .collect();
        for row in qx8.chunks_exact_mut(self.d_in) {
            for &c in &outliers {
                row[c] = 0;
            }
        }
        by_output_row(self.d_out, rows, || (), |_, o, ys| {
            let w = &self.codes[o * self.d_in..(o + 1) * self.d_in];
            let scb = self.row_absmax[o];
            for (r, y) in ys.iter_mut().enumerate() {
                let acc = fused::dot_i8(&qx8[r * self.d_in..(r + 1) * self.d_in], w);
                let float: f32 = outliers.iter().map(|&c| x[r * self.d_in + c] * (f32::from(w[c]) * scb * (1.0 / 127.0))).sum();
                *y = acc as f32 * (x_absmax[r] * scb / (127.0 * 127.0)) + float;
            }
        })
    }

    /// Codes plus statistics, in bytes.
    pub fn storage_bytes(&self) -> usize {
        self.codes.len() + 4 * self.row_absmax.len()
    }
}

/// LLM.int8()'s outlier rule, the one definition quantization and the runtime share: `v` is an
/// outlier when `|v|`, rounded to f16, is at least `threshold`. bitsandbytes casts activations
/// to f16 before `int8_double_quant` compares them, so a value just under the threshold that
/// rounds up to it (5.999 -> 6.0) is an outlier there too (the `e_quant` fixture pins this).
/// A threshold `<= 0` or NaN disables the decomposition.
pub fn is_outlier(v: f32, threshold: f32) -> bool {
    threshold > 0.0 && half::f16::from_f32(v).to_f32().abs() >= threshold
}

/// The columns of the row-major `[rows, cols]` matrix `x` holding at least one outlier
/// ([`is_outlier`]), ascending: the columns LLM.int8() keeps in floating point. `x` shorter
/// than `rows * cols` is read as far as it goes.
pub fn outlier_columns(x: &[f32], rows: usize, cols: usize, threshold: f32) -> Vec<usize> {
    if cols == 0 || threshold.is_nan() || threshold <= 0.0 {
        return Vec::new();
    }
    let mut hit = vec![false; cols];
    for (i, &v) in x.iter().take(rows * cols).enumerate() {
        if is_outlier(v, threshold) {
            hit[i % cols] = true;
        }
    }
    (0..cols).filter(|&c| hit[c]).collect()
}

mod fused {
    use crate::quant::kernels::multiversion;

    #[inline(always)]
    fn dot_i8_generic(a: &[i8], b: &[i8]) -> i32 {
        // Independent i32 lanes so the loop vectorizes (products of int8 fit in i16, sums in i32).
        let mut acc = [0i32; 16];
        let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
        let tail: i32 = ac.remainder().iter().zip(bc.remainder()).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
        for (x, y) in ac.zip(bc) {
            for k in 0..16 {
                acc[k] += i32::from(x[k]) * i32::from(y[k]);
            }
        }
        acc.iter().sum::<i32>() + tail
    }

    pub(super) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        let mut out = [0i32];
        dot_i8_into(a, b, &mut out);
        out[0]
    }

    multiversion! {
        fn dot_i8_into(a: &[i8], b: &[i8], out: &mut [i32; 1]) {
            out[0] = dot_i8_generic(a, b);
        }
    }
}
