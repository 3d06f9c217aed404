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
//! The arithmetic follows bitsandbytes 0.50's CPU path (its torch fallback for `quantize_4bit`,
//! its C++ kernels for the 8-bit absmax quantization and for dequantization) operation by
//! operation in `f32`, so that codes and dequantized values match it bit for bit.

use crate::error::{QuantError, Result};

/// Which 16-value table the 4-bit codes index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fp4Kind {
    /// NormalFloat4 (QLoRA): quantiles of a normal distribution, ascending.
    Nf4,
    /// bitsandbytes' FP4 (1 sign, 2 exponent, 1 mantissa bit), in bitsandbytes' bit order.
    Fp4,
}

/// The block size of the second-level (absmax) quantization, fixed by bitsandbytes.
pub const DOUBLE_QUANT_BLOCKSIZE: usize = 256;

/// bitsandbytes' NF4 table (`get_4bit_type("nf4")`), ascending.
const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_800_998_687_7,
    -0.525_073_051_452_636_7,
    -0.394_917_488_098_144_53,
    -0.284_441_381_692_886_35,
    -0.184_773_430_228_233_34,
    -0.091_050_036_251_544_95,
    0.0,
    0.079_580_299_556_255_34,
    0.160_930_201_411_247_25,
    0.246_112_301_945_686_34,
    0.337_915_241_718_292_24,
    0.440_709_829_330_444_34,
    0.562_617_003_917_694_1,
    0.722_956_836_223_602_3,
    1.0,
];

/// bitsandbytes' FP4 values before normalisation (`get_4bit_type("fp4")`): index bit 3 is the
/// sign, so index 8 is `-0`.
const FP4_UNNORMALISED: [f32; 16] = [
    0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0.0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0,
];

/// The 16 code values of `kind`, indexed by the 4-bit code.
///
/// NF4 is bitsandbytes' table verbatim. FP4 is bitsandbytes' `get_4bit_type("fp4")`: the values
/// above divided by their absmax 12 in `f32` (equal to the constants of its C++ dequantization
/// kernels). bitsandbytes' CPU quantizer picks the nearest code with a copy rounded to 4
/// decimals (`0.0052`, `0.6667`, ...); we use the exact values for both directions, which can
/// only differ from it for a value within 5e-5 of the midpoint between two codes.
pub fn code_table(kind: Fp4Kind) -> [f32; 16] {
    match kind {
        Fp4Kind::Nf4 => NF4_CODE,
        Fp4Kind::Fp4 => FP4_UNNORMALISED.map(|v| v / 12.0),
    }
}

/// The 8-bit quantization of the per-block absmax values (double quantization).
#[derive(Debug, Clone, PartialEq)]
pub struct DoubleQuant {
    /// One 8-bit code per 4-bit block absmax, `[n_blocks]`; indexes `code`.
    pub codes: Vec<u8>,
    /// The 256-entry table the codes index: [`dynamic_map_signed`] with entry 0 set to `-1.0`,
    /// as bitsandbytes' CPU kernel sets it (in place) before quantizing.
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
        if i % 2 == 0 {
            byte >> 4
        } else {
            byte & 0x0F
        }
    }

    /// The dequantized values, `[numel]`: `code[index] * absmax[block]`.
    pub fn dequantize(&self) -> Vec<f32> {
        let table = code_table(self.kind);
        (0..self.numel)
            .map(|i| table[usize::from(self.code_index(i))] * self.absmax[i / self.blocksize])
            .collect()
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
            let recip = reciprocal_or_zero(amax);
            block.iter().map(move |&v| nearest_code(&table, (v * recip).clamp(-1.0, 1.0)))
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
/// For each exponent `i` in `0..7` it takes the midpoints of `linspace(0.1, 1, 2^i + 1)` (f32),
/// multiplies them by `10^(i - 6)` (rounded to f32, as torch does with a Python scalar) and
/// adds them with both signs; then 0 and 1, and sorts.
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

/// bitsandbytes scales by `x * (1 / absmax)` (torch's `1 / t` is `t.reciprocal()`). For an
/// all-zero block that is `0 * inf = NaN`; 0 instead maps every value to the zero code, and a
/// subnormal absmax whose reciprocal overflows is treated the same (its values are below
/// f32's normal range anyway).
fn reciprocal_or_zero(amax: f32) -> f32 {
    let r = 1.0 / amax;
    if r.is_finite() {
        r
    } else {
        0.0
    }
}

/// The index of the code nearest to `s`; the first one on a tie, as `torch.argmin` picks.
/// A linear scan, because the FP4 table is not sorted.
fn nearest_code(table: &[f32; 16], s: f32) -> u8 {
    let mut best = 0;
    for (i, &c) in table.iter().enumerate() {
        if (s - c).abs() < (s - table[best]).abs() {
            best = i;
        }
    }
    best as u8
}

/// Packs 4-bit indices two per byte, high nibble first; an odd count is padded with `pad`
/// (bitsandbytes pads the scaled values with 0 before picking codes).
fn pack_nibbles(indices: &[u8], pad: u8) -> Vec<u8> {
    indices
        .chunks(2)
        .map(|pair| (pair[0] << 4) | pair.get(1).copied().unwrap_or(pad))
        .collect()
}

/// bitsandbytes' double quantization of the absmax values: subtract their mean, then
/// `quantize_blockwise` with the dynamic map in blocks of 256 (its C++ CPU kernel).
fn double_quantize(absmax: &[f32]) -> DoubleQuant {
    let offset = torch_sum_f32(absmax) / absmax.len() as f32;
    let centred: Vec<f32> = absmax.iter().map(|&a| a - offset).collect();
    let mut code = dynamic_map_signed().to_vec();
    // The C++ kernel overwrites entry 0 (about -0.99297) with -1 so that every normalised value
    // in [-1, 1] falls inside the table for its binary search; the table it hands on to
    // dequantization is that same modified one.
    code[0] = -1.0;
    let absmax2: Vec<f32> = centred.chunks(DOUBLE_QUANT_BLOCKSIZE).map(block_absmax).collect();
    let codes = centred
        .chunks(DOUBLE_QUANT_BLOCKSIZE)
        .zip(&absmax2)
        .flat_map(|(block, &amax2)| {
            let code = &code;
            // The C++ kernel divides (it does not multiply by a reciprocal). An all-equal set
            // of absmax values gives 0 / 0; 0 selects the map's exact zero instead.
            block.iter().map(move |&v| nearest_sorted(code, if amax2 > 0.0 { v / amax2 } else { 0.0 }))
        })
        .collect();
    DoubleQuant { codes, code, absmax2, blocksize2: DOUBLE_QUANT_BLOCKSIZE, offset }
}

/// bitsandbytes' C++ `quantize_block` choice in an ascending table: binary-search the entry at
/// or below `s`, then step right only if the right neighbour is *strictly* closer (in `f32`).
fn nearest_sorted(code: &[f32], s: f32) -> u8 {
    let left = code.partition_point(|&c| c <= s).saturating_sub(1);
    let right = (left + 1).min(code.len() - 1);
    let idx = if (s - code[right]).abs() < (s - code[left]).abs() { right } else { left };
    idx as u8
}

/// torch's CPU `linspace` for f32: `step = (end - start) / (steps - 1)` in f32; the first half
/// counts up from `start`, the second half down from `end`.
fn torch_linspace_f32(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| if i < halfway { start + step * i as f32 } else { end - step * (steps - i - 1) as f32 })
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
/// fixture). Exact up to 32768 values; beyond that torch may split the sum across threads.
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
    for k in 1..SUM_ILP {
        let p = partial[k];
        add_lanes(&mut partial[0], &p);
    }
    partial[0]
}

/// torch's `multi_row_sum`: `SUM_ILP` running sums over rows of items (row `i`, column `k` is
/// item `i * SUM_ILP + k`), cascaded through `SUM_LEVELS` levels every `2^level_power` rows to
/// bound rounding growth.
fn multi_row_sum<const W: usize>(xs: &[f32], size: usize) -> [[f32; W]; SUM_ILP] {
    let level_power = 4.max(ceil_log2(size) / SUM_LEVELS);
    let level_step = 1usize << level_power;
    let level_mask = level_step - 1;
    let item = |i: usize, k: usize| &xs[(i * SUM_ILP + k) * W..(i * SUM_ILP + k + 1) * W];
    let mut acc = [[[0.0f32; W]; SUM_ILP]; SUM_LEVELS];
    let mut i = 0;
    while i + level_step <= size {
        for _ in 0..level_step {
            for k in 0..SUM_ILP {
                add_lanes(&mut acc[0][k], item(i, k));
            }
            i += 1;
        }
        for j in 1..SUM_LEVELS {
            for k in 0..SUM_ILP {
                let lower = std::mem::replace(&mut acc[j - 1][k], [0.0; W]);
                add_lanes(&mut acc[j][k], &lower);
            }
            if i & (level_mask << (j * level_power)) != 0 {
                break;
            }
        }
    }
    for i in i..size {
        for k in 0..SUM_ILP {
            add_lanes(&mut acc[0][k], item(i, k));
        }
    }
    for j in 1..SUM_LEVELS {
        for k in 0..SUM_ILP {
            let upper = acc[j][k];
            add_lanes(&mut acc[0][k], &upper);
        }
    }
    acc[0]
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
