//! 4-bit block quantization (NF4 and FP4) with bitsandbytes' semantics, on host slices.
//!
//! The tensor is flattened and cut into blocks of `blocksize` values (the last one may be
//! partial). Each block keeps its `absmax = max|x|`; each value becomes the index of the code
//! nearest to `x / absmax` in a 16-entry table ([`code_table`]), two indices per byte.
//! Dequantization is `code[index] * absmax`.
//!
//! With double quantization (bitsandbytes' `compress_statistics=True`) the per-block absmax
//! values are themselves quantized: their mean is subtracted (`offset`) and the centred values
//! are 8-bit block-quantized in blocks of 256 with bitsandbytes' signed dynamic map
//! ([`dynamic_map_signed`]).
//!
//! The arithmetic follows bitsandbytes 0.50's torch implementation (its `default` backend
//! kernels; the fixture's double-quantized absmax rules out its C++ CPU kernel) operation by
//! operation in `f32`, so that codes and dequantized values match it bit for bit: scaling is
//! `x * (1 / absmax)` clamped to `[-1, 1]`, and the code is torch's `argmin |scaled - code|`
//! (the first one on a tie).

use crate::error::{QuantError, Result};

/// Which 16-value table the 4-bit codes index (the runtime's type: one table for both crates).
pub use llm_core::quant::Fp4Kind;

/// The block size of the second-level (absmax) quantization, fixed by bitsandbytes.
pub const DOUBLE_QUANT_BLOCKSIZE: usize = 256;

/// The 16 code values of `kind`, indexed by the 4-bit code: bitsandbytes' tables, held by
/// the runtime ([`Fp4Kind::code_table`]).
///
/// bitsandbytes' torch quantizer picks the nearest code with a copy rounded to 4 decimals
/// (`0.0052`, `0.6667`, ...); we use the exact values for both directions, which can only
/// differ from it for a value within 5e-5 of the midpoint between two codes.
pub fn code_table(kind: Fp4Kind) -> [f32; 16] {
    kind.code_table()
}

/// The 8-bit quantization of the per-block absmax values (double quantization).
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleQuant {
    /// One 8-bit code per 4-bit block absmax, `[n_blocks]`; indexes `code`.
    pub codes: Vec<u8>,
    /// The 256-entry table the codes index: [`dynamic_map_signed`].
    pub code: Vec<f32>,
    /// `max|absmax - offset|` per block of `blocksize2` codes, `[ceil(n_blocks / blocksize2)]`.
    pub absmax2: Vec<f32>,
    /// The second-level block size (always [`DOUBLE_QUANT_BLOCKSIZE`]).
    pub blocksize2: usize,
    /// The mean of the original absmax values, subtracted before quantizing them.
    pub offset: f32,
}

impl DoubleQuant {
    /// The dequantized per-block absmax values, `[n_blocks]`:
    /// `code[codes[i]] * absmax2[i / blocksize2] + offset`.
    pub fn dequantize(&self) -> Vec<f32> {
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &q)| self.code[usize::from(q)] * self.absmax2[i / self.blocksize2] + self.offset)
            .collect()
    }
}

/// A flattened tensor quantized to 4 bits in blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct Fp4Quantized {
    /// Which code table the indices refer to.
    pub kind: Fp4Kind,
    /// Number of quantized values.
    pub numel: usize,
    /// Values per block (the last block may be shorter).
    pub blocksize: usize,
    /// The 4-bit indices, two per byte, `[ceil(numel / 2)]`: element `2k` in the high nibble,
    /// `2k + 1` in the low one. For odd `numel` the last low nibble encodes 0.
    pub packed: Vec<u8>,
    /// Per-block scale, `[ceil(numel / blocksize)]`. When double-quantized this holds the
    /// *dequantized* absmax, which is what dequantization uses.
    pub absmax: Vec<f32>,
    /// The quantized absmax, when double quantization was asked for.
    pub double_quant: Option<DoubleQuant>,
}

impl Fp4Quantized {
    /// The 4-bit code index of element `i`.
    ///
    /// Panics if `i >= numel`.
    pub fn code_index(&self, i: usize) -> u8 {
        assert!(i < self.numel, "element {i} out of range for {} values", self.numel);
        let byte = self.packed[i / 2];
        if i.is_multiple_of(2) {
            byte >> 4
        } else {
            byte & 0x0F
        }
    }

    /// The dequantized values, `[numel]`: `code[index] * absmax[block]`.
    pub fn dequantize(&self) -> Vec<f32> {
        let table = code_table(self.kind);
        (0..self.numel).map(|i| table[usize::from(self.code_index(i))] * self.absmax[i / self.blocksize]).collect()
    }
}

/// Quantizes `x` (any shape, flattened row-major) to 4 bits in blocks of `blocksize`, as
/// bitsandbytes' `quantize_4bit(x, blocksize, quant_type, compress_statistics=double_quant)`.
///
/// `blocksize` must be a power of two in `32..=4096`, the sizes bitsandbytes' CUDA kernels
/// accept (so the result also loads there); 64 is the usual choice.
///
/// Errors: a bad `blocksize` ([`QuantError::Config`]); an empty `x` ([`QuantError::Shape`]); a
/// NaN or infinite value ([`QuantError::NonFinite`]).
pub fn quantize_fp4(x: &[f32], kind: Fp4Kind, blocksize: usize, double_quant: bool) -> Result<Fp4Quantized> {
    check_blocksize(blocksize)?;
    if x.is_empty() {
        return Err(QuantError::Shape {
            what: "4-bit input".into(),
            expected: "at least one value".into(),
            got: "0 values".into(),
        });
    }
    if !x.iter().all(|v| v.is_finite()) {
        return Err(QuantError::NonFinite { what: "4-bit input".into() });
    }
    let table = code_table(kind);
    let absmax: Vec<f32> = x.chunks(blocksize).map(block_absmax).collect();
    let indices: Vec<u8> = x
        .chunks(blocksize)
        .zip(&absmax)
        .flat_map(|(block, &amax)| {
            let recip = 1.0 / amax;
            block.iter().map(move |&v| nearest_code(&table, scale_to_unit(v, recip)))
        })
        .collect();
    let packed = pack_nibbles(&indices, nearest_code(&table, 0.0));
    let (absmax, double_quant) = if double_quant {
        let dq = double_quantize(&absmax);
        (dq.dequantize(), Some(dq))
    } else {
        (absmax, None)
    };
    Ok(Fp4Quantized { kind, numel: x.len(), blocksize, packed, absmax, double_quant })
}

/// bitsandbytes' `create_dynamic_map(signed=True)`: the 256-value signed dynamic 8-bit map,
/// ascending, from about `-0.99297` to `1.0`, reproduced in `f32` exactly as bitsandbytes
/// computes it with torch.
///
/// For each exponent `i` in `0..7` it takes the midpoints of `linspace(0.1, 1, 2^i + 1)` (f32,
/// torch's x86 kernel arithmetic), multiplies them by `10^(i - 6)` (rounded to f32, as torch
/// does with a Python scalar) and adds them with both signs; then 0 and 1, and sorts.
pub fn dynamic_map_signed() -> [f32; 256] {
    // `10 ** (-6 + i)` in Python: exact decimal powers, correctly rounded to f64, then to f32.
    const POWERS: [f64; 7] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for (i, &power) in POWERS.iter().enumerate() {
        let bounds = torch_linspace_f32(0.1, 1.0, (1 << i) + 1);
        let means: Vec<f32> = bounds.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
        let scale = power as f32;
        data.extend(means.iter().map(|&m| scale * m));
        data.extend(means.iter().map(|&m| -scale * m));
    }
    data.extend([0.0, 1.0]);
    data.sort_by(f32::total_cmp);
    data.try_into().expect("the signed dynamic map has 2 * 127 + 2 = 256 entries")
}

/// bitsandbytes accepts these block sizes on CUDA; other sizes would not load there.
fn check_blocksize(blocksize: usize) -> Result<()> {
    if blocksize.is_power_of_two() && (32..=4096).contains(&blocksize) {
        Ok(())
    } else {
        Err(QuantError::config(
            "blocksize",
            format!("{blocksize} is not one of 32, 64, 128, 256, 512, 1024, 2048, 4096"),
        ))
    }
}

/// `max|v|` over a block (0 for an all-zero block).
fn block_absmax(block: &[f32]) -> f32 {
    block.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// bitsandbytes' `clamp(x * (1 / absmax), -1, 1)`, with `recip = 1 / absmax` rounded first as
/// torch's `1 / t` (`t.reciprocal()`) does. An all-zero block gives `0 * inf = NaN`, which the
/// code search below maps to index 0 exactly as `torch.argmin` does; its dequantized value is
/// `code[0] * 0 = 0` either way, and matching the index keeps the bytes identical to bitsandbytes'.
fn scale_to_unit(v: f32, recip: f32) -> f32 {
    (v * recip).clamp(-1.0, 1.0)
}

/// The index of the code nearest to `s`; the first one on a tie, and 0 for NaN, as
/// `torch.argmin(|s - table|)` picks. A linear scan, because the FP4 table is not sorted.
fn nearest_code(table: &[f32; 16], s: f32) -> u8 {
    let mut best = 0;
    for (i, &c) in table.iter().enumerate() {
        // NaN compares false, so a NaN `s` keeps index 0.
        if (s - c).abs() < (s - table[best]).abs() {
            best = i;
        }
    }
    best as u8
}

/// Packs 4-bit indices two per byte, high nibble first; an odd count is padded with `pad`
/// (bitsandbytes pads the scaled values with 0 before picking codes).
fn pack_nibbles(indices: &[u8], pad: u8) -> Vec<u8> {
    indices.chunks(2).map(|pair| (pair[0] << 4) | pair.get(1).copied().unwrap_or(pad)).collect()
}

/// bitsandbytes' double quantization of the absmax values: subtract their mean, then
/// `quantize_blockwise` with the dynamic map in blocks of 256.
///
/// bitsandbytes' C++ CPU kernel for that step overwrites entry 0 of the map with -1 (in place)
/// and would hand the modified map on to dequantization; the fixture's dequantized absmax
/// shows the unmodified map (`-0.99297 * absmax2 + offset`), i.e. torch's `default` kernel,
/// which this follows.
fn double_quantize(absmax: &[f32]) -> DoubleQuant {
    let offset = torch_sum_f32(absmax) / absmax.len() as f32;
    let centred: Vec<f32> = absmax.iter().map(|&a| a - offset).collect();
    let code = dynamic_map_signed().to_vec();
    let absmax2: Vec<f32> = centred.chunks(DOUBLE_QUANT_BLOCKSIZE).map(block_absmax).collect();
    let codes = centred
        .chunks(DOUBLE_QUANT_BLOCKSIZE)
        .zip(&absmax2)
        .flat_map(|(block, &amax2)| {
            let (code, recip) = (&code, 1.0 / amax2);
            block.iter().map(move |&v| nearest_sorted(code, scale_to_unit(v, recip)))
        })
        .collect();
    DoubleQuant { codes, code, absmax2, blocksize2: DOUBLE_QUANT_BLOCKSIZE, offset }
}

/// [`nearest_code`]'s choice (first on a tie, 0 for NaN) in an ascending table, by binary
/// search: the map has 256 entries and there is one absmax per 64 weights.
fn nearest_sorted(code: &[f32], s: f32) -> u8 {
    if s.is_nan() {
        return 0;
    }
    let left = code.partition_point(|&c| c <= s).saturating_sub(1);
    let right = (left + 1).min(code.len() - 1);
    // The left (lower) index wins a tie, as the first minimum does in `argmin`.
    let idx = if (s - code[right]).abs() < (s - code[left]).abs() { right } else { left };
    idx as u8
}

/// torch's CPU `linspace` for f32: `step = (end - start) / (steps - 1)` in f32; the first half
/// counts up from `start` (`start + step * i`), the second half down from `end`
/// (`end - step * (steps - 1 - i)`).
///
/// torch's x86 kernels are built with `-mfma` and GCC's default `-ffp-contract=fast`, so each of
/// those is one fused multiply-add. This matters: unfused, 42 of the map's 256 entries differ in
/// the last bit from the map bitsandbytes produces (checked against a published dump of it).
fn torch_linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| if i < halfway { step.mul_add(i as f32, start) } else { (-step).mul_add((steps - i - 1) as f32, end) })
        .collect()
}

/// Lanes of the 256-bit vectors torch's CPU sum uses for f32 (its AVX2 and default builds).
const SUM_LANES: usize = 8;
/// Independent accumulators torch's `row_sum` interleaves.
const SUM_ILP: usize = 4;
/// Levels of torch's cascade (pairwise-like) summation.
const SUM_LEVELS: usize = 4;

/// `torch.sum` of a contiguous f32 vector on CPU, in torch's order of additions (its cascade
/// sum with 8-lane vectors), so that `mean(absmax)` (the double-quantization offset) matches
/// bitsandbytes to the bit; a plain or f64 sum differs in the last bit (it does on the
/// fixture). Exact up to 32768 values (torch's parallel grain size); beyond that torch may split
/// the sum across threads, which can move the offset by an ulp.
fn torch_sum_f32(xs: &[f32]) -> f32 {
    if xs.len() < SUM_LANES {
        // Too short for one vector: torch's scalar path, the same cascade one lane wide.
        return row_sum::<1>(xs, xs.len())[0];
    }
    let n_vectors = xs.len() / SUM_LANES;
    let lanes = row_sum::<SUM_LANES>(xs, n_vectors);
    // The tail past the last full vector is added first, then the lanes in order.
    let tail = xs[n_vectors * SUM_LANES..].iter().fold(0.0f32, |acc, &v| acc + v);
    lanes.iter().fold(tail, |acc, &v| acc + v)
}

/// torch's `row_sum`: item `i` is `xs[i*W..(i+1)*W]`; `size` items are summed in `SUM_ILP`
/// interleaved accumulators (a cascade each), the leftover items into the first, then the
/// accumulators are folded left to right.
fn row_sum<const W: usize>(xs: &[f32], size: usize) -> [f32; W] {
    let size_ilp = size / SUM_ILP;
    let mut partial = multi_row_sum::<W>(xs, size_ilp);
    for i in size_ilp * SUM_ILP..size {
        add_lanes(&mut partial[0], &xs[i * W..(i + 1) * W]);
    }
    let (first, rest) = partial.split_at_mut(1);
    for p in rest.iter() {
        add_lanes(&mut first[0], p);
    }
    first[0]
}

/// torch's `multi_row_sum`: `SUM_ILP` running sums over rows of items (row `i`, column `k` is
/// item `i * SUM_ILP + k`), cascaded through `SUM_LEVELS` levels every `2^level_power` rows to
/// bound rounding growth.
fn multi_row_sum<const W: usize>(xs: &[f32], size: usize) -> [[f32; W]; SUM_ILP] {
    let level_power = 4.max(ceil_log2(size) / SUM_LEVELS);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let mut acc = [[[0.0f32; W]; SUM_ILP]; SUM_LEVELS];
    let mut i = 0;
    while i + level_step <= size {
        for _ in 0..level_step {
            add_row_of_items(&mut acc[0], xs, i);
            i += 1;
        }
        // Push each full level's sums one level up, and stop climbing at the first level that
        // is not full yet.
        for j in 1..SUM_LEVELS {
            let (lower, upper) = acc.split_at_mut(j);
            for (dst, src) in upper[0].iter_mut().zip(lower[j - 1].iter_mut()) {
                add_lanes(dst, &std::mem::replace(src, [0.0; W]));
            }
            if i & (level_mask << (j * level_power)) != 0 {
                break;
            }
        }
    }
    for i in i..size {
        add_row_of_items(&mut acc[0], xs, i);
    }
    let (first, rest) = acc.split_at_mut(1);
    for level in rest.iter() {
        for (dst, src) in first[0].iter_mut().zip(level) {
            add_lanes(dst, src);
        }
    }
    first[0]
}

/// Adds row `i` of items (items `i * SUM_ILP + k`, each `W` lanes wide) to the `SUM_ILP`
/// accumulators.
fn add_row_of_items<const W: usize>(acc: &mut [[f32; W]; SUM_ILP], xs: &[f32], i: usize) {
    let row = &xs[i * SUM_ILP * W..(i + 1) * SUM_ILP * W];
    for (dst, item) in acc.iter_mut().zip(row.chunks_exact(W)) {
        add_lanes(dst, item);
    }
}

/// Lane-wise `acc += v`.
fn add_lanes<const W: usize>(acc: &mut [f32; W], v: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(v) {
        *a += b;
    }
}

/// torch's `CeilLog2` (1 for `x <= 2`).
fn ceil_log2(x: usize) -> usize {
    if x <= 2 {
        1
    } else {
        (usize::BITS - (x - 1).leading_zeros()) as usize
    }
}
