//! bitsandbytes 4-bit (NF4/FP4) as transformers serialises `Params4bit`: `weight` uint8 `[n/2, 1]` (element 2k in the high nibble), `weight.absmax` f32 (uint8 when double-quantized, with `weight.nested_absmax`, `weight.nested_quant_map`), `weight.quant_map` f32 `[16]`, `weight.quant_state.bitsandbytes__nf4` (JSON bytes).

use super::Reader;
use crate::error::Result;
use crate::io::safetensors::{Dtype, OwnedTensor};
use crate::quant::{DoubleQuantState, Fp4Kind, Fp4Weight};

impl Reader<'_> {
    pub(super) fn bnb4(&self, d_out: usize, d_in: usize) -> Result<Fp4Weight> {
        let state_name = self
            .source
            .tensor_names()
            .into_iter()
            .find(|n| n.starts_with(&self.name("weight.quant_state.bitsandbytes__")))
            .ok_or_else(|| self.err("weight.quant_state", "missing (bitsandbytes__nf4 or __fp4)"))?;
        let suffix = state_name[self.prefix.len() + 1..].to_string();
        let bytes: Vec<u8> = self.typed(&suffix, None, "U8")?;
        let state: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| self.err(&suffix, format!("not JSON: {e}")))?;
        let kind = match state.get("quant_type").and_then(|v| v.as_str()) {
            Some("nf4") => Fp4Kind::Nf4,
            Some("fp4") => Fp4Kind::Fp4,
            other => return Err(self.err(&suffix, format!("quant_type {other:?}; supported: nf4, fp4"))),
        };
        let blocksize = state.get("blocksize").and_then(|v| v.as_u64()).unwrap_or(64) as usize;
        let numel = d_out * d_in;
        let packed: Vec<u8> = self.typed("weight", None, "U8")?;
        let code: [f32; 16] = self
            .f32s("weight.quant_map", Some(&[16]))?
            .try_into()
            .expect("shape checked");
        let n_blocks = numel.div_ceil(blocksize.max(1));
        let nested = self.source.shape(&self.name("weight.nested_absmax")).is_some();
        let (absmax, double_quant) = if nested {
            let codes: Vec<u8> = self.typed("weight.absmax", Some(&[n_blocks]), "U8")?;
            let blocksize2 = state.get("nested_blocksize").and_then(|v| v.as_u64()).unwrap_or(256) as usize;
            if blocksize2 == 0 {
                return Err(self.err(&suffix, "nested_blocksize is 0"));
            }
            let dq = DoubleQuantState {
                codes,
                code: self.f32s("weight.nested_quant_map", Some(&[256]))?,
                absmax2: self.f32s("weight.nested_absmax", Some(&[n_blocks.div_ceil(blocksize2.max(1))]))?,
                blocksize2,
                offset: state.get("nested_offset").and_then(|v| v.as_f64()).unwrap_or(0.0) as f32,
            };
            (vec![], Some(dq))
        } else {
            (self.f32s("weight.absmax", Some(&[n_blocks]))?, None)
        };
        Fp4Weight::new(kind, code, d_out, d_in, blocksize, packed, absmax, double_quant)
            .map_err(|e| self.err("weight", e.to_string()))
    }
}

/// bitsandbytes 4-bit tensors of one layer, as transformers serialises `Params4bit`.
pub(super) fn bnb4_tensors(prefix: &str, w: &Fp4Weight) -> Vec<OwnedTensor> {
    let mut state = serde_json::json!({
        "quant_type": w.kind.name(),
        "blocksize": w.blocksize,
        "dtype": "float32",
        "shape": [w.d_out, w.d_in],
    });
    let mut out = vec![
        OwnedTensor { name: format!("{prefix}.weight"), dtype: Dtype::U8, shape: vec![w.packed.len(), 1], bytes: w.packed.clone() },
        OwnedTensor::f32(format!("{prefix}.weight.quant_map"), vec![16], &w.code),
    ];
    match &w.double_quant {
        Some(dq) => {
            state["nested_blocksize"] = dq.blocksize2.into();
            state["nested_offset"] = f64::from(dq.offset).into();
            state["nested_dtype"] = "float32".into();
            out.push(OwnedTensor { name: format!("{prefix}.weight.absmax"), dtype: Dtype::U8, shape: vec![dq.codes.len()], bytes: dq.codes.clone() });
            out.push(OwnedTensor::f32(format!("{prefix}.weight.nested_absmax"), vec![dq.absmax2.len()], &dq.absmax2));
            out.push(OwnedTensor::f32(format!("{prefix}.weight.nested_quant_map"), vec![dq.code.len()], &dq.code));
        }
        None => out.push(OwnedTensor::f32(format!("{prefix}.weight.absmax"), vec![w.absmax.len()], &w.absmax)),
    }
    let json = serde_json::to_vec(&state).expect("JSON serialises");
    out.push(OwnedTensor {
        name: format!("{prefix}.weight.quant_state.bitsandbytes__{}", w.kind.name()),
        dtype: Dtype::U8,
        shape: vec![json.len()],
        bytes: json,
    });
    out
}
