//! The float and 32-wide GGML types: F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, block for block
//! as ggml's reference quantizers (`quantize_row_*_ref` in `ggml-quants.c`, the path
//! `llama-quantize` takes without an importance matrix) and gguf-py's `quants.quantize` write
//! them: the same comparisons, the same f32 operations in the same order, f16 by
//! round-to-nearest-even.

use half::f16;

/// Elements of a legacy block.
pub const QK: usize = 32;

fn f16_bytes(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

/// F16, round to nearest even (numpy's `astype(np.float16)`).
pub fn f16_row(x: &[f32], out: &mut Vec<u8>) {
    out.extend(x.iter().flat_map(|&v| f16_bytes(v)));
}

/// BF16 as `ggml_compute_fp32_to_bf16` (gguf-py's `BF16.quantize_blocks`): NaN forced quiet,
/// otherwise round to nearest even on the upper 16 bits.
pub fn bf16_row(x: &[f32], out: &mut Vec<u8>) {
    for &v in x {
        let mut n = v.to_bits();
        if n & 0x7fff_ffff > 0x7f80_0000 {
            n = (n & 0xffff_0000) | (64 << 16);
        }
        let rounded = ((n as u64 + (0x7fff + ((n >> 16) & 1)) as u64) >> 16) as u16;
        out.extend(rounded.to_le_bytes());
    }
}

/// The value of largest magnitude, first one on ties (`amax < fabsf(v)`).
fn signed_absmax(b: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in b {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(b: &[f32]) -> (f32, f32) {
    b.iter().fold((f32::MAX, -f32::MAX), |(lo, hi), &v| (if v < lo { v } else { lo }, if v > hi { v } else { hi }))
}

fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// C's `(int8_t)(v)` of a value the callers keep in `0..=32`: truncation toward zero.
fn trunc_u8(v: f32) -> u8 {
    v as i32 as u8
}

/// Q8_0: `d = amax / 127`, codes `round(x / d)` (half away from zero, C's `roundf`).
pub fn q8_0_row(x: &[f32], out: &mut Vec<u8>) {
    for b in x.chunks_exact(QK) {
        let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = inverse(d);
        out.extend(f16_bytes(d));
        out.extend(b.iter().map(|&v| (v * id).round() as i8 as u8));
    }
}

/// Q4_0: `d = max / -8` of the signed absmax, codes `min(15, trunc(x / d + 8.5))`.
pub fn q4_0_row(x: &[f32], out: &mut Vec<u8>) {
    for b in x.chunks_exact(QK) {
        let d = signed_absmax(b) / -8.0;
        let id = inverse(d);
        out.extend(f16_bytes(d));
        for j in 0..QK / 2 {
            let lo = trunc_u8(b[j] * id + 8.5).min(15);
            let hi = trunc_u8(b[j + QK / 2] * id + 8.5).min(15);
            out.push(lo | (hi << 4));
        }
    }
}

/// Q4_1: `d = (max - min) / 15`, `m = min`, codes `min(15, trunc((x - min) / d + 0.5))`.
pub fn q4_1_row(x: &[f32], out: &mut Vec<u8>) {
    for b in x.chunks_exact(QK) {
        let (min, max) = min_max(b);
        let d = (max - min) / 15.0;
        let id = inverse(d);
        out.extend(f16_bytes(d));
        out.extend(f16_bytes(min));
        for j in 0..QK / 2 {
            let lo = trunc_u8((b[j] - min) * id + 0.5).min(15);
            let hi = trunc_u8((b[j + QK / 2] - min) * id + 0.5).min(15);
            out.push(lo | (hi << 4));
        }
    }
}

/// Q5_0: `d = max / -16`, codes `min(31, trunc(x / d + 16.5))`, fifth bits in `qh`.
pub fn q5_0_row(x: &[f32], out: &mut Vec<u8>) {
    for b in x.chunks_exact(QK) {
        let d = signed_absmax(b) / -16.0;
        let id = inverse(d);
        let codes: Vec<u8> = b.iter().map(|&v| trunc_u8(v * id + 16.5).min(31)).collect();
        out.extend(f16_bytes(d));
        push_q5(&codes, out);
    }
}

/// Q5_1: `d = (max - min) / 31`, `m = min`, codes `trunc((x - min) / d + 0.5)`.
pub fn q5_1_row(x: &[f32], out: &mut Vec<u8>) {
    for b in x.chunks_exact(QK) {
        let (min, max) = min_max(b);
        let d = (max - min) / 31.0;
        let id = inverse(d);
        let codes: Vec<u8> = b.iter().map(|&v| trunc_u8((v - min) * id + 0.5)).collect();
        out.extend(f16_bytes(d));
        out.extend(f16_bytes(min));
        push_q5(&codes, out);
    }
}

/// `qh` (bit j: fifth bit of code j) then the low nibbles, code j and j + 16 sharing a byte.
pub(super) fn push_q5(codes: &[u8], out: &mut Vec<u8>) {
    let qh = codes.iter().enumerate().fold(0u32, |qh, (j, &c)| qh | (((c as u32 & 0x10) >> 4) << j));
    out.extend(qh.to_le_bytes());
    for j in 0..QK / 2 {
        out.push((codes[j] & 0x0f) | ((codes[j + QK / 2] & 0x0f) << 4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_core::weights::gguf::quants::{dequantize, GgmlType};

    #[test]
    fn legacy_blocks_dequantize_back_within_half_a_step() {
        let x: Vec<f32> = (0..256).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        let cases: [(GgmlType, super::super::RowQuantizer, f32); 5] = [
            (GgmlType::Q8_0, q8_0_row, 127.0),
            (GgmlType::Q4_0, q4_0_row, 8.0),
            (GgmlType::Q4_1, q4_1_row, 15.0),
            (GgmlType::Q5_0, q5_0_row, 16.0),
            (GgmlType::Q5_1, q5_1_row, 31.0),
        ];
        for (ty, quantize, levels) in cases {
            let mut bytes = vec![];
            quantize(&x, &mut bytes);
            assert_eq!(bytes.len(), x.len() / QK * ty.block_layout().unwrap().1, "{}", ty.name());
            let back = dequantize(ty, &bytes);
            for (b, xb) in back.chunks(QK).zip(x.chunks(QK)) {
                let (lo, hi) = min_max(xb);
                // One step is range / levels; rounding errs by half a step, plus f16 scale rounding.
                let step = (hi - lo).max(hi.abs().max(lo.abs())) / levels;
                for (a, e) in b.iter().zip(xb) {
                    assert!((a - e).abs() <= 0.5 * step * 1.01 + 1e-6, "{}: {a} vs {e}", ty.name());
                }
            }
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_even_and_keeps_nan_quiet() {
        let mut out = vec![];
        bf16_row(&[1.0, f32::from_bits(0x3f80_8000), f32::from_bits(0x3f81_8000), f32::from_bits(0x7f80_0001)], &mut out);
        let v: Vec<u16> = out.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        assert_eq!(v, vec![0x3f80, 0x3f80, 0x3f82, 0x7fc0]);
    }
}
