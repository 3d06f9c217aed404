//! NF4 and FP4 (bitsandbytes `quantize_4bit`): the flattened weight in blocks, each block
//! scaled by its absmax, each element the index of the nearest of 16 code values.


use super::affine::by_output_row;
use crate::error::{LlmError, Result};

/// Which 16-value code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fp4Kind {
    /// NormalFloat4 (QLoRA): quantiles of a standard normal, exact zero.
    Nf4,
    /// bitsandbytes' FP4 (e2m1 without infinities), sign in the high bit.
    Fp4,
}

/// bitsandbytes' NF4 table (`get_4bit_type("nf4")`), as float32.
const NF4: [f32; 16] = [
    -1.0, -0.696_192_8, -0.525_073_05, -0.394_917_5, -0.284_441_38, -0.184_773_43, -0.091_050_036, 0.0,
    0.079_580_3, 0.160_930_2, 0.246_112_3, 0.337_915_24, 0.440_709_83, 0.562_617, 0.722_956_84, 1.0,
];

/// bitsandbytes' FP4 table (`get_4bit_type("fp4")` normalised by its max, index = code bits).
const FP4: [f32; 16] = [
    0.0, 0.005_208_333_3, 0.666_666_7, 1.0, 0.333_333_34, 0.5, 0.166_666_67, 0.25, -0.0, -0.005_208_333_3,
    -0.666_666_7, -1.0, -0.333_333_34, -0.5, -0.166_666_67, -0.25,
];

impl Fp4Kind {
    /// The 16 code values, indexed by code.
    pub fn code_table(self) -> [f32; 16] {
        match self {
            Self::Nf4 => NF4,
            Self::Fp4 => FP4,
        }
    }

    /// `nf4` / `fp4`, as bitsandbytes names it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nf4 => "nf4",
            Self::Fp4 => "fp4",
        }
    }
}

/// Double quantization of the per-block absmax (bitsandbytes `compress_statistics`): absmax
/// minus their mean, in blocks of `blocksize2`, coded with an 8-bit dynamic map.
#[derive(Debug, Clone)]
pub struct DoubleQuantState {
    /// One 8-bit code per absmax.
    pub codes: Vec<u8>,
    /// The 256-value code map.
    pub code: Vec<f32>,
    /// Absmax of each block of `blocksize2` centred absmax values.
    pub absmax2: Vec<f32>,
    /// Absmax values per second-level block (256 in bitsandbytes).
    pub blocksize2: usize,
    /// Mean of the absmax values, added back after decoding.
    pub offset: f32,
}

impl DoubleQuantState {
    /// The decoded absmax values: `code[codes[i]] · absmax2[i / blocksize2] + offset`.
    pub fn absmax(&self) -> Vec<f32> {
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &q)| self.code[q as usize] * self.absmax2[i / self.blocksize2] + self.offset)
            .collect()
    }
}

/// A 4-bit block-quantized weight `[d_out, d_in]` in bitsandbytes' layout.
#[derive(Clone)]
pub struct Fp4Weight {
    /// Code table.
    pub kind: Fp4Kind,
    /// The 16 values codes stand for (the file's `quant_map`).
    pub code: [f32; 16],
    /// Output features.
    pub d_out: usize,
    /// Input features.
    pub d_in: usize,
    /// Elements per absmax block of the flattened weight.
    pub blocksize: usize,
    /// `ceil(d_out·d_in / 2)` bytes; element `2k` in the high nibble, `2k+1` in the low one.
    pub packed: Vec<u8>,
    /// Per block (decoded when double-quantized).
    pub absmax: Vec<f32>,
    /// The compressed absmax, when double-quantized.
    pub double_quant: Option<DoubleQuantState>,
}

impl Fp4Weight {
    /// Checks the parts against `[d_out, d_in]`; with `double_quant`, `absmax` is decoded from it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: Fp4Kind,
        code: [f32; 16],
        d_out: usize,
        d_in: usize,
        blocksize: usize,
        packed: Vec<u8>,
        absmax: Vec<f32>,
        double_quant: Option<DoubleQuantState>,
    ) -> Result<Self> {
        let numel = d_out * d_in;
        let n_blocks = numel.div_ceil(blocksize.max(1));
        let tensor = || format!("{} weight", kind.name());
        if let Some(dq) = &double_quant {
            let fits = dq.blocksize2 > 0
                && dq.code.len() == 256
                && dq.codes.len() == n_blocks
                && dq.absmax2.len() == n_blocks.div_ceil(dq.blocksize2);
            if !fits {
                let message = format!(
                    "double quantization parts do not fit {n_blocks} blocks: {} codes, {}-entry map, {} absmax2 for blocks of {}",
                    dq.codes.len(),
                    dq.code.len(),
                    dq.absmax2.len(),
                    dq.blocksize2
                );
                return Err(LlmError::Quant { tensor: tensor(), message });
            }
        }
        let absmax = match &double_quant {
            Some(dq) => dq.absmax(),
            None => absmax,
        };
        let problem = if blocksize == 0 || !blocksize.is_multiple_of(2) {
            Some(format!("blocksize {blocksize} must be even and positive"))
        } else if packed.len() != numel.div_ceil(2) {
            Some(format!("{} packed bytes for {numel} elements (need {})", packed.len(), numel.div_ceil(2)))
        } else if absmax.len() != n_blocks {
            Some(format!("{} absmax values for {n_blocks} blocks of {blocksize}", absmax.len()))
        } else {
            None
        };
        match problem {
            Some(message) => Err(LlmError::Quant { tensor: tensor(), message }),
            None => Ok(Self { kind, code, d_out, d_in, blocksize, packed, absmax, double_quant }),
        }
    }

    /// Code of flattened element `i`.
    #[inline]
    pub fn code_index(&self, i: usize) -> u8 {
        let b = self.packed[i / 2];
        if i.is_multiple_of(2) {
            b >> 4
        } else {
            b & 0xF
        }
    }

    /// `[d_out, d_in]` exact float weight: `code[q] · absmax[block]`.
    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.d_out * self.d_in)
            .map(|i| self.code[self.code_index(i) as usize] * self.absmax[i / self.blocksize])
            .collect()
    }

    /// x: `[rows, d_in]` -> `[rows, d_out]`. With AVX-512 and blocks of whole 32-element
    /// runs, codes become weights in registers through each block's 16-value table (`lut`);
    /// otherwise each weight row is dequantized (bit-exactly as [`Self::dequantize`]) into an
    /// L1-sized buffer and dotted with every input row.
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        // Rows start on a byte and hold whole blocks in the common case (d_in a multiple of
        // the block size); anything else takes the per-element path.
        let aligned = self.d_in.is_multiple_of(self.blocksize);
        let blocks_per_row = self.d_in / self.blocksize;
        let bytes = |o: usize| &self.packed[o * self.d_in / 2..(o + 1) * self.d_in / 2];
        let absmax = |o: usize| &self.absmax[o * blocks_per_row..(o + 1) * blocks_per_row];
        #[cfg(target_arch = "x86_64")]
        if let Some((lut, order)) = super::lut::Lut::detect().zip(super::lut::Lut::fp4_order(self.d_in, self.blocksize)) {
            let xs = order.apply(x, self.d_in);
            return by_output_row(self.d_out, rows, || (), |_, o, y| lut.fp4_rows(order, &self.code, bytes(o), absmax(o), &xs, y));
        }
        by_output_row(self.d_out, rows, || vec![0f32; self.d_in], |scratch, o, y| {
            if aligned {
                fused::fp4_row(&self.code, bytes(o), absmax(o), x, scratch, y);
            } else {
                for (c, v) in scratch.iter_mut().enumerate() {
                    let i = o * self.d_in + c;
                    *v = self.code[self.code_index(i) as usize] * self.absmax[i / self.blocksize];
                }
                for (r, y) in y.iter_mut().enumerate() {
                    *y = x[r * self.d_in..(r + 1) * self.d_in].iter().zip(scratch.iter()).map(|(a, b)| a * b).sum();
                }
            }
        })
    }

    /// Codes plus statistics, in bytes (compressed statistics when double-quantized).
    pub fn storage_bytes(&self) -> usize {
        let stats = match &self.double_quant {
            Some(dq) => dq.codes.len() + 4 * (dq.absmax2.len() + dq.code.len() + 1),
            None => 4 * self.absmax.len(),
        };
        self.packed.len() + stats + 64
    }
}

mod fused {
    use crate::quant::kernels::{dot, multiversion};

    multiversion! {
        fn fp4_row(code: &[f32; 16], bytes: &[u8], absmax: &[f32], x: &[f32], scratch: &mut [f32], out: &mut [f32]) {
            let per_block = scratch.len() / absmax.len();
            for ((dst, src), &scale) in scratch.chunks_exact_mut(per_block).zip(bytes.chunks_exact(per_block / 2)).zip(absmax) {
                // The block's 16 values, then two table lookups per byte (high nibble first).
                let mut table = [0f32; 16];
                for (t, c) in table.iter_mut().zip(code) {
                    *t = c * scale;
                }
                for (pair, &b) in dst.chunks_exact_mut(2).zip(src) {
                    pair[0] = table[(b >> 4) as usize];
                    pair[1] = table[(b & 0xF) as usize];
                }
            }
            let d_in = scratch.len();
            for (r, y) in out.iter_mut().enumerate() {
                *y = dot(&x[r * d_in..(r + 1) * d_in], scratch);
            }
        }
    }
}
