//! GGML tensor types and their dequantisation to f32, bit-exact with gguf-py's numpy code
//! (which transformers uses to load GGUF files).

use half::f16;

/// A GGML tensor type id as stored in GGUF tensor infos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType(pub u32);

impl GgmlType {
    /// 32-bit float.
    pub const F32: Self = Self(0);
    /// 16-bit float.
    pub const F16: Self = Self(1);
    /// 4-bit, block 32, scale.
    pub const Q4_0: Self = Self(2);
    /// 4-bit, block 32, scale and min.
    pub const Q4_1: Self = Self(3);
    /// 5-bit, block 32, scale.
    pub const Q5_0: Self = Self(6);
    /// 5-bit, block 32, scale and min.
    pub const Q5_1: Self = Self(7);
    /// 8-bit, block 32, scale.
    pub const Q8_0: Self = Self(8);
    /// 2-bit K-quant: super-block 256, 16 sub-blocks with 4-bit scale and min.
    pub const Q2_K: Self = Self(10);
    /// 3-bit K-quant: super-block 256, 16 sub-blocks with 6-bit scales.
    pub const Q3_K: Self = Self(11);
    /// 4-bit K-quant: super-block 256, 8 sub-blocks with 6-bit scale and min.
    pub const Q4_K: Self = Self(12);
    /// 5-bit K-quant: super-block 256, 8 sub-blocks with 6-bit scale and min.
    pub const Q5_K: Self = Self(13);
    /// 6-bit K-quant: super-block 256, 16 sub-blocks with 8-bit scales.
    pub const Q6_K: Self = Self(14);
    /// bfloat16.
    pub const BF16: Self = Self(30);

    /// The name ggml gives the type (`Q4_1`, `Q6_K`...).
    pub fn name(self) -> String {
        const NAMES: &[&str] = &[
            "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K",
            "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS",
            "I8", "I16", "I32", "I64", "F64", "IQ1_M", "BF16",
        ];
        NAMES.get(self.0 as usize).map_or_else(|| format!("type {}", self.0), |s| s.to_string())
    }

    /// `(elements per block, bytes per block)` for the types we can dequantise.
    pub fn block_layout(self) -> Option<(usize, usize)> {
        Some(match self {
            Self::F32 => (1, 4),
            Self::F16 | Self::BF16 => (1, 2),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q8_0 => (32, 34),
            Self::Q2_K => (QK_K, 84),
            Self::Q3_K => (QK_K, 110),
            Self::Q4_K => (QK_K, 144),
            Self::Q5_K => (QK_K, 176),
            Self::Q6_K => (QK_K, 210),
            _ => return None,
        })
    }
}

/// Elements of a K-quant super-block.
pub const QK_K: usize = 256;

/// Dequantises `bytes` (whole blocks of `ty`) into f32. The caller has checked the length
/// against [`GgmlType::block_layout`].
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let (block, size) = ty.block_layout().expect("caller checked the type is supported");
    // Float types element by element without the per-block dispatch below (a whole f32
    // checkpoint goes through here when it is requantized).
    match ty {
        GgmlType::F32 => return bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        GgmlType::F16 => return bytes.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        GgmlType::BF16 => return bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        _ => {}
    }
    let mut out = Vec::with_capacity(bytes.len() / size * block);
    for b in bytes.chunks_exact(size) {
        match ty {
            GgmlType::F32 => out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            GgmlType::F16 => out.push(f16::from_le_bytes([b[0], b[1]]).to_f32()),
            GgmlType::BF16 => out.push(half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            GgmlType::Q4_0 => q4(b, &mut out, 8.0, None),
            GgmlType::Q4_1 => q4(b, &mut out, 0.0, Some(half_at(b, 2))),
            GgmlType::Q5_0 => q5(b, &mut out, 16.0, None),
            GgmlType::Q5_1 => q5(b, &mut out, 0.0, Some(half_at(b, 2))),
            GgmlType::Q8_0 => {
                let d = half_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| (q as i8) as f32 * d));
            }
            GgmlType::Q2_K => q2_k(b, &mut out),
            GgmlType::Q3_K => q3_k(b, &mut out),
            GgmlType::Q4_K => q45_k(b, &mut out, false),
            GgmlType::Q5_K => q45_k(b, &mut out, true),
            GgmlType::Q6_K => q6_k(b, &mut out),
            _ => unreachable!("block_layout admits only the types above"),
        }
    }
    out
}

fn half_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Q4_0 / Q4_1: low nibbles are elements 0..16, high nibbles 16..32.
fn q4(b: &[u8], out: &mut Vec<f32>, offset: f32, min: Option<f32>) {
    let d = half_at(b, 0);
    let qs = &b[if min.is_some() { 4 } else { 2 }..][..16];
    let value = |q: u8| {
        let x = (q as f32 - offset) * d;
        min.map_or(x, |m| x + m)
    };
    out.extend(qs.iter().map(|&q| value(q & 0x0f)));
    out.extend(qs.iter().map(|&q| value(q >> 4)));
}

/// Q5_0 / Q5_1: as Q4 with a fifth bit per element in a little-endian u32.
fn q5(b: &[u8], out: &mut Vec<f32>, offset: f32, min: Option<f32>) {
    let d = half_at(b, 0);
    let at = if min.is_some() { 4 } else { 2 };
    let qh = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let qs = &b[at + 4..][..16];
    let value = |q: u32| {
        let x = (q as f32 - offset) * d;
        min.map_or(x, |m| x + m)
    };
    out.extend(qs.iter().enumerate().map(|(j, &q)| value((q as u32 & 0x0f) | (((qh >> j) << 4) & 0x10))));
    out.extend(qs.iter().enumerate().map(|(j, &q)| value((q as u32 >> 4) | ((qh >> (j + 12)) & 0x10))));
}

/// Q2_K `[scales 16][qs 64][d][dmin]`: element `128h + 32j + k` is bits `2j..2j+2` of
/// `qs[32h + k]`; sub-block `e / 16` has scale `scales & 0xF` and min `scales >> 4`.
fn q2_k(b: &[u8], out: &mut Vec<f32>) {
    let (scales, qs) = (&b[..16], &b[16..80]);
    let (d, dmin) = (half_at(b, 80), half_at(b, 82));
    for e in 0..QK_K {
        let (h, j, k) = (e / 128, e % 128 / 32, e % 32);
        let q = (qs[32 * h + k] >> (2 * j)) & 3;
        let s = scales[e / 16];
        let (dl, ml) = (d * f32::from(s & 0xF), dmin * f32::from(s >> 4));
        out.push(dl * f32::from(q) - ml);
    }
}

/// The 16 signed 6-bit scales of a Q3_K block (`scales`: 12 bytes), offset by 32.
pub fn q3_k_scales(scales: &[u8]) -> [i8; 16] {
    std::array::from_fn(|s| {
        let low = if s < 8 { scales[s] & 0xF } else { scales[s - 8] >> 4 };
        let high = (scales[8 + s % 4] >> (2 * (s / 4))) & 3;
        ((low | high << 4) as i8).wrapping_sub(32)
    })
}

/// Q3_K `[hmask 32][qs 64][scales 12][d]`: low bits as Q2_K, element `32i + k` takes its
/// third bit from bit `i` of `hmask[k]`; a clear bit subtracts 4.
fn q3_k(b: &[u8], out: &mut Vec<f32>) {
    let (hmask, qs) = (&b[..32], &b[32..96]);
    let scales = q3_k_scales(&b[96..108]);
    let d = half_at(b, 108);
    for e in 0..QK_K {
        let (h, j, k) = (e / 128, e % 128 / 32, e % 32);
        let low = ((qs[32 * h + k] >> (2 * j)) & 3) as i8;
        let high = ((hmask[e % 32] >> (e / 32)) & 1) ^ 1;
        let dl = d * f32::from(scales[e / 16]);
        out.push(dl * f32::from(low - (high << 2) as i8));
    }
}

/// The 8 six-bit `(scale, min)` pairs of a Q4_K / Q5_K block (`scales`: 12 bytes).
#[inline]
pub fn k_scale_min(scales: &[u8]) -> ([u8; 8], [u8; 8]) {
    let sc = std::array::from_fn(|j| {
        if j < 4 {
            scales[j] & 63
        } else {
            (scales[j + 4] & 0xF) | ((scales[j - 4] >> 2) & 0x30)
        }
    });
    let mn = std::array::from_fn(|j| {
        if j < 4 {
            scales[j + 4] & 63
        } else {
            (scales[j + 4] >> 4) | ((scales[j] >> 2) & 0x30)
        }
    });
    (sc, mn)
}

/// Q4_K `[d][dmin][scales 12][qs 128]` and Q5_K `[d][dmin][scales 12][qh 32][qs 128]`:
/// sub-block `2c + h` (32 elements) is nibble `h` of `qs[32c..32c + 32]`; Q5_K's fifth bit of
/// element `32i + k` is bit `i` of `qh[k]`.
fn q45_k(b: &[u8], out: &mut Vec<f32>, five: bool) {
    let (d, dmin) = (half_at(b, 0), half_at(b, 2));
    let (sc, mn) = k_scale_min(&b[4..16]);
    let (qh, qs) = if five { (&b[16..48], &b[48..176]) } else { (&b[..0], &b[16..144]) };
    for e in 0..QK_K {
        let (sub, k) = (e / 32, e % 32);
        let mut q = (qs[32 * (sub / 2) + k] >> (4 * (sub % 2))) & 0xF;
        if five {
            q |= ((qh[k] >> sub) & 1) << 4;
        }
        let (dl, ml) = (d * f32::from(sc[sub]), dmin * f32::from(mn[sub]));
        out.push(dl * f32::from(q) - ml);
    }
}

/// Q6_K `[ql 128][qh 64][scales 16 (i8)][d]`: element `128h + 64s + k` (k < 64) takes its
/// low nibble `s` from `ql[64h + k]`; element `128h + 32t + k` (k < 32) takes its high two
/// bits from bits `2t..2t+2` of `qh[32h + k]`; the code is offset by 32.
fn q6_k(b: &[u8], out: &mut Vec<f32>) {
    let (ql, qh, scales) = (&b[..128], &b[128..192], &b[192..208]);
    let d = half_at(b, 208);
    for e in 0..QK_K {
        let (h, r) = (e / 128, e % 128);
        let low = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0xF;
        let high = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
        let q = (low | high << 4) as i8 - 32;
        let dl = d * f32::from(scales[e / 16] as i8);
        out.push(dl * f32::from(q));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q4_0_nibbles_are_low_then_high_with_offset_8() {
        let mut block = f16_bytes(0.5).to_vec();
        block.extend((0..16u8).map(|j| (j & 0x0f) | (15 - j) << 4));
        let y = dequantize(GgmlType::Q4_0, &block);
        assert_eq!(y[0], (0.0 - 8.0) * 0.5);
        assert_eq!(y[15], (15.0 - 8.0) * 0.5);
        assert_eq!(y[16], (15.0 - 8.0) * 0.5);
        assert_eq!(y[31], (0.0 - 8.0) * 0.5);
    }

    #[test]
    fn q5_1_uses_the_high_bit_field() {
        let mut block = f16_bytes(1.0).to_vec();
        block.extend(f16_bytes(-2.0));
        // element 0 and element 16 get their fifth bit (bits 0 and 16 of qh)
        block.extend(0x0001_0001u32.to_le_bytes());
        block.extend([0u8; 16]);
        let y = dequantize(GgmlType::Q5_1, &block);
        assert_eq!((y[0], y[1], y[16], y[17]), (16.0 - 2.0, -2.0, 16.0 - 2.0, -2.0));
    }

    #[test]
    fn q8_0_is_signed() {
        let mut block = f16_bytes(0.25).to_vec();
        block.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let y = dequantize(GgmlType::Q8_0, &block);
        assert_eq!((y[0], y[31]), (-4.0, 3.75));
    }
}
