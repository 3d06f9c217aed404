//! Bit-packed code rows and the row kernels the fused matmuls are built from.
//!
//! Layouts (private to this module; checkpoints use their own, converted on load):
//! - 8 bits: one byte per code;
//! - 4 bits: blocks of 32 codes in 16 bytes, byte `k` holding code `k` in its low nibble and
//!   code `k + 16` in its high nibble (llama.cpp's Q4 order), so unpacking a block is two
//!   contiguous vector operations instead of an interleave; rows are padded to whole blocks;
//! - every other width (1-3, 5-7 bits): a little-endian bit stream (code `p` at bits
//!   `p·b .. p·b + b`).
//!
//! The fused products dequantize one weight row at a time into a small scratch buffer (it
//! stays in L1) and take its dot product with every input row: two loops that vectorize, for
//! any group size. On x86-64 the loops are compiled twice and the AVX2+FMA copy is chosen at
//! run time.

/// Bytes of one packed row of `n` codes.
pub(super) fn row_bytes(bits: u32, n: usize) -> usize {
    match bits {
        8 => n,
        4 => n.div_ceil(32) * 16,
        b => (n * b as usize).div_ceil(8),
    }
}

/// Packs `codes` (each below `2^bits`) into `dst` (`row_bytes(bits, len)` bytes, zeroed).
pub(super) fn pack_codes(bits: u32, codes: &[u8], dst: &mut [u8]) {
    match bits {
        8 => dst[..codes.len()].copy_from_slice(codes),
        4 => {
            for (p, &c) in codes.iter().enumerate() {
                let (block, k) = (p / 32, p % 32);
                dst[block * 16 + k % 16] |= if k < 16 { c } else { c << 4 };
            }
        }
        _ => {
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
    }
}

/// Code at position `p` of a packed row.
#[inline]
pub(super) fn unpack_code(bits: u32, row: &[u8], p: usize) -> u8 {
    match bits {
        8 => row[p],
        4 => {
            let (block, k) = (p / 32, p % 32);
            let b = row[block * 16 + k % 16];
            if k < 16 {
                b & 0xF
            } else {
                b >> 4
            }
        }
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

/// `dst[p] = (code[p] − zero) · scale` (exactly the reference dequantization) for positions `start..end` of a packed row.
#[inline(always)]
pub(super) fn dequant_span(bits: u32, row: &[u8], start: usize, end: usize, scale: f32, zero: f32, dst: &mut [f32]) {
    match bits {
        8 => {
            for (d, &q) in dst[start..end].iter_mut().zip(&row[start..end]) {
                *d = (f32::from(q) - zero) * scale;
            }
        }
        4 if start.is_multiple_of(32) && (end.is_multiple_of(32) || end == dst.len()) => {
            // Whole blocks: low nibbles are the block's first 16 codes, high nibbles the rest.
            let blocks = (end - start).div_ceil(32);
            for j in 0..blocks {
                let bytes = &row[(start / 32 + j) * 16..][..16];
                let base = start + 32 * j;
                if base + 32 <= dst.len() {
                    let out: &mut [f32] = &mut dst[base..base + 32];
                    let (lo, hi) = out.split_at_mut(16);
                    for k in 0..16 {
                        lo[k] = (f32::from(bytes[k] & 0xF) - zero) * scale;
                        hi[k] = (f32::from(bytes[k] >> 4) - zero) * scale;
                    }
                } else {
                    for p in base..end.min(dst.len()) {
                        dst[p] = (f32::from(unpack_code(4, row, p)) - zero) * scale;
                    }
                }
            }
        }
        _ => {
            for (p, d) in (start..end).zip(&mut dst[start..end]) {
                *d = (f32::from(unpack_code(bits, row, p)) - zero) * scale;
            }
        }
    }
}

/// `Σ_g scale_g · (Σ_{p∈g} x[p]·code[p] − zero_g · xsum_g)` over a packed 4- or 8-bit row
/// whose group bounds fall on 32-code blocks: codes are converted and multiplied in registers,
/// never stored. `xsums[g]` is `Σ_{p∈g} x[p]`.
#[inline(always)]
pub(super) fn affine_dot(
    bits: u32,
    row: &[u8],
    bounds: &[usize],
    scales: &[f32],
    zeros: &[f32],
    x: &[f32],
    xsums: &[f32],
) -> f32 {
    let mut total = [0f32; 16];
    let mut correction = 0f32;
    for g in 0..bounds.len() - 1 {
        let (start, end) = (bounds[g], bounds[g + 1]);
        let mut acc = [0f32; 16];
        if bits == 4 {
            // Two accumulator sets: the low- and high-nibble products do not wait on each other.
            let mut acc_hi = [0f32; 16];
            for (bytes, xb) in row[start / 2..end / 2].chunks_exact(16).zip(x[start..end].chunks_exact(32)) {
                let (lo, hi) = xb.split_at(16);
                for k in 0..16 {
                    acc[k] += lo[k] * f32::from(bytes[k] & 0xF);
                    acc_hi[k] += hi[k] * f32::from(bytes[k] >> 4);
                }
            }
            for k in 0..16 {
                acc[k] += acc_hi[k];
            }
        } else {
            for (q, xb) in row[start..end].chunks_exact(16).zip(x[start..end].chunks_exact(16)) {
                for k in 0..16 {
                    acc[k] += xb[k] * f32::from(q[k]);
                }
            }
        }
        for k in 0..16 {
            total[k] += scales[g] * acc[k];
        }
        correction += scales[g] * zeros[g] * xsums[g];
    }
    total.iter().sum::<f32>() - correction
}

/// Whether [`affine_dot`] serves rows of `bits` with these group bounds.
pub(super) fn affine_dot_applies(bits: u32, bounds: &[usize]) -> bool {
    let unit = match bits {
        4 => 32,
        8 => 16,
        _ => return false,
    };
    bounds.iter().all(|&b| b % unit == 0)
}

/// `Σ a·b` with 16 independent accumulators, so the loop vectorizes.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..16 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut total = tail;
    for v in acc {
        total += v;
    }
    total
}

/// Whether this CPU runs the AVX2+FMA copies of the kernels (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Compiles `$body` (a closure-free block using only its arguments) twice: plainly and with
/// AVX2+FMA enabled, and calls the copy this CPU supports.
macro_rules! multiversion {
    (fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        // A module and a function may share a name (different namespaces): the module holds
        // the two compiled copies, the function picks one.
        #[allow(clippy::too_many_arguments)]
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[inline(always)]
            pub(super) fn generic($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            pub(super) unsafe fn avx2($($arg: $ty),*) {
                generic($($arg),*)
            }
        }

        #[allow(clippy::too_many_arguments)]
        pub(super) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if $crate::quant::kernels::has_avx2() {
                // SAFETY: the CPU supports AVX2 and FMA (checked at run time above).
                return unsafe { $name::avx2($($arg),*) };
            }
            $name::generic($($arg),*)
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_every_width() {
        for bits in 1u32..=8 {
            for n in [37usize, 64, 100] {
                let codes: Vec<u8> = (0..n).map(|i| ((i * 7 + 3) % (1 << bits)) as u8).collect();
                let mut row = vec![0u8; row_bytes(bits, n)];
                pack_codes(bits, &codes, &mut row);
                let back: Vec<u8> = (0..n).map(|p| unpack_code(bits, &row, p)).collect();
                assert_eq!(back, codes, "{bits} bits, {n} codes");
                let mut deq = vec![0f32; n];
                dequant_span(bits, &row, 0, n, 0.5, 3.0, &mut deq);
                let want: Vec<f32> = codes.iter().map(|&c| (f32::from(c) - 3.0) * 0.5).collect();
                assert_eq!(deq, want, "{bits} bits, {n} codes");
            }
        }
    }

    #[test]
    fn dot_matches_a_plain_sum() {
        let a: Vec<f32> = (0..77).map(|i| i as f32 * 0.25 - 9.0).collect();
        let b: Vec<f32> = (0..77).map(|i| (i % 5) as f32 - 2.0).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - want).abs() < 1e-3);
    }
}
