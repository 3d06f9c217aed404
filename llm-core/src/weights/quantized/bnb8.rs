//! bitsandbytes 8-bit (LLM.int8(), `load_in_8bit`): `weight` int8 `[d_out, d_in]`, `SCB` f32 `[d_out]`.

use super::Reader;
use crate::error::Result;
use crate::io::safetensors::{Dtype, OwnedTensor};
use crate::quant::OutlierInt8Weight;

impl Reader<'_> {
    pub(super) fn bnb8(&self, d_out: usize, d_in: usize, threshold: f32) -> Result<OutlierInt8Weight> {
        let codes: Vec<i8> = self.typed("weight", Some(&[d_out, d_in]), "I8")?;
        let scb = self.f32s("SCB", Some(&[d_out]))?;
        OutlierInt8Weight::new(d_out, d_in, codes, scb, threshold)
    }
}

/// bitsandbytes 8-bit tensors of one layer.
pub(super) fn bnb8_tensors(prefix: &str, w: &OutlierInt8Weight) -> Vec<OwnedTensor> {
    vec![
        OwnedTensor {
            name: format!("{prefix}.weight"),
            dtype: Dtype::I8,
            shape: vec![w.d_out, w.d_in],
            bytes: w.codes.iter().map(|&q| q as u8).collect(),
        },
        OwnedTensor::f32(format!("{prefix}.SCB"), vec![w.d_out], &w.row_absmax),
    ]
}
