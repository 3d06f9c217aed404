//! Quantized linear layers in checkpoints: GPTQModel/AutoGPTQ (`qweight`, `qzeros`, `scales`,
//! `g_idx`), AutoAWQ's GEMM layout (the same names, packed along the outputs), HQQ as
//! transformers 4.x saves it (`W_q`, `scale`, `zero` and metadata tensors), bitsandbytes as
//! transformers serialises it (4-bit `weight.absmax`/`quant_map`/`quant_state`, 8-bit `SCB`),
//! and this family's int8 (`weight_scale`, `weight_zero_point`).
//!
//! A layer's format is told by which companion tensors it has, so one checkpoint may mix them.
//! Each format's reader and writer sit side by side in its own module.

use burn::tensor::TensorData;

use super::TensorSource;
use crate::config::CheckpointQuantization;
use crate::error::{LlmError, Result};
use crate::io::safetensors::OwnedTensor;
use crate::quant::QuantizedWeight;

mod awq;
pub use awq::{awq_pack_word, awq_unpack_word, AWQ_ORDER};
mod bnb4;
mod bnb8;
mod gptq;
mod hqq;
pub use hqq::{hqq_pack, hqq_unpack};
mod int8;

/// The on-disk layout of one linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointLayout {
    /// `weight` in float.
    Dense,
    /// GPTQ: `qweight`, `qzeros`, `scales`, `g_idx`.
    Gptq,
    /// AWQ GEMM: `qweight`, `qzeros`, `scales` (told from GPTQ by `quant_method: awq`).
    Awq,
    /// HQQ: `W_q`, `scale`, `zero` and its metadata tensors.
    Hqq,
    /// bitsandbytes 4-bit.
    Bnb4bit,
    /// bitsandbytes 8-bit (LLM.int8()).
    Bnb8bit,
    /// This family's int8: `weight` int8 + `weight_scale`.
    Int8,
}

impl CheckpointLayout {
    /// Detects the layout of the layer `prefix` (a [`crate::model::LinearId::hf`] name);
    /// `quantization` (the checkpoint's `quantization_config`) tells AWQ's `qweight` from GPTQ's.
    pub fn detect(source: &dyn TensorSource, prefix: &str, quantization: Option<&CheckpointQuantization>) -> Self {
        let has = |suffix: &str| source.shape(&format!("{prefix}.{suffix}")).is_some();
        if has("qweight") {
            if matches!(quantization, Some(CheckpointQuantization::Awq { .. })) {
                Self::Awq
            } else {
                Self::Gptq
            }
        } else if has("W_q") {
            Self::Hqq
        } else if has("weight.absmax") {
            Self::Bnb4bit
        } else if has("SCB") {
            Self::Bnb8bit
        } else if has("weight_scale") {
            Self::Int8
        } else {
            Self::Dense
        }
    }

    /// Tensors the layout needs (`required`) and may carry (`optional`), as suffixes.
    pub fn tensors(self, source: &dyn TensorSource, prefix: &str) -> (Vec<String>, Vec<String>) {
        let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match self {
            Self::Dense => (own(&["weight"]), vec![]),
            Self::Gptq => (own(&["qweight", "qzeros", "scales"]), own(&["g_idx"])),
            Self::Awq => (own(&["qweight", "qzeros", "scales"]), vec![]),
            Self::Hqq => {
                let (required, optional) = hqq::hqq_keys();
                (own(required), own(optional))
            }
            Self::Bnb4bit => {
                let state = source
                    .tensor_names()
                    .into_iter()
                    .filter_map(|n| n.strip_prefix(&format!("{prefix}.")).map(str::to_string))
                    .filter(|n| n.starts_with("weight.quant_state."))
                    .collect::<Vec<_>>();
                let mut required = own(&["weight", "weight.absmax", "weight.quant_map"]);
                required.extend(state);
                (required, own(&["weight.nested_absmax", "weight.nested_quant_map"]))
            }
            Self::Bnb8bit => (own(&["weight", "SCB"]), own(&["weight_format"])),
            Self::Int8 => (own(&["weight", "weight_scale"]), own(&["weight_zero_point"])),
        }
    }
}

/// Reads the quantized layer `prefix` of shape `[d_out, d_in]`.
pub fn read_quantized(
    source: &dyn TensorSource,
    layout: CheckpointLayout,
    prefix: &str,
    d_out: usize,
    d_in: usize,
    quantization: Option<&CheckpointQuantization>,
) -> Result<QuantizedWeight> {
    let r = Reader { source, prefix };
    match layout {
        CheckpointLayout::Gptq => {
            let offset = !matches!(quantization, Some(CheckpointQuantization::Gptq { zero_point_offset: false, .. }));
            let group_size = match quantization {
                Some(CheckpointQuantization::Gptq { group_size, .. }) => *group_size,
                _ => None,
            };
            r.gptq(d_out, d_in, offset, group_size).map(QuantizedWeight::Affine)
        }
        CheckpointLayout::Awq => {
            // `detect` says Awq only under an AWQ config; AutoAWQ's default group otherwise.
            let group_size = match quantization {
                Some(CheckpointQuantization::Awq { group_size, .. }) => *group_size,
                _ => Some(128),
            };
            r.awq(d_out, d_in, group_size).map(QuantizedWeight::Affine)
        }
        CheckpointLayout::Hqq => r.hqq(d_out, d_in).map(QuantizedWeight::Affine),
        CheckpointLayout::Bnb4bit => r.bnb4(d_out, d_in).map(QuantizedWeight::Fp4),
        CheckpointLayout::Bnb8bit => {
            let threshold = match quantization {
                Some(CheckpointQuantization::Bitsandbytes { llm_int8_threshold }) => *llm_int8_threshold,
                _ => 6.0,
            };
            r.bnb8(d_out, d_in, threshold).map(QuantizedWeight::OutlierInt8)
        }
        CheckpointLayout::Int8 => r.int8(d_out, d_in).map(QuantizedWeight::Affine),
        CheckpointLayout::Dense => Err(LlmError::Quant { tensor: prefix.into(), message: "layer is not quantized".into() }),
    }
}

/// The word added to each `qzeros` word to undo GPTQ v1's "zero minus one": a 1 at the lowest
/// bit of every field that starts in word `w` of the bit stream (subtracting from the packed
/// word, as the v1 writers do, lets a zero of 0 borrow from the next field).
pub fn v1_zero_offset_word(bits: u32, w: usize) -> u32 {
    let b = bits as usize;
    let (lo, hi) = (32 * w, 32 * w + 32);
    (lo.div_ceil(b) * b..hi).step_by(b).fold(0u32, |acc, bit| acc | 1 << (bit - lo))
}

/// Unpacks `n` codes of `bits` from a little-endian stream of 32-bit words.
pub fn unpack_stream(words: &[u32], bits: u32, n: usize) -> Vec<u8> {
    let b = bits as usize;
    (0..n)
        .map(|k| {
            let bit = k * b;
            let (w, shift) = (bit / 32, bit % 32);
            let mut v = u64::from(words[w]) >> shift;
            if shift + b > 32 {
                v |= u64::from(words[w + 1]) << (32 - shift);
            }
            (v & ((1 << b) - 1)) as u8
        })
        .collect()
}

/// Packs codes of `bits` into a little-endian stream of 32-bit words (`ceil(n·bits/32)`
/// words): the inverse of [`unpack_stream`], as GPTQ writers pack `qweight` and `qzeros`.
pub fn pack_stream(codes: &[u8], bits: u32) -> Vec<u32> {
    let b = bits as usize;
    let mut words = vec![0u32; (codes.len() * b).div_ceil(32)];
    for (k, &c) in codes.iter().enumerate() {
        let bit = k * b;
        let (w, shift) = (bit / 32, bit % 32);
        let v = u64::from(c) << shift;
        words[w] |= v as u32;
        if shift + b > 32 {
            words[w + 1] |= (v >> 32) as u32;
        }
    }
    words
}

/// Which layout an affine (integer grid) weight is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffineFormat {
    /// GPTQ v1 (any bit width; what GPTQModel, AutoGPTQ and transformers read).
    Gptq,
    /// This family's int8 (8 bits, equal consecutive groups).
    Int8,
    /// AutoAWQ's GEMM layout (4 bits, consecutive groups, integer zeros).
    Awq,
    /// HQQ as transformers 4.x saves it (1-8 bits, equal consecutive groups).
    Hqq,
}

/// The tensors of the quantized layer `prefix`, in the layout its weight kind is stored in
/// (affine weights as `affine`); the inverse of [`read_quantized`].
pub fn write_quantized(prefix: &str, weight: &QuantizedWeight, affine: AffineFormat) -> Result<Vec<OwnedTensor>> {
    match (weight, affine) {
        (QuantizedWeight::Affine(w), AffineFormat::Gptq) => gptq::gptq_tensors(prefix, w),
        (QuantizedWeight::Affine(w), AffineFormat::Int8) => int8::int8_tensors(prefix, w),
        (QuantizedWeight::Affine(w), AffineFormat::Awq) => awq::awq_tensors(prefix, w),
        (QuantizedWeight::Affine(w), AffineFormat::Hqq) => hqq::hqq_tensors(prefix, w),
        (QuantizedWeight::Fp4(w), _) => Ok(bnb4::bnb4_tensors(prefix, w)),
        (QuantizedWeight::OutlierInt8(w), _) => Ok(bnb8::bnb8_tensors(prefix, w)),
        (QuantizedWeight::Ggml(w), _) => Err(LlmError::Quant {
            tensor: format!("{prefix}.weight"),
            message: format!("{} blocks have no safetensors layout; save them as GGUF, or dequantize first", w.ty.name()),
        }),
    }
}

pub(super) struct Reader<'a> {
    source: &'a dyn TensorSource,
    prefix: &'a str,
}

impl Reader<'_> {
    fn name(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    fn err(&self, suffix: &str, message: impl Into<String>) -> LlmError {
        LlmError::Quant { tensor: self.name(suffix), message: message.into() }
    }

    /// The tensor, checked to have `shape` (when given).
    fn read(&self, suffix: &str, shape: Option<&[usize]>) -> Result<TensorData> {
        let data = self.source.read(&self.name(suffix))?;
        match shape {
            Some(s) if data.shape.as_slice() != s => {
                Err(self.err(suffix, format!("shape {:?}, expected {s:?}", data.shape)))
            }
            _ => Ok(data),
        }
    }

    fn f32s(&self, suffix: &str, shape: Option<&[usize]>) -> Result<Vec<f32>> {
        let data = self.read(suffix, shape)?;
        if !data.dtype.is_float() {
            return Err(self.err(suffix, format!("dtype {:?}, expected a float", data.dtype)));
        }
        Ok(data.convert::<f32>().into_vec::<f32>().expect("converted to f32"))
    }

    fn typed<T: burn::tensor::Element>(&self, suffix: &str, shape: Option<&[usize]>, what: &str) -> Result<Vec<T>> {
        let data = self.read(suffix, shape)?;
        let dtype = data.dtype;
        data.into_vec::<T>().map_err(|_| self.err(suffix, format!("dtype {dtype:?}, expected {what}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_packing_round_trips_across_word_boundaries() {
        for bits in [2u32, 3, 4, 8] {
            let codes: Vec<u8> = (0..77).map(|i| ((i * 5 + 1) % (1 << bits)) as u8).collect();
            assert_eq!(unpack_stream(&pack_stream(&codes, bits), bits, codes.len()), codes, "{bits} bits");
        }
    }

    #[test]
    fn v1_offset_words_put_a_one_in_every_field() {
        assert_eq!(v1_zero_offset_word(4, 0), 0x1111_1111);
        assert_eq!(v1_zero_offset_word(8, 0), 0x0101_0101);
        assert_eq!(v1_zero_offset_word(2, 0), 0x5555_5555);
        // 3 bits: fields start at 0,3,..,30 | 33,..,63 | 66,..,93 across a 3-word period.
        assert_eq!(v1_zero_offset_word(3, 0), 0x4924_9249);
        assert_eq!(v1_zero_offset_word(3, 1), 0x9249_2492);
        assert_eq!(v1_zero_offset_word(3, 2), 0x2492_4924);
    }
}
