//! Quantized linear layers in checkpoints: GPTQModel/AutoGPTQ (`qweight`, `qzeros`, `scales`,
//! `g_idx`), bitsandbytes as transformers serialises it (4-bit `weight.absmax`/`quant_map`/
//! `quant_state`, 8-bit `SCB`), and this family's int8 (`weight_scale`, `weight_zero_point`).
//!
//! A layer's format is told by which companion tensors it has, so one checkpoint may mix them.

use burn::tensor::TensorData;

use super::TensorSource;
use crate::config::CheckpointQuantization;
use crate::error::{LlmError, Result};
use crate::quant::{AffineWeight, DoubleQuantState, Fp4Kind, Fp4Weight, OutlierInt8Weight, QuantizedWeight};

/// The on-disk layout of one linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointLayout {
    /// `weight` in float.
    Dense,
    /// GPTQ: `qweight`, `qzeros`, `scales`, `g_idx`.
    Gptq,
    /// bitsandbytes 4-bit.
    Bnb4bit,
    /// bitsandbytes 8-bit (LLM.int8()).
    Bnb8bit,
    /// This family's int8: `weight` int8 + `weight_scale`.
    Int8,
}

impl CheckpointLayout {
    /// Detects the layout of the layer `prefix` (`model.layers.0.self_attn.q_proj`).
    pub fn detect(source: &dyn TensorSource, prefix: &str) -> Self {
        let has = |suffix: &str| source.shape(&format!("{prefix}.{suffix}")).is_some();
        if has("qweight") {
            Self::Gptq
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

struct Reader<'a> {
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

    fn gptq(&self, d_out: usize, d_in: usize, v1_offset: bool, group_size: Option<usize>) -> Result<AffineWeight> {
        let q_shape = self.source.shape(&self.name("qweight")).unwrap_or_default();
        let words_per_col = q_shape.first().copied().unwrap_or(0);
        let bits = (words_per_col * 32).checked_div(d_in).unwrap_or(0) as u32;
        if q_shape.len() != 2 || q_shape[1] != d_out || !matches!(bits, 2 | 3 | 4 | 8) || words_per_col * 32 != d_in * bits as usize {
            return Err(self.err("qweight", format!("shape {q_shape:?} is not [d_in·bits/32, {d_out}] for d_in {d_in} and bits 2/3/4/8")));
        }
        let qweight: Vec<i32> = self.typed("qweight", None, "I32")?;
        let scales_shape = self.source.shape(&self.name("scales")).unwrap_or_default();
        let n_groups = scales_shape.first().copied().unwrap_or(0);
        let scales = self.f32s("scales", Some(&[n_groups, d_out]))?;
        let zero_words = (d_out * bits as usize).div_ceil(32);
        let qzeros: Vec<i32> = self.typed("qzeros", Some(&[n_groups, zero_words]), "I32")?;
        let g_idx: Vec<u32> = if self.source.shape(&self.name("g_idx")).is_some() {
            let g: Vec<i32> = self.typed("g_idx", Some(&[d_in]), "I32")?;
            g.into_iter().map(|v| v as u32).collect()
        } else {
            // No g_idx: groups are consecutive runs of `group_size` columns (the last may be short).
            let g = group_size.unwrap_or(d_in).max(1);
            if d_in.div_ceil(g) != n_groups {
                return Err(self.err("scales", format!("{n_groups} groups, but group_size {g} over {d_in} inputs makes {}", d_in.div_ceil(g))));
            }
            (0..d_in).map(|c| (c / g) as u32).collect()
        };
        if let Some(&g) = g_idx.iter().find(|&&g| g as usize >= n_groups) {
            return Err(self.err("g_idx", format!("group {g} out of range for {n_groups} groups")));
        }
        // qweight [d_in·bits/32, d_out]: column o is a bit stream over the input features.
        let mut codes = vec![0u8; d_out * d_in];
        let mut column = vec![0u32; words_per_col];
        for o in 0..d_out {
            for (w, word) in column.iter_mut().enumerate() {
                *word = qweight[w * d_out + o] as u32;
            }
            codes[o * d_in..(o + 1) * d_in].copy_from_slice(&unpack_stream(&column, bits, d_in));
        }
        // qzeros [n_groups, d_out·bits/32]: row g is a bit stream over the outputs.
        let mut zeros = vec![0f32; d_out * n_groups];
        for g in 0..n_groups {
            let row: Vec<u32> = (0..zero_words)
                .map(|w| {
                    let word = qzeros[g * zero_words + w] as u32;
                    if v1_offset { word.wrapping_add(v1_zero_offset_word(bits, w % bits as usize)) } else { word }
                })
                .collect();
            for (o, z) in unpack_stream(&row, bits, d_out).into_iter().enumerate() {
                zeros[o * n_groups + g] = f32::from(z);
            }
        }
        let scales_t = (0..d_out * n_groups).map(|i| scales[(i % n_groups) * d_out + i / n_groups]).collect();
        AffineWeight::new(d_out, d_in, bits, &codes, scales_t, zeros, g_idx)
            .map_err(|e| self.err("qweight", e.to_string()))
    }

    fn bnb4(&self, d_out: usize, d_in: usize) -> Result<Fp4Weight> {
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

    fn bnb8(&self, d_out: usize, d_in: usize, threshold: f32) -> Result<OutlierInt8Weight> {
        let codes: Vec<i8> = self.typed("weight", Some(&[d_out, d_in]), "I8")?;
        let scb = self.f32s("SCB", Some(&[d_out]))?;
        OutlierInt8Weight::new(d_out, d_in, codes, scb, threshold)
    }

    fn int8(&self, d_out: usize, d_in: usize) -> Result<AffineWeight> {
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
