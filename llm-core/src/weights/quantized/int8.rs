//! This family's int8 (`quant_method: llm-rs`, `format: int8`): `weight` int8 `[d_out, d_in]`, `weight_scale` f32 `[d_out, n_groups]` (the dequantization step), `weight_zero_point` f32 `[d_out, n_groups]` (zero-point scheme only): `w = (q − zp) · scale`.

use super::Reader;
use crate::error::{LlmError, Result};
use crate::io::safetensors::{Dtype, OwnedTensor};
use crate::quant::AffineWeight;

impl Reader<'_> {
    pub(super) fn int8(&self, d_out: usize, d_in: usize) -> Result<AffineWeight> {
        let codes: Vec<i8> = self.typed("weight", Some(&[d_out, d_in]), "I8")?;
        let shape = self.source.shape(&self.name("weight_scale")).unwrap_or_default();
        // [1] per tensor, [d_out, 1] per row, [d_out, n_groups] per group.
        let n_groups = if shape.len() == 2 && shape[0] == d_out { shape[1] } else { 1 };
        if n_groups == 0 || !d_in.is_multiple_of(n_groups) || !(shape == [1] || shape == [d_out, n_groups]) {
            return Err(self.err("weight_scale", format!("shape {shape:?}; expected [1], [{d_out}, 1] or [{d_out}, n_groups]")));
        }
        let expand = |v: Vec<f32>| if v.len() == 1 { vec![v[0]; d_out] } else { v };
        let scales = expand(self.f32s("weight_scale", None)?);
        let zeros = if self.source.shape(&self.name("weight_zero_point")).is_some() {
            expand(self.f32s("weight_zero_point", Some(&shape))?)
        } else {
            vec![0.0; scales.len()]
        };
        // Codes are stored offset by 128 so the shared unsigned kernels serve int8 too.
        let unsigned: Vec<u8> = codes.iter().map(|&q| (i16::from(q) + 128) as u8).collect();
        let zeros = zeros.into_iter().map(|z| z + 128.0).collect();
        let g_idx = (0..d_in).map(|c| (c / (d_in / n_groups)) as u32).collect();
        AffineWeight::new(d_out, d_in, 8, &unsigned, scales, zeros, g_idx).map_err(|e| self.err("weight", e.to_string()))
    }
}

/// int8 absmax / zero-point tensors of one layer (codes stored offset by 128 in memory).
pub(super) fn int8_tensors(prefix: &str, w: &AffineWeight) -> Result<Vec<OwnedTensor>> {
    if w.bits != 8 {
        return Err(LlmError::config("quant_method", format!("llm-rs int8 layout needs 8-bit layers; {prefix} has {} bits", w.bits)));
    }
    let n_groups = w.n_groups();
    // The layout stores groups implicitly as equal consecutive runs of columns.
    let uniform = w.consecutive_group_width().is_some_and(|g| w.d_in.is_multiple_of(g));
    if !uniform {
        return Err(LlmError::config(
            "quant_method",
            format!("{prefix}: the llm-rs int8 layout needs equal consecutive groups; write this layer as GPTQ"),
        ));
    }
    let codes: Vec<u8> = w.codes().into_iter().map(|u| (i16::from(u) - 128) as i8 as u8).collect();
    let zero_points: Vec<f32> = w.zeros().iter().map(|z| z - 128.0).collect();
    let mut out = vec![
        OwnedTensor { name: format!("{prefix}.weight"), dtype: Dtype::I8, shape: vec![w.d_out, w.d_in], bytes: codes },
        OwnedTensor::f32(format!("{prefix}.weight_scale"), vec![w.d_out, n_groups], w.scales()),
    ];
    if zero_points.iter().any(|&z| z != 0.0) {
        out.push(OwnedTensor::f32(format!("{prefix}.weight_zero_point"), vec![w.d_out, n_groups], &zero_points));
    }
    Ok(out)
}
