//! AWQ (AutoAWQ's GEMM layout, `quant_method: awq`, `version: gemm`): `qweight` int32
//! `[d_in, d_out/8]`, `qzeros` int32 `[n_groups, d_out/8]`, `scales` fp16 `[n_groups, d_out]`,
//! no `g_idx` (group `c / group_size`). Unlike GPTQ, codes are packed along the *outputs*:
//! nibble `k` of word `j` holds output `8·j + AWQ_ORDER[k]`, the interleave AutoAWQ's
//! `WQLinear_GEMM.from_linear` writes (and `reverse_awq_order` undoes). Zeros are stored as
//! they are (no "minus one" as in GPTQ v1): `w = (q − z) · s`.

use super::Reader;
use crate::error::{LlmError, Result};
use crate::io::safetensors::OwnedTensor;
use crate::quant::AffineWeight;

/// Which output of a word's 8 each nibble holds (nibble `k` -> output `8·j + AWQ_ORDER[k]`).
pub const AWQ_ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];

/// Codes (each below 16) of 8 consecutive outputs as one AWQ word.
pub fn awq_pack_word(codes: &[u8; 8]) -> u32 {
    AWQ_ORDER.iter().enumerate().fold(0u32, |word, (k, &o)| word | u32::from(codes[o] & 0xF) << (4 * k))
}

/// The 8 codes of consecutive outputs an AWQ word holds.
pub fn awq_unpack_word(word: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (k, &o) in AWQ_ORDER.iter().enumerate() {
        out[o] = ((word >> (4 * k)) & 0xF) as u8;
    }
    out
}

impl Reader<'_> {
    pub(super) fn awq(&self, d_out: usize, d_in: usize, group_size: Option<usize>) -> Result<AffineWeight> {
        if !d_out.is_multiple_of(8) {
            return Err(self.err("qweight", format!("AWQ packs 8 outputs per word: d_out {d_out} is not a multiple of 8")));
        }
        let words = d_out / 8;
        let qweight: Vec<i32> = self.typed("qweight", Some(&[d_in, words]), "I32")?;
        let n_groups = self.source.shape(&self.name("scales")).and_then(|s| s.first().copied()).unwrap_or(0);
        let g = group_size.unwrap_or(d_in).max(1);
        if n_groups != d_in.div_ceil(g) {
            return Err(self.err("scales", format!("{n_groups} groups, but group_size {g} over {d_in} inputs makes {}", d_in.div_ceil(g))));
        }
        let scales = self.f32s("scales", Some(&[n_groups, d_out]))?;
        if let Some(v) = scales.iter().find(|v| !v.is_finite()) {
            return Err(self.err("scales", format!("holds {v}")));
        }
        let qzeros: Vec<i32> = self.typed("qzeros", Some(&[n_groups, words]), "I32")?;
        // qweight [d_in, d_out/8] -> codes [d_out, d_in].
        let mut codes = vec![0u8; d_out * d_in];
        for c in 0..d_in {
            for j in 0..words {
                for (k, code) in awq_unpack_word(qweight[c * words + j] as u32).into_iter().enumerate() {
                    codes[(8 * j + k) * d_in + c] = code;
                }
            }
        }
        // [n_groups, d_out] -> [d_out, n_groups].
        let mut zeros = vec![0f32; d_out * n_groups];
        let mut scales_t = vec![0f32; d_out * n_groups];
        for gi in 0..n_groups {
            for j in 0..words {
                for (k, z) in awq_unpack_word(qzeros[gi * words + j] as u32).into_iter().enumerate() {
                    zeros[(8 * j + k) * n_groups + gi] = f32::from(z);
                }
            }
            for o in 0..d_out {
                scales_t[o * n_groups + gi] = scales[gi * d_out + o];
            }
        }
        let g_idx = (0..d_in).map(|c| (c / g) as u32).collect();
        AffineWeight::new(d_out, d_in, 4, &codes, scales_t, zeros, g_idx).map_err(|e| self.err("qweight", e.to_string()))
    }
}

/// AWQ GEMM tensors of one layer: 4-bit codes in consecutive groups of input columns (no
/// act-order), integer zero points.
pub(super) fn awq_tensors(prefix: &str, w: &AffineWeight) -> Result<Vec<OwnedTensor>> {
    let (d_out, d_in, n_groups) = (w.d_out, w.d_in, w.n_groups());
    let err = |suffix: &str, message: String| LlmError::Quant { tensor: format!("{prefix}.{suffix}"), message };
    if w.bits != 4 {
        return Err(err("qweight", format!("AWQ GEMM packs 4-bit codes, this layer has {} bits", w.bits)));
    }
    if !d_out.is_multiple_of(8) {
        return Err(err("qweight", format!("AWQ packs 8 outputs per word: d_out {d_out} is not a multiple of 8")));
    }
    // The last group may be shorter (`ceil(d_in/g)` groups).
    if w.consecutive_group_width().is_none() {
        return Err(err("qweight", "AWQ groups are consecutive columns; this layer has act-order or uneven groups".into()));
    }
    let (zeros, scales) = (w.zeros(), w.scales());
    if let Some(z) = zeros.iter().find(|z| z.fract() != 0.0 || !(0.0..16.0).contains(*z)) {
        return Err(err("qzeros", format!("zero point {z} is not a 4-bit integer")));
    }
    let words = d_out / 8;
    let codes = w.codes();
    let mut qweight = vec![0i32; d_in * words];
    let mut block = [0u8; 8];
    for c in 0..d_in {
        for j in 0..words {
            for (k, b) in block.iter_mut().enumerate() {
                *b = codes[(8 * j + k) * d_in + c];
            }
            qweight[c * words + j] = awq_pack_word(&block) as i32;
        }
    }
    let mut qzeros = vec![0i32; n_groups * words];
    let mut scales_t = vec![half::f16::ZERO; n_groups * d_out];
    for gi in 0..n_groups {
        for j in 0..words {
            for (k, b) in block.iter_mut().enumerate() {
                *b = zeros[(8 * j + k) * n_groups + gi] as u8;
            }
            qzeros[gi * words + j] = awq_pack_word(&block) as i32;
        }
        for o in 0..d_out {
            scales_t[gi * d_out + o] = half::f16::from_f32(scales[o * n_groups + gi]);
        }
    }
    Ok(vec![
        OwnedTensor::i32(format!("{prefix}.qweight"), vec![d_in, words], &qweight),
        OwnedTensor::i32(format!("{prefix}.qzeros"), vec![n_groups, words], &qzeros),
        OwnedTensor::f16(format!("{prefix}.scales"), vec![n_groups, d_out], &scales_t),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awq_words_interleave_outputs_as_autoawq_packs_them() {
        // Outputs 0..8 with codes 1..=8: nibbles hold outputs 0,2,4,6,1,3,5,7 from the lowest.
        let word = awq_pack_word(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(word, 0x8642_7531);
        assert_eq!(awq_unpack_word(word), [1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
