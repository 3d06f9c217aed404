//! AWQ's group quantizer (AutoAWQ's `pseudo_quantize_tensor` with `zero_point=True`): per
//! group of consecutive input columns, `s = max(max − min, 1e-5) / (2^bits − 1)`,
//! `z = clamp(−round(min / s), 0, 2^bits − 1)`, `q = clamp(round(w / s) + z, 0, 2^bits − 1)`,
//! `ŵ = (q − z) · s`. torch rounds half to even.
//!
//! The searches evaluate this in f32 (AutoAWQ uses the model's dtype; an f32 model is what
//! its fixture ran). The final codes are taken as
//! AutoAWQ's `_apply_quant` takes them, after casting the layer to fp16: every operation
//! rounded to fp16 (the 1e-5 floor becomes fp16's 1.0014e-5), so the codes, fp16 scales and
//! zeros equal AutoAWQ's, and the model in memory computes what the saved checkpoint holds.

use half::f16;
use llm_core::quant::AffineWeight;
use rayon::prelude::*;

use crate::error::Result;

/// Bits and group bounds of one layer's grid.
#[derive(Debug, Clone)]
pub(crate) struct Grid {
    /// Bits per code.
    pub bits: u32,
    /// `n_groups + 1` column offsets: group `g` is `bounds[g]..bounds[g + 1]`.
    pub bounds: Vec<usize>,
}

impl Grid {
    /// Consecutive groups of `width` columns over `d_in` (the last one shorter if it must be).
    pub fn new(bits: u32, d_in: usize, width: usize) -> Self {
        let mut bounds: Vec<usize> = (0..d_in).step_by(width.max(1)).collect();
        bounds.push(d_in);
        Self { bits, bounds }
    }

    pub fn n_groups(&self) -> usize {
        self.bounds.len() - 1
    }

    fn max_code(&self) -> f32 {
        ((1u32 << self.bits) - 1) as f32
    }

    /// Scale and zero of one group's values, in f32.
    fn params(&self, w: &[f32]) -> (f32, f32) {
        let (lo, hi) = range(w);
        let max_code = self.max_code();
        let scale = (hi - lo).max(1e-5) / max_code;
        let zero = (-(lo / scale).round_ties_even()).clamp(0.0, max_code);
        (scale, zero)
    }

    /// Scale and zero of one group of fp16 values, every step rounded to fp16.
    fn params_f16(&self, w: &[f32]) -> (f32, f32) {
        let (lo, hi) = range(w);
        let max_code = self.max_code();
        let scale = h(h(hi - lo).max(h(1e-5)) / max_code);
        let zero = (-h(lo / scale).round_ties_even()).clamp(0.0, max_code);
        (scale, zero)
    }

    fn code(&self, v: f32, scale: f32, zero: f32) -> f32 {
        ((v / scale).round_ties_even() + zero).clamp(0.0, self.max_code())
    }

    /// Quantizes and dequantizes one row in place. row: `[d_in]`.
    pub fn fake_quantize_row(&self, row: &mut [f32]) {
        for g in self.bounds.windows(2) {
            let span = &mut row[g[0]..g[1]];
            let (scale, zero) = self.params(span);
            for v in span.iter_mut() {
                *v = (self.code(*v, scale, zero) - zero) * scale;
            }
        }
    }

    /// [`Self::fake_quantize_row`] over every row. w: `[rows, d_in]`.
    pub fn fake_quantize(&self, w: &mut [f32]) {
        let d_in = self.bounds[self.n_groups()];
        w.par_chunks_mut(d_in).for_each(|row| self.fake_quantize_row(row));
    }

    /// The weight as codes with fp16 scales and integer zeros, computed in fp16 from the
    /// fp16-rounded weight. w: `[d_out, d_in]`.
    pub fn quantize(&self, w: &[f32], d_out: usize) -> Result<AffineWeight> {
        let (d_in, n_groups) = (self.bounds[self.n_groups()], self.n_groups());
        let mut codes = vec![0u8; d_out * d_in];
        let mut scales = vec![0f32; d_out * n_groups];
        let mut zeros = vec![0f32; d_out * n_groups];
        codes
            .par_chunks_mut(d_in)
            .zip(scales.par_chunks_mut(n_groups).zip(zeros.par_chunks_mut(n_groups)))
            .enumerate()
            .for_each(|(o, (codes, (scales, zeros)))| {
                let row: Vec<f32> = w[o * d_in..(o + 1) * d_in].iter().map(|&v| h(v)).collect();
                for (g, b) in self.bounds.windows(2).enumerate() {
                    let (scale, zero) = self.params_f16(&row[b[0]..b[1]]);
                    (scales[g], zeros[g]) = (scale, zero);
                    for c in b[0]..b[1] {
                        codes[c] = (h(row[c] / scale).round_ties_even() + zero).clamp(0.0, self.max_code()) as u8;
                    }
                }
            });
        let g_idx = self.bounds.windows(2).enumerate().flat_map(|(g, b)| std::iter::repeat_n(g as u32, b[1] - b[0])).collect();
        Ok(AffineWeight::new(d_out, d_in, self.bits, &codes, scales, zeros, g_idx)?)
    }
}

/// `(min, max)` of a group.
fn range(w: &[f32]) -> (f32, f32) {
    w.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// `v` rounded to fp16 (an fp16 operation's result).
fn h(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_dequantize_close_to_the_fake_quantized_weight() {
        let (d_out, d_in) = (6, 40);
        let w: Vec<f32> = (0..d_out * d_in).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        let grid = Grid::new(4, d_in, 16); // groups 16, 16, 8
        let mut fake = w.clone();
        grid.fake_quantize(&mut fake);
        let q = grid.quantize(&w, d_out).unwrap();
        // Each value within half its group's step (plus the fp16 rounding of the weight) of
        // the weight, as the f32 path is.
        let deq = q.dequantize();
        for (i, (&a, &v)) in deq.iter().zip(&w).enumerate() {
            let step = q.scales()[(i / d_in) * 3 + (i % d_in) / 16];
            assert!((a - v).abs() <= step / 2.0 + v.abs() * 2f32.powi(-10), "{i}: {a} vs {v}");
            assert!((fake[i] - v).abs() <= step * 0.51, "{i}: {} vs {v}", fake[i]);
        }
        assert_eq!(q.n_groups(), 3);
        assert!(q.zeros().iter().all(|z| z.fract() == 0.0 && (0.0..=15.0).contains(z)));
    }

    #[test]
    fn a_group_with_both_signs_keeps_its_extremes_within_half_a_step() {
        let row: Vec<f32> = vec![-1.0, -0.3, 0.0, 0.2, 0.7, 1.5, -0.9, 0.05];
        let grid = Grid::new(4, row.len(), 8);
        let mut fake = row.clone();
        grid.fake_quantize_row(&mut fake);
        let step = 2.5f32 / 15.0;
        for (a, b) in row.iter().zip(&fake) {
            assert!((a - b).abs() <= step / 2.0 + 1e-6, "{a} -> {b}");
        }
    }
}
