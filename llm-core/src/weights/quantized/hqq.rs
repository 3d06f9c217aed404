//! HQQ (hqq's `HQQLinear.state_dict()` as transformers 4.x `save_pretrained` writes it,
//! `quant_method: hqq`): per layer `W_q` (codes of the `[out·in/g, g]` group matrix, packed
//! along its rows), `scale` and `zero` (`[out·in/g, 1]`, the compute dtype; zeros are floats),
//! and its metadata as small tensors: `shape` i64 `[2]`, `nbits`/`group_size`/`axis` i32
//! scalars, `packing`, `compute_dtype`, `unpack_view_dtype` as ASCII bytes, flags as u8.
//! `w = (q − zero)·scale`.
//!
//! Packing cuts the `R` group rows into `k` consecutive blocks and puts block 0 in the most
//! significant bits: 4 bits `P[i] = Q[i]<<4 | Q[i+R/2]` (u8), 2 bits 4 blocks (u8), 1 bit 8
//! blocks (u8), 3 bits 10 blocks at shifts 27, 24, .., 0 in i32 with `R` padded to a multiple
//! of 10, and 5, 6, 8 bits one code per byte. Read here: `axis = 1` (hqq's default, groups of
//! consecutive weights along the input) with groups that do not cross rows.

use super::Reader;
use crate::error::{LlmError, Result};
use crate::io::safetensors::OwnedTensor;
use crate::quant::AffineWeight;

/// hqq's packing name for `bits`.
fn packing_of(bits: u32) -> Option<&'static str> {
    Some(match bits {
        8 | 6 | 5 => "8bit_u8",
        4 => "4bit_u8",
        3 => "3bit_32",
        2 => "2bit_u8",
        1 => "1bit_u8",
        _ => return None,
    })
}

/// Blocks of rows per packed row and bits per field, for a packing name.
fn fields_of(packing: &str) -> Option<(usize, u32)> {
    Some(match packing {
        "8bit_u8" => (1, 8),
        "4bit_u8" => (2, 4),
        "3bit_32" => (10, 3),
        "2bit_u8" => (4, 2),
        "1bit_u8" => (8, 1),
        _ => return None,
    })
}

/// Packs codes `[rows, g]` along the rows: packed row `i` holds rows `i + k·s` (`s` = packed
/// rows), block `k` in the most significant field. Returns `[s, g]` words.
pub fn hqq_pack(codes: &[u8], rows: usize, g: usize, packing: &str) -> Option<Vec<u32>> {
    let (fields, bits) = fields_of(packing)?;
    let padded = if fields == 10 { rows.div_ceil(10) * 10 } else { rows };
    if !padded.is_multiple_of(fields) {
        return None;
    }
    let s = padded / fields;
    let mut out = vec![0u32; s * g];
    for k in 0..fields {
        let shift = bits * (fields - 1 - k) as u32;
        for i in 0..s {
            let r = k * s + i;
            if r >= rows {
                continue;
            }
            for c in 0..g {
                out[i * g + c] |= u32::from(codes[r * g + c]) << shift;
            }
        }
    }
    Some(out)
}

/// The inverse of [`hqq_pack`]: `[s, g]` words to `rows` code rows of `g`; `None` unless
/// `words` holds exactly the packed rows `rows` make.
pub fn hqq_unpack(words: &[u32], rows: usize, g: usize, packing: &str) -> Option<Vec<u8>> {
    let (fields, bits) = fields_of(packing)?;
    let s = words.len() / g.max(1);
    let expected = if fields == 10 {
        rows.div_ceil(10)
    } else if rows.is_multiple_of(fields) {
        rows / fields
    } else {
        return None;
    };
    if s != expected || words.len() != s * g {
        return None;
    }
    let mask = (1u32 << bits) - 1;
    let mut codes = vec![0u8; rows * g];
    for r in 0..rows {
        let (k, i) = (r / s, r % s);
        let shift = bits * (fields - 1 - k) as u32;
        for c in 0..g {
            codes[r * g + c] = ((words[i * g + c] >> shift) & mask) as u8;
        }
    }
    Some(codes)
}

impl Reader<'_> {
    fn scalar_i64(&self, suffix: &str) -> Result<i64> {
        let data = self.read(suffix, None)?;
        let dtype = data.dtype;
        let v: Vec<i64> = match dtype {
            burn::tensor::DType::I64 => data.into_vec::<i64>().unwrap_or_default(),
            burn::tensor::DType::I32 => data.into_vec::<i32>().unwrap_or_default().into_iter().map(i64::from).collect(),
            burn::tensor::DType::U8 => data.into_vec::<u8>().unwrap_or_default().into_iter().map(i64::from).collect(),
            _ => return Err(self.err(suffix, format!("dtype {dtype:?}, expected an integer"))),
        };
        match v.as_slice() {
            [x] => Ok(*x),
            _ => Err(self.err(suffix, format!("{} values, expected one", v.len()))),
        }
    }

    fn ascii(&self, suffix: &str) -> Result<String> {
        let bytes: Vec<u8> = self.typed(suffix, None, "U8 (ASCII)")?;
        String::from_utf8(bytes).map_err(|_| self.err(suffix, "not ASCII text"))
    }

    pub(super) fn hqq(&self, d_out: usize, d_in: usize) -> Result<AffineWeight> {
        let shape: Vec<i64> = self.typed("shape", Some(&[2]), "I64")?;
        if shape != [d_out as i64, d_in as i64] {
            return Err(self.err("shape", format!("{shape:?}, expected [{d_out}, {d_in}]")));
        }
        let bits = self.scalar_i64("nbits")?;
        let g = self.scalar_i64("group_size")?;
        let axis = self.scalar_i64("axis")?;
        if axis != 1 {
            return Err(self.err("axis", format!("{axis}: only axis 1 (groups along the input, hqq's default) is supported")));
        }
        let bits = u32::try_from(bits).ok().filter(|b| packing_of(*b).is_some()).ok_or_else(|| {
            self.err("nbits", format!("{bits}: supported 1, 2, 3, 4, 5, 6, 8"))
        })?;
        let g = usize::try_from(g).ok().filter(|&g| g > 0 && d_in.is_multiple_of(g)).ok_or_else(|| {
            self.err("group_size", format!("{g} must divide the layer width {d_in} (groups across rows are not supported)"))
        })?;
        if self.source.shape(&self.name("view_as_float")).is_some() && self.scalar_i64("view_as_float")? != 0 {
            return Err(self.err("view_as_float", "W_q stored as floats (view_as_float) is not supported"));
        }
        let packing = self.ascii("packing")?;
        let (_, field_bits) =
            fields_of(&packing).ok_or_else(|| self.err("packing", format!("`{packing}` is not one of hqq's packings")))?;
        if field_bits < bits {
            return Err(self.err("packing", format!("`{packing}` cannot hold {bits}-bit codes")));
        }
        let rows = d_out * d_in / g;
        let scale = self.f32s("scale", Some(&[rows, 1]))?;
        let zero = self.f32s("zero", Some(&[rows, 1]))?;
        for (suffix, values) in [("scale", &scale), ("zero", &zero)] {
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Err(self.err(suffix, format!("holds {v}")));
            }
        }
        let data = self.read("W_q", None)?;
        let (w_shape, dtype) = (data.shape.clone(), data.dtype);
        // 3-bit fields fill int32 words; the other packings are bytes.
        let words: Vec<u32> = match (dtype, packing.as_str()) {
            (burn::tensor::DType::I32, "3bit_32") => data.into_vec::<i32>().unwrap_or_default().into_iter().map(|v| v as u32).collect(),
            (burn::tensor::DType::U8, p) if p != "3bit_32" => data.into_vec::<u8>().unwrap_or_default().into_iter().map(u32::from).collect(),
            _ => return Err(self.err("W_q", format!("dtype {dtype:?} does not hold `{packing}` (I32 for 3bit_32, U8 otherwise)"))),
        };
        if w_shape.len() != 2 || w_shape[1] != g {
            return Err(self.err("W_q", format!("shape {w_shape:?} is not [packed rows, {g}]")));
        }
        let codes = hqq_unpack(&words, rows, g, &packing)
            .ok_or_else(|| self.err("W_q", format!("shape {w_shape:?} does not hold {rows} rows of {g} in `{packing}`")))?;
        if let Some(&c) = codes.iter().find(|&&c| u32::from(c) >> bits != 0) {
            return Err(self.err("W_q", format!("code {c} does not fit in {bits} bits")));
        }
        let g_idx = (0..d_in).map(|c| (c / g) as u32).collect();
        AffineWeight::new(d_out, d_in, bits, &codes, scale, zero, g_idx).map_err(|e| self.err("W_q", e.to_string()))
    }
}

/// The dtype scale and zero are written in: the narrowest of f16, bf16, f32 that holds every
/// value exactly (what the quantizer rounded them to), named as torch prints it.
fn meta_dtype(values: &[f32]) -> (&'static str, safetensors::Dtype) {
    if values.iter().all(|&v| half::f16::from_f32(v).to_f32() == v) {
        ("torch.float16", safetensors::Dtype::F16)
    } else if values.iter().all(|&v| half::bf16::from_f32(v).to_f32() == v) {
        ("torch.bfloat16", safetensors::Dtype::BF16)
    } else {
        ("torch.float32", safetensors::Dtype::F32)
    }
}

fn floats(name: String, dtype: safetensors::Dtype, shape: Vec<usize>, values: &[f32]) -> OwnedTensor {
    let bytes = match dtype {
        safetensors::Dtype::F16 => values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
        safetensors::Dtype::BF16 => values.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    };
    OwnedTensor::bytes(name, dtype, shape, bytes)
}

/// HQQ tensors of one layer (`axis = 1`, consecutive groups that do not cross rows), with
/// HQQLinear's 19 keys so hqq and transformers 4.x load it.
pub(super) fn hqq_tensors(prefix: &str, w: &AffineWeight) -> Result<Vec<OwnedTensor>> {
    let (d_out, d_in, bits, n_groups) = (w.d_out, w.d_in, w.bits, w.n_groups());
    let err = |suffix: &str, message: String| LlmError::Quant { tensor: format!("{prefix}.{suffix}"), message };
    let packing = packing_of(bits).ok_or_else(|| err("W_q", format!("hqq has no packing for {bits}-bit codes")))?;
    let Some(g) = w.consecutive_group_width().filter(|g| d_in.is_multiple_of(*g)) else {
        return Err(err("W_q", "HQQ groups are equal runs of consecutive columns; this layer has act-order or uneven groups".into()));
    };
    let rows = d_out * n_groups;
    let words = hqq_pack(&w.codes(), rows, g, packing)
        .ok_or_else(|| err("W_q", format!("{rows} group rows do not split into `{packing}`'s blocks")))?;
    let packed_rows = words.len() / g;
    let w_q = if packing == "3bit_32" {
        OwnedTensor::i32(format!("{prefix}.W_q"), vec![packed_rows, g], &words.iter().map(|&v| v as i32).collect::<Vec<_>>())
    } else {
        OwnedTensor::bytes(format!("{prefix}.W_q"), safetensors::Dtype::U8, vec![packed_rows, g], words.iter().map(|&v| v as u8).collect())
    };
    let both: Vec<f32> = w.scales().iter().chain(w.zeros()).copied().collect();
    let (dtype_name, dtype) = meta_dtype(&both);
    let name = |k: &str| format!("{prefix}.{k}");
    let ascii = |k: &str, s: &str| OwnedTensor::bytes(name(k), safetensors::Dtype::U8, vec![s.len()], s.as_bytes().to_vec());
    let flag = |k: &str, v: bool| OwnedTensor::bytes(name(k), safetensors::Dtype::U8, vec![], vec![u8::from(v)]);
    let int = |k: &str, v: i32| OwnedTensor::i32(name(k), vec![], &[v]);
    let view_dtype = if packing == "3bit_32" { "torch.int32" } else { "torch.uint8" };
    Ok(vec![
        w_q,
        floats(name("scale"), dtype, vec![rows, 1], w.scales()),
        floats(name("zero"), dtype, vec![rows, 1], w.zeros()),
        OwnedTensor::bytes(name("shape"), safetensors::Dtype::I64, vec![2], [d_out as i64, d_in as i64].iter().flat_map(|v| v.to_le_bytes()).collect()),
        int("nbits", bits as i32),
        int("group_size", g as i32),
        int("axis", 1),
        ascii("packing", packing),
        ascii("unpack_view_dtype", view_dtype),
        ascii("compute_dtype", dtype_name),
        flag("view_as_float", false),
        flag("quant_scale", false),
        flag("quant_zero", false),
        flag("offload_meta", false),
        flag("encoded_state_dict", true),
        flag("stores_quant_config", true),
        flag("channel_wise", true),
        flag("optimize", true),
        flag("round_zero", bits == 4),
    ])
}

/// HQQLinear's keys besides `W_q` and an optional `bias`, as (required, optional) suffixes.
pub(super) fn hqq_keys() -> (&'static [&'static str], &'static [&'static str]) {
    (
        &["W_q", "scale", "zero", "shape", "nbits", "group_size", "axis", "packing"],
        &[
            "unpack_view_dtype",
            "compute_dtype",
            "view_as_float",
            "quant_scale",
            "quant_zero",
            "offload_meta",
            "encoded_state_dict",
            "stores_quant_config",
            "channel_wise",
            "optimize",
            "round_zero",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacking_wants_exactly_the_packed_rows() {
        let words = vec![0u32; 3 * 8]; // 3 packed rows of 8
        assert!(hqq_unpack(&words, 6, 8, "4bit_u8").is_some());
        assert!(hqq_unpack(&words, 4, 8, "4bit_u8").is_none(), "an extra packed row");
        assert!(hqq_unpack(&words, 5, 8, "4bit_u8").is_none(), "rows not a multiple of 2");
        assert!(hqq_unpack(&words, 30, 8, "3bit_32").is_some());
        assert!(hqq_unpack(&words, 20, 8, "3bit_32").is_none(), "3 packed rows hold 21-30 rows");
    }

    #[test]
    fn packings_round_trip_and_put_the_first_block_high() {
        for (bits, packing) in [(8u32, "8bit_u8"), (4, "4bit_u8"), (3, "3bit_32"), (2, "2bit_u8"), (1, "1bit_u8")] {
            let (rows, g) = (40, 8);
            let codes: Vec<u8> = (0..rows * g).map(|i| ((i * 7 + 3) % (1 << bits)) as u8).collect();
            let words = hqq_pack(&codes, rows, g, packing).unwrap();
            assert_eq!(hqq_unpack(&words, rows, g, packing).unwrap(), codes, "{packing}");
        }
        // 4 bits: row 0 in the high nibble, row R/2 in the low one.
        let codes = [1u8, 2, 3, 4]; // rows of one column
        assert_eq!(hqq_pack(&codes, 4, 1, "4bit_u8").unwrap(), vec![0x13, 0x24]);
        // 3 bits: 10 blocks, the padded rows zero; 12 rows -> 20 padded -> 2 packed rows.
        let codes: Vec<u8> = (0..12).map(|i| (i % 8) as u8).collect();
        let words = hqq_pack(&codes, 12, 1, "3bit_32").unwrap();
        assert_eq!(words.len(), 2);
        assert_eq!(words[0] >> 27, 0, "row 0 code 0 at bits 27..30");
        assert_eq!((words[1] >> 27) & 7, 1, "row 1 code 1 at bits 27..30");
        assert_eq!((words[0] >> 24) & 7, 2, "row 2 (block 1) at bits 24..27");
    }
}
