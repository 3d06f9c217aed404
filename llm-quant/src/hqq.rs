//! HQQ (half-quadratic quantization, Badri & Shaji 2023) as hqq 0.2.8 runs it: calibration-free,
//! an affine grid per group of `group_size` consecutive weights along the input (`axis=1`)
//! whose zero point is fitted by a proximal solver for an `lp` loss (`p = 0.7`) on the
//! quantization error, so outliers pull the grid less than a least-squares fit would.
//!
//! Per group, with the inverse scale `s⁻¹ = (2^b − 1) / (max − min)` (1 where `max − min ≤ 1e-4`,
//! at most 2e4) and `z = −min · s⁻¹` (rounded for 4 bits, as `hqq_base_quant_config` sets
//! `round_zero`), then for up to 20 iterations, β = 10:
//!
//! ```text
//! q  = clamp(round(w·s⁻¹ + z), 0, 2^b − 1);   ŵ = (q − z) / s⁻¹
//! e  = shrink_p(w − ŵ, β)   (sign(x)·max(|x| − |x|^(p−1)/β, 0))
//! z  = mean over the group of (q − (w − e)·s⁻¹)
//! ```
//!
//! stopping as soon as the whole tensor's mean `|w − ŵ|` no longer falls (hqq's early stop,
//! which keeps the zero point of that last step). β stays fixed: the legacy solver hqq runs by
//! default never applies its `kappa`. The codes are then `round(w·s⁻¹ + z)` and the
//! stored scale `1/s⁻¹`: `w ≈ (q − z)·scale`, an [`AffineWeight`] with fractional zeros.

use llm_core::quant::AffineWeight;
use rayon::prelude::*;

use crate::error::{QuantError, Result};

/// The proximal solver's settings (hqq's `optimize_weights_proximal_legacy` defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HqqSolver {
    /// The `p` of the `lp` loss (0.7).
    pub lp_norm: f32,
    /// β (10), fixed over the iterations.
    pub beta: f32,
    /// Most iterations (20).
    pub iters: usize,
}

impl Default for HqqSolver {
    fn default() -> Self {
        Self { lp_norm: 0.7, beta: 10.0, iters: 20 }
    }
}

/// How the stored scale and zero are rounded (HQQ keeps them in its compute dtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HqqMetaDtype {
    /// float16 (HQQLinear's and transformers' default `compute_dtype`).
    F16,
    /// bfloat16.
    Bf16,
    /// float32.
    F32,
}

impl HqqMetaDtype {
    /// The value as the dtype stores it.
    pub fn round(self, v: f32) -> f32 {
        match self {
            Self::F16 => half::f16::from_f32(v).to_f32(),
            Self::Bf16 => half::bf16::from_f32(v).to_f32(),
            Self::F32 => v,
        }
    }

    /// torch's name (`float16`...).
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F16 => "float16",
            Self::Bf16 => "bfloat16",
            Self::F32 => "float32",
        }
    }
}

/// HQQ settings, with hqq's names and defaults (`hqq_base_quant_config`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HqqParams {
    /// 1, 2, 3, 4, 5, 6 or 8 bits.
    pub bits: u32,
    /// Consecutive weights per group along the input; must divide each layer's width.
    pub group_size: usize,
    /// Round the initial zero point (hqq does for 4 bits).
    pub round_zero: bool,
    /// Fit the zero point with the proximal solver (`optimize`); otherwise plain min-max.
    pub optimize: bool,
    /// The solver's settings.
    pub solver: HqqSolver,
    /// The dtype scale and zero are kept in.
    pub meta_dtype: HqqMetaDtype,
}

impl HqqParams {
    /// hqq's defaults for `bits` and `group_size` (`round_zero` for 4 bits, the optimizer on,
    /// float16 scale and zero).
    pub fn new(bits: u32, group_size: usize) -> Self {
        Self { bits, group_size, round_zero: bits == 4, optimize: true, solver: HqqSolver::default(), meta_dtype: HqqMetaDtype::F16 }
    }

    /// Checks bits, group size (a multiple of 8, as hqq asserts) and the solver.
    pub fn validate(&self) -> Result<()> {
        if !matches!(self.bits, 1..=6 | 8) {
            return Err(QuantError::config("bits", format!("{} is not one of 1, 2, 3, 4, 5, 6, 8", self.bits)));
        }
        if self.group_size == 0 || !self.group_size.is_multiple_of(8) {
            return Err(QuantError::config("group_size", format!("{} is not a positive multiple of 8", self.group_size)));
        }
        let s = &self.solver;
        let in_range = s.lp_norm > 0.0 && s.lp_norm <= 1.0 && s.beta > 0.0 && s.beta.is_finite();
        if !in_range || s.iters < 2 {
            return Err(QuantError::config("solver", format!("{s:?}: need 0 < lp_norm <= 1, 0 < beta < inf, iters >= 2")));
        }
        Ok(())
    }
}

/// What HQQ made of one weight: codes and per-group scale and zero.
#[derive(Debug, Clone)]
pub struct HqqQuantized {
    /// `[d_out, d_in]` codes below `2^bits`.
    pub codes: Vec<u8>,
    /// `[d_out · d_in / group_size]` dequantization scale per group, in flattened order.
    pub scale: Vec<f32>,
    /// `[d_out · d_in / group_size]` zero point per group.
    pub zero: Vec<f32>,
    /// Solver iterations run (the last one's error did not fall, or the limit was reached).
    pub iterations: usize,
}

impl HqqQuantized {
    /// `(q − z)·scale` per group, in f32. `[d_out · d_in]`.
    pub fn dequantize(&self, group_size: usize) -> Vec<f32> {
        self.codes.iter().enumerate().map(|(i, &q)| (f32::from(q) - self.zero[i / group_size]) * self.scale[i / group_size]).collect()
    }

    /// As the runtime's weight: groups of consecutive input columns.
    pub fn to_affine(&self, d_out: usize, d_in: usize, bits: u32, group_size: usize) -> Result<AffineWeight> {
        if !d_in.is_multiple_of(group_size) {
            return Err(QuantError::config("group_size", format!("{group_size} does not divide the layer width {d_in}")));
        }
        let g_idx = (0..d_in).map(|c| (c / group_size) as u32).collect();
        Ok(AffineWeight::new(d_out, d_in, bits, &self.codes, self.scale.clone(), self.zero.clone(), g_idx)?)
    }
}

/// Quantizes `w` (`[d_out, d_in]`) with HQQ along the input (`axis=1`). Groups must not cross
/// rows, so `group_size` has to divide `d_in` (hqq only needs it to divide the element count).
pub fn quantize_hqq(w: &[f32], d_out: usize, d_in: usize, params: &HqqParams) -> Result<HqqQuantized> {
    params.validate()?;
    if w.len() != d_out * d_in {
        return Err(QuantError::Shape { what: "weight".into(), expected: format!("[{d_out}, {d_in}]"), got: format!("{} values", w.len()) });
    }
    if !d_in.is_multiple_of(params.group_size) {
        return Err(QuantError::config("group_size", format!("{} does not divide the layer width {d_in}", params.group_size)));
    }
    if w.iter().any(|v| !v.is_finite()) {
        return Err(QuantError::NonFinite { what: "weight".into() });
    }
    let g = params.group_size;
    let max_code = ((1u32 << params.bits) - 1) as f32;
    // Inverse scale and zero per group, from the group's range.
    let (mut inv, mut zero): (Vec<f32>, Vec<f32>) = w
        .par_chunks(g)
        .map(|group| {
            let (lo, hi) = group.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let denom = hi - lo;
            let inv = if denom.abs() <= 1e-4 { 1.0 } else { (max_code / denom).min(2e4) };
            let z = -lo * inv;
            (inv, if params.round_zero { z.round_ties_even() } else { z })
        })
        .unzip();
    let mut iterations = 0;
    if params.optimize {
        iterations = solve_zeros(w, g, max_code, &inv, &mut zero, &params.solver);
    }
    // Stored scale and zero in the meta dtype; codes from the solver's float values, as hqq
    // takes them before casting.
    let codes: Vec<u8> = w
        .par_iter()
        .enumerate()
        .map(|(i, &v)| (v * inv[i / g] + zero[i / g]).round_ties_even().clamp(0.0, max_code) as u8)
        .collect();
    for s in &mut inv {
        *s = params.meta_dtype.round(1.0 / *s);
    }
    for z in &mut zero {
        *z = params.meta_dtype.round(*z);
    }
    // A narrow group far from zero (inverse scale clamped at 2e4) can put its zero point past
    // float16's 65504: hqq would store inf; say so instead.
    if let Some(v) = inv.iter().chain(&zero).find(|v| !v.is_finite()) {
        return Err(QuantError::config(
            "meta_dtype",
            format!("a scale or zero point becomes {v} in {}; keep them in float32", params.meta_dtype.torch_name()),
        ));
    }
    Ok(HqqQuantized { codes, scale: inv, zero, iterations })
}

/// hqq's `optimize_weights_proximal_legacy`: updates `zero` in place; returns the iterations run.
fn solve_zeros(w: &[f32], g: usize, max_code: f32, inv: &[f32], zero: &mut [f32], solver: &HqqSolver) -> usize {
    let beta = solver.beta;
    let mut best = f32::INFINITY;
    let p = solver.lp_norm;
    for it in 0..solver.iters {
        // One step: the error of the current zeros, and each group's next zero.
        let (abs_err, next): (Vec<f64>, Vec<f32>) = w
            .par_chunks(g)
            .zip(inv.par_iter().zip(zero.par_iter()))
            .map(|(group, (&s, &z))| {
                let (mut err, mut acc) = (0f64, 0f64);
                for &v in group {
                    let q = (v * s + z).round_ties_even().clamp(0.0, max_code);
                    let r = (q - z) / s;
                    let d = v - r;
                    err += f64::from(d.abs());
                    let e = shrink(d, beta, p);
                    acc += f64::from(q - (v - e) * s);
                }
                (err, (acc / group.len() as f64) as f32)
            })
            .unzip();
        zero.copy_from_slice(&next);
        let err = (abs_err.iter().sum::<f64>() / w.len() as f64) as f32;
        if err < best {
            best = err;
        } else {
            return it + 1;
        }
    }
    solver.iters
}

/// `sign(x)·max(|x| − |x|^(p−1)/β, 0)` (`|x|` alone for `p = 1`).
fn shrink(x: f32, beta: f32, p: f32) -> f32 {
    let a = x.abs();
    // torch multiplies by the scalar 1/β (as f32), not divides by β.
    let t = if p == 1.0 { 1.0 / beta } else { (1.0 / beta) * a.powf(p - 1.0) };
    let out = (a - t).max(0.0);
    if x < 0.0 {
        -out
    } else {
        out
    }
}

/// `quantization_config` as transformers' `HqqConfig` writes it (`quant_method: hqq`, hqq's
/// `BaseQuantizeConfig` under `quant_config`, `lm_head` skipped).
pub fn config_json(params: &HqqParams) -> serde_json::Value {
    serde_json::json!({
        "quant_method": "hqq",
        "quant_config": {
            "weight_quant_params": {
                "nbits": params.bits,
                "channel_wise": true,
                "group_size": params.group_size,
                "optimize": params.optimize,
                "round_zero": params.round_zero,
                "axis": 1,
                "view_as_float": false,
            },
            "scale_quant_params": null,
            "zero_quant_params": null,
            "offload_meta": false,
        },
        "skip_modules": ["lm_head"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(n: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * if i % 97 == 0 { 6.0 } else { 1.0 }).collect()
    }

    #[test]
    fn the_solver_lowers_the_mean_error_of_plain_min_max() {
        let (d_out, d_in) = (16, 128);
        let w = weights(d_out * d_in);
        for bits in [2u32, 3, 4] {
            let mut plain = HqqParams::new(bits, 64);
            plain.optimize = false;
            plain.meta_dtype = HqqMetaDtype::F32;
            let mut fitted = plain;
            fitted.optimize = true;
            let err = |p: &HqqParams| {
                let q = quantize_hqq(&w, d_out, d_in, p).unwrap();
                q.dequantize(64).iter().zip(&w).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>() / w.len() as f64
            };
            assert!(err(&fitted) < err(&plain), "{bits} bits: {} vs {}", err(&fitted), err(&plain));
        }
    }

    #[test]
    fn codes_fit_the_bits_and_run_as_an_affine_weight() {
        let (d_out, d_in) = (8, 64);
        let w = weights(d_out * d_in);
        for bits in [1u32, 2, 3, 4, 5, 6, 8] {
            let q = quantize_hqq(&w, d_out, d_in, &HqqParams::new(bits, 32)).unwrap();
            assert!(q.codes.iter().all(|&c| u32::from(c) < 1 << bits));
            let a = q.to_affine(d_out, d_in, bits, 32).unwrap();
            assert_eq!(a.dequantize(), q.dequantize(32), "{bits} bits");
        }
    }

    #[test]
    fn a_group_size_that_does_not_divide_the_width_is_refused() {
        let w = weights(4 * 96);
        let e = quantize_hqq(&w, 4, 96, &HqqParams::new(4, 64)).unwrap_err();
        assert!(e.to_string().contains("group_size"), "{e}");
    }

    #[test]
    fn a_zero_point_past_float16_is_an_error_not_inf() {
        // A group spanning 3.1e-4 at -5: inverse scale 15/3.1e-4, clamped to 2e4; zero 1e5.
        let w: Vec<f32> = (0..32).map(|i| -5.0 + i as f32 * 1e-5).collect();
        let e = quantize_hqq(&w, 1, 32, &HqqParams::new(4, 32)).unwrap_err();
        assert!(e.to_string().contains("meta_dtype"), "{e}");
        let mut f32_meta = HqqParams::new(4, 32);
        f32_meta.meta_dtype = HqqMetaDtype::F32;
        assert!(quantize_hqq(&w, 1, 32, &f32_meta).is_ok());
    }

    #[test]
    fn shrink_is_soft_thresholding_at_p_one() {
        assert_eq!(shrink(0.5, 10.0, 1.0), 0.4);
        assert_eq!(shrink(-0.05, 10.0, 1.0), 0.0);
        assert_eq!(shrink(0.0, 10.0, 0.7), 0.0);
    }
}
