//! GPTQ (GPTQModel/AutoGPTQ, `checkpoint_format: gptq`): `qweight` int32 `[d_in·bits/32, d_out]` (codes packed along the input, LSB first), `qzeros` int32 `[n_groups, d_out·bits/32]` (v1: each zero minus one, on the packed word), `scales` fp16 `[n_groups, d_out]`, `g_idx` int32 `[d_in]`.

use super::Reader;
use crate::error::{LlmError, Result};
use crate::io::safetensors::OwnedTensor;
use super::{pack_stream, unpack_stream, v1_zero_offset_word};
use crate::quant::AffineWeight;

impl Reader<'_> {
    pub(super) fn gptq(&self, d_out: usize, d_in: usize, v1_offset: bool, group_size: Option<usize>) -> Result<AffineWeight> {
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
}

/// GPTQ v1 tensors of one layer.
pub(super) fn gptq_tensors(prefix: &str, w: &AffineWeight) -> Result<Vec<OwnedTensor>> {
    let (d_out, d_in, bits, n_groups) = (w.d_out, w.d_in, w.bits, w.n_groups());
    if !(d_in * bits as usize).is_multiple_of(32) {
        return Err(LlmError::Quant {
            tensor: format!("{prefix}.qweight"),
            message: format!("GPTQ packs d_in·bits into 32-bit words: d_in {d_in} at {bits} bits does not divide"),
        });
    }
    let err = |suffix: &str, message: String| LlmError::Quant { tensor: format!("{prefix}.{suffix}"), message };
    if !matches!(bits, 2 | 3 | 4 | 8) {
        return Err(err("qweight", format!("GPTQ stores 2, 3, 4 or 8 bits, this layer has {bits}")));
    }
    // Fractional zeros (HQQ's) have no GPTQ encoding: refuse rather than truncate them.
    let max_zero = ((1u32 << bits) - 1) as f32;
    if let Some(z) = w.zeros().iter().find(|z| z.fract() != 0.0 || !(0.0..=max_zero).contains(*z)) {
        return Err(err("qzeros", format!("zero point {z} is not a {bits}-bit integer (save HQQ layers with quant_method hqq)")));
    }
    let codes = w.codes();
    let words_per_col = d_in * bits as usize / 32;
    // [d_in·bits/32, d_out]: column o packs codes[o, :].
    let mut qweight = vec![0i32; words_per_col * d_out];
    for o in 0..d_out {
        for (k, word) in pack_stream(&codes[o * d_in..(o + 1) * d_in], bits).into_iter().enumerate() {
            qweight[k * d_out + o] = word as i32;
        }
    }
    // [n_groups, d_out·bits/32]: row g packs zeros[:, g] minus one (v1), on the packed word.
    let zero_words = (d_out * bits as usize).div_ceil(32);
    let mut qzeros = Vec::with_capacity(n_groups * zero_words);
    for g in 0..n_groups {
        let zeros: Vec<u8> = (0..d_out).map(|o| w.zeros()[o * n_groups + g] as u8).collect();
        for (k, word) in pack_stream(&zeros, bits).into_iter().enumerate() {
            qzeros.push(word.wrapping_sub(v1_zero_offset_word(bits, k % bits as usize)) as i32);
        }
    }
    let scales: Vec<half::f16> =
        (0..n_groups * d_out).map(|i| half::f16::from_f32(w.scales()[(i % d_out) * n_groups + i / d_out])).collect();
    let g_idx: Vec<i32> = w.g_idx().iter().map(|&g| g as i32).collect();
    Ok(vec![
        OwnedTensor::i32(format!("{prefix}.qweight"), vec![words_per_col, d_out], &qweight),
        OwnedTensor::i32(format!("{prefix}.qzeros"), vec![n_groups, zero_words], &qzeros),
        OwnedTensor::f16(format!("{prefix}.scales"), vec![n_groups, d_out], &scales),
        OwnedTensor::i32(format!("{prefix}.g_idx"), vec![d_in], &g_idx),
    ])
}
