//! Bit-packed code rows and the dot products the fused kernels are built from.
//!
//! A row of `n` codes of `b` bits is a little-endian bit stream: code `p` occupies bits
//! `p·b .. p·b + b` (for 4 bits: the low nibble holds the even position).

/// Packs `codes` (each below `2^bits`) into `dst` (`ceil(len·bits / 8)` bytes, zeroed).
pub(super) fn pack_codes(bits: u32, codes: &[u8], dst: &mut [u8]) {
    let b = bits as usize;
    for (p, &code) in codes.iter().enumerate() {
        let bit = p * b;
        let (byte, shift) = (bit / 8, bit % 8);
        let wide = u16::from(code) << shift;
        dst[byte] |= wide as u8;
        if shift + b > 8 {
            dst[byte + 1] |= (wide >> 8) as u8;
        }
    }
}

/// Code at position `p` of a packed row.
#[inline]
pub(super) fn unpack_code(bits: u32, row: &[u8], p: usize) -> u8 {
    match bits {
        8 => row[p],
        4 => (row[p / 2] >> ((p % 2) * 4)) & 0xF,
        _ => {
            let b = bits as usize;
            let bit = p * b;
            let (byte, shift) = (bit / 8, bit % 8);
            let lo = u16::from(row[byte]);
            let hi = if shift + b > 8 { u16::from(row[byte + 1]) << 8 } else { 0 };
            (((lo | hi) >> shift) & ((1 << b) - 1)) as u8
        }
    }
}

/// `Σ_{p in start..end} x[p] · code[p]` over a packed row; x is indexed by position.
#[inline]
pub(super) fn dot_codes(bits: u32, row: &[u8], start: usize, end: usize, x: &[f32]) -> f32 {
    match bits {
        8 => x[start..end].iter().zip(&row[start..end]).map(|(a, &q)| a * f32::from(q)).sum(),
        4 if start % 2 == 0 && end % 2 == 0 => dot4(&row[start / 2..end / 2], &x[start..end]),
        _ => (start..end).map(|p| x[p] * f32::from(unpack_code(bits, row, p))).sum(),
    }
}

/// Two codes per byte against `2 · bytes.len()` inputs, with independent accumulators so the
/// loop vectorizes.
#[inline]
fn dot4(bytes: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = bytes.len() / 4;
    for (b4, x8) in bytes.chunks_exact(4).zip(x.chunks_exact(8)) {
        for k in 0..4 {
            acc[2 * k] += x8[2 * k] * f32::from(b4[k] & 0xF);
            acc[2 * k + 1] += x8[2 * k + 1] * f32::from(b4[k] >> 4);
        }
    }
    let mut total: f32 = acc.iter().sum();
    for (k, &b) in bytes.iter().enumerate().skip(chunks * 4) {
        total += x[2 * k] * f32::from(b & 0xF) + x[2 * k + 1] * f32::from(b >> 4);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_every_width() {
        for bits in [2u32, 3, 4, 8] {
            let codes: Vec<u8> = (0..37).map(|i| ((i * 7 + 3) % (1 << bits)) as u8).collect();
            let mut row = vec![0u8; (codes.len() * bits as usize).div_ceil(8)];
            pack_codes(bits, &codes, &mut row);
            let back: Vec<u8> = (0..codes.len()).map(|p| unpack_code(bits, &row, p)).collect();
            assert_eq!(back, codes, "{bits} bits");
            let x: Vec<f32> = (0..codes.len()).map(|i| i as f32 * 0.5 - 3.0).collect();
            let want: f32 = (2..34).map(|p| x[p] * f32::from(codes[p])).sum();
            assert!((dot_codes(bits, &row, 2, 34, &x) - want).abs() < 1e-3, "{bits} bits");
        }
    }
}
