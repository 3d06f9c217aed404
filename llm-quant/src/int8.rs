//! Int8 quantization of a row-major `[rows, cols]` matrix held in host memory.
//!
//! Two schemes, with the reference's torch arithmetic reproduced in `f32`, operation by
//! operation, so that codes match bit for bit:
//!
//! - **absmax** (symmetric): `scale = 127 / max|x|`, `q = round(x * scale)` clamped to
//!   `[-127, 127]`, dequantized as `q / scale`;
//! - **zero-point** (asymmetric): `scale = 255 / (max - min)`, `zp = -round(scale * min) - 128`,
//!   `q = round(x * scale + zp)` clamped to `[-128, 127]`, dequantized as `(q - zp) / scale`.
//!
//! `round` is torch's round-half-to-even ([`f32::round_ties_even`]). The statistics are taken per
//! tensor, per row, or per group of consecutive columns within a row ([`Granularity`]).
//!
//! LLM.int8()'s row-wise quantization follows bitsandbytes' `int8_vectorwise_quant`
//! ([`int8_vectorwise`]), and [`outlier_columns`] finds the columns its mixed-precision
//! decomposition keeps in floating point.

use half::f16;

use crate::error::{QuantError, Result};

/// Which elements share one scale (and zero point).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One scale for the whole `[rows, cols]` matrix.
    PerTensor,
    /// One scale per row: `rows` scales.
    PerRow,
    /// One scale per group of this many consecutive columns within a row: `rows * cols / g`
    /// scales. The group size must divide `cols`.
    PerGroup(usize),
}

/// How a group's value range maps onto the 256 int8 codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Scheme {
    /// Symmetric: `[-max|x|, max|x|]` onto `[-127, 127]`; no zero point.
    Absmax,
    /// Asymmetric: `[min, max]` onto `[-128, 127]` with a zero point.
    ZeroPoint,
}

/// An int8-quantized `[rows, cols]` matrix with its scales.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Quantized {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// The codes, `[rows, cols]` row-major.
    pub codes: Vec<i8>,
    /// Which elements share a scale.
    pub granularity: Granularity,
    /// Symmetric or asymmetric.
    pub scheme: Int8Scheme,
    /// Quantization multipliers (`code ≈ x * scale`), one per tensor / row / group:
    /// `[n_scales]` in row-major group order (see [`Int8Quantized::scale_index`]).
    pub scales: Vec<f32>,
    /// Zero points (integral values stored as `f32`, as the reference does), same length as
    /// `scales`; `Some` exactly for [`Int8Scheme::ZeroPoint`].
    pub zero_points: Option<Vec<f32>>,
}

impl Int8Quantized {
    /// The index into `scales` (and `zero_points`) of element `(r, c)`.
    pub fn scale_index(&self, r: usize, c: usize) -> usize {
        scale_index(self.granularity, self.cols, r, c)
    }

    /// The dequantized matrix, `[rows, cols]` row-major: `q / scale` (absmax) or
    /// `(q - zp) / scale` (zero-point), in `f32` as the reference computes it.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.codes.len());
        for r in 0..self.rows {
            for c in 0..self.cols {
                let q = f32::from(self.codes[r * self.cols + c]);
                let g = self.scale_index(r, c);
                let zp = self.zero_points.as_ref().map_or(0.0, |z| z[g]);
                out.push((q - zp) / self.scales[g]);
            }
        }
        out
    }
}

/// Quantizes the row-major `[rows, cols]` matrix `x` to int8 with `scheme`, one scale per
/// `granularity` group.
///
/// A group with no range never divides by zero: an all-zero group gets scale 1 (its codes are
/// 0); under zero-point, a constant non-zero group has its range widened to include 0, so it
/// still dequantizes to (nearly) itself.
///
/// Errors: `x.len() != rows * cols` ([`QuantError::Shape`]); a group size that is zero or does
/// not divide `cols` ([`QuantError::Config`] on `group_size`); a NaN or infinite input
/// ([`QuantError::NonFinite`]).
pub fn quantize_int8(
    x: &[f32],
    rows: usize,
    cols: usize,
    scheme: Int8Scheme,
    granularity: Granularity,
) -> Result<Int8Quantized> {
    check_matrix(x, rows, cols, "int8 input")?;
    check_granularity(granularity, cols)?;
    let ranges = group_ranges(x, rows, cols, granularity);
    let (scales, zero_points) = match scheme {
        Int8Scheme::Absmax => (ranges.iter().map(|&(lo, hi)| absmax_scale(lo, hi)).collect(), None),
        Int8Scheme::ZeroPoint => {
            let (s, z): (Vec<f32>, Vec<f32>) = ranges.iter().map(|&(lo, hi)| zero_point_params(lo, hi)).unzip();
            (s, Some(z))
        }
    };
    let mut codes = Vec::with_capacity(x.len());
    for r in 0..rows {
        for c in 0..cols {
            let g = scale_index(granularity, cols, r, c);
            let v = x[r * cols + c];
            codes.push(match &zero_points {
                None => absmax_code(v, scales[g]),
                Some(z) => zero_point_code(v, scales[g], z[g]),
            });
        }
    }
    Ok(Int8Quantized { rows, cols, codes, granularity, scheme, scales, zero_points })
}

/// A matrix quantized row-wise the way LLM.int8() does it (bitsandbytes'
/// `int8_vectorwise_quant`).
#[derive(Debug, Clone, PartialEq)]
pub struct VectorwiseInt8 {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// The codes, `[rows, cols]` row-major, in `[-127, 127]`.
    pub codes: Vec<i8>,
    /// Each row's `max|x|` after rounding to f16, `[rows]` (bitsandbytes' `SCB` / row stats).
    pub row_absmax: Vec<f32>,
}

impl VectorwiseInt8 {
    /// The dequantized matrix, `[rows, cols]`, as bitsandbytes' `int8_vectorwise_dequant`
    /// computes it: `q * row_absmax * (1/127 as f32)`.
    pub fn dequantize(&self) -> Vec<f32> {
        // bitsandbytes multiplies by its literal 7.874015718698502e-3 (1/127) as f32 rather
        // than dividing by 127.
        const INV_127: f32 = 0.007_874_016;
        self.codes.iter().enumerate().map(|(i, &q)| f32::from(q) * self.row_absmax[i / self.cols] * INV_127).collect()
    }
}

/// Quantizes the row-major `[rows, cols]` matrix `x` row-wise to int8 as bitsandbytes'
/// `int8_vectorwise_quant` does (threshold 0, no outlier handling): `x` is first rounded to f16
/// (bitsandbytes takes f16 activations), then `q = round(x16 * (127 / rowabsmax))`.
///
/// Errors: `x.len() != rows * cols` ([`QuantError::Shape`]); a NaN or infinite input, or one
/// that overflows f16 ([`QuantError::NonFinite`]).
pub fn int8_vectorwise(x: &[f32], rows: usize, cols: usize) -> Result<VectorwiseInt8> {
    check_matrix(x, rows, cols, "int8_vectorwise input")?;
    let x16: Vec<f32> = x.iter().map(|&v| round_to_f16(v)).collect();
    // Values beyond f16's range became infinite: bitsandbytes would quantize garbage.
    check_finite(&x16, "int8_vectorwise input (rounded to f16)")?;
    let mut codes = Vec::with_capacity(x.len());
    let mut row_absmax = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &x16[r * cols..(r + 1) * cols];
        let amax = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        // `127.0 / row_stats` in torch is `row_stats.reciprocal() * 127.0`. An all-zero row
        // would give 0 * inf = NaN; a zero multiplier gives the codes bitsandbytes intends (0).
        let mult = if amax > 0.0 { torch_rdiv(127.0, amax) } else { 0.0 };
        codes.extend(row.iter().map(|&v| (v * mult).round_ties_even() as i8));
        row_absmax.push(amax);
    }
    Ok(VectorwiseInt8 { rows, cols, codes, row_absmax })
}

/// LLM.int8()'s outlier columns: llm-core's one definition of the rule (f16-rounded
/// `|x| >= threshold`, as bitsandbytes compares), shared with the runtime matmul.
pub use llm_core::quant::outlier_columns;

/// Index into the scales of element `(r, c)` of a matrix with `cols` columns.
fn scale_index(granularity: Granularity, cols: usize, r: usize, c: usize) -> usize {
    match granularity {
        Granularity::PerTensor => 0,
        Granularity::PerRow => r,
        Granularity::PerGroup(g) => r * (cols / g) + c / g,
    }
}

/// How many scales a `[rows, cols]` matrix has under `granularity` (validated).
fn n_scales(granularity: Granularity, rows: usize, cols: usize) -> usize {
    match granularity {
        Granularity::PerTensor => 1,
        Granularity::PerRow => rows,
        Granularity::PerGroup(g) => rows * (cols / g),
    }
}

/// A group must tile each row exactly, or its scale would straddle two rows.
fn check_granularity(granularity: Granularity, cols: usize) -> Result<()> {
    match granularity {
        Granularity::PerGroup(0) => Err(QuantError::config("group_size", "must be at least 1")),
        Granularity::PerGroup(g) if !cols.is_multiple_of(g) => {
            Err(QuantError::config("group_size", format!("{g} does not divide the {cols} columns")))
        }
        _ => Ok(()),
    }
}

/// Each group's `(min, max)`, in scale order. An empty group (zero-sized matrix) gives `(0, 0)`.
fn group_ranges(x: &[f32], rows: usize, cols: usize, g: Granularity) -> Vec<(f32, f32)> {
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); n_scales(g, rows, cols)];
    for r in 0..rows {
        for c in 0..cols {
            let v = x[r * cols + c];
            let (lo, hi) = &mut ranges[scale_index(g, cols, r, c)];
            *lo = lo.min(v);
            *hi = hi.max(v);
        }
    }
    for range in &mut ranges {
        if range.0 > range.1 {
            *range = (0.0, 0.0);
        }
    }
    ranges
}

/// The absmax multiplier `127 / max|x|` of a group with range `[lo, hi]`.
fn absmax_scale(lo: f32, hi: f32) -> f32 {
    let amax = lo.abs().max(hi.abs());
    safe_multiplier(127.0, amax)
}

/// The zero-point multiplier and zero point of a group with range `[lo, hi]`.
fn zero_point_params(lo: f32, hi: f32) -> (f32, f32) {
    // A constant group has no range to spread over the codes. Widening it to include 0 (the
    // convention of torch's observers) keeps a constant `v != 0` exact up to rounding instead
    // of collapsing it to `round(v)`; a group of zeros falls through to the multiplier 1.
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo.min(0.0), hi.max(0.0)) };
    let scale = safe_multiplier(255.0, hi - lo);
    let zp = -(scale * lo).round_ties_even() - 128.0;
    (scale, zp)
}

/// `numer / denom` the way torch computes `python_float / tensor` (see [`torch_rdiv`]), or 1
/// when that is not a usable multiplier: `denom == 0` (all-zero group) would divide by zero, and a
/// range so small or large that the multiplier leaves f32's finite, non-zero range would turn
/// the codes or the dequantization into NaN/inf. With 1, zeros still quantize exactly.
fn safe_multiplier(numer: f32, denom: f32) -> f32 {
    let m = if denom > 0.0 { torch_rdiv(numer, denom) } else { 0.0 };
    if m.is_finite() && m > 0.0 {
        m
    } else {
        1.0
    }
}

/// torch evaluates `python_float / tensor` as `tensor.reciprocal() * python_float`: two f32
/// roundings, which differ from one `numer / denom` in the last bit for some inputs (2 of the
/// fixture's 8 per-row absmax scales).
fn torch_rdiv(numer: f32, denom: f32) -> f32 {
    (1.0 / denom) * numer
}

/// `round(v * scale).clamp(-127, 127)` as int8.
fn absmax_code(v: f32, scale: f32) -> i8 {
    (v * scale).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// `round(v * scale + zp).clamp(-128, 127)` as int8; the product is rounded before the
/// addition, as torch's two separate kernels do.
fn zero_point_code(v: f32, scale: f32, zp: f32) -> i8 {
    (v * scale + zp).round_ties_even().clamp(-128.0, 127.0) as i8
}

/// `v` rounded to the nearest f16 and back (torch's `.half()`).
fn round_to_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// `x` must hold exactly `rows * cols` values.
fn check_matrix(x: &[f32], rows: usize, cols: usize, what: &str) -> Result<()> {
    if rows.checked_mul(cols) != Some(x.len()) {
        return Err(QuantError::Shape {
            what: what.to_string(),
            expected: format!("[{rows}, {cols}] = {} values", rows.saturating_mul(cols)),
            got: format!("{} values", x.len()),
        });
    }
    check_finite(x, what)
}

/// NaN or infinity would poison a whole group's range.
fn check_finite(x: &[f32], what: &str) -> Result<()> {
    if x.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(QuantError::NonFinite { what: what.to_string() })
    }
}
