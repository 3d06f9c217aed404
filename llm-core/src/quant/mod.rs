//! Running quantized weights: the formats `llm-quant` (and GPTQModel, AutoGPTQ, bitsandbytes)
//! produce, dequantized exactly, plus fused dequantize-matmul kernels for decoding on the CPU.
//!
//! Every format answers three questions the same way: its shape, its exact float value
//! ([`QuantizedWeight::dequantize`], the reference path) and `x · Wᵀ` computed straight from
//! the codes ([`QuantizedWeight::matmul`], the fast path, held to the reference by tests).
//!
//! | format | what it holds | made by |
//! |---|---|---|
//! | [`AffineWeight`] | 1- to 8-bit codes in groups of input columns, a scale and a zero point per (output row, group), optional act-order `g_idx` | GPTQ, RTN, AWQ, HQQ, int8 absmax / zero-point |
//! | [`Fp4Weight`] | NF4/FP4 codes in blocks of the flattened weight, an absmax per block (optionally double-quantized) | bitsandbytes `quantize_4bit`, QLoRA |
//! | [`OutlierInt8Weight`] | int8 rows with their absmax; activations split into outlier and int8 parts at run time | LLM.int8() |
//! | [`GgmlWeight`] | GGML blocks as a GGUF file stores them (Q4_0..Q8_0, Q2_K..Q6_K); integer dot products against 8-bit activations | llama.cpp |

mod affine;
mod fp4;
pub mod frozen;
pub mod ggml;
pub(crate) mod kernels;
mod linear;
#[cfg(target_arch = "x86_64")]
mod lut;
mod outlier;

pub use affine::AffineWeight;
pub use fp4::{DoubleQuantState, Fp4Kind, Fp4Weight};
pub use ggml::GgmlWeight;
pub use linear::{QuantExecution, QuantLinear, FUSED_MAX_ROWS, GGML_FUSED_MAX_ROWS};
pub(crate) use linear::host_backend;
pub use outlier::{is_outlier, outlier_columns, OutlierInt8Weight};
pub use crate::weights::quantized::{awq_pack_word, awq_unpack_word, hqq_pack, hqq_unpack, pack_stream, unpack_stream, v1_zero_offset_word, AWQ_ORDER};

/// A weight `[d_out, d_in]` held in one of the quantized formats.
#[derive(Clone)]
pub enum QuantizedWeight {
    /// Integer codes with per-group scale and zero point (GPTQ, RTN, int8 absmax/zero-point).
    Affine(AffineWeight),
    /// NF4 / FP4 blocks (bitsandbytes).
    Fp4(Fp4Weight),
    /// LLM.int8(): vector-wise int8 with outlier activation columns kept in float.
    OutlierInt8(OutlierInt8Weight),
    /// GGML blocks as stored in a GGUF file.
    Ggml(GgmlWeight),
}

impl QuantizedWeight {
    /// Whether the fused kernels take a product of `rows` input rows under
    /// [`QuantExecution::Auto`] (where they beat dequantize-then-matmul): up to
    /// [`FUSED_MAX_ROWS`] rows, for GGML blocks see [`GgmlWeight::fused_for`].
    pub fn fused_for(&self, rows: usize) -> bool {
        match self {
            Self::Ggml(w) => w.fused_for(rows),
            Self::OutlierInt8(_) => true,
            _ => rows <= linear::FUSED_MAX_ROWS,
        }
    }

    /// `(d_out, d_in)`.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Self::Affine(w) => (w.d_out, w.d_in),
            Self::Fp4(w) => (w.d_out, w.d_in),
            Self::OutlierInt8(w) => (w.d_out, w.d_in),
            Self::Ggml(w) => (w.d_out, w.d_in),
        }
    }

    /// The exact float weight: `[d_out, d_in]` row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        match self {
            Self::Affine(w) => w.dequantize(),
            Self::Fp4(w) => w.dequantize(),
            Self::OutlierInt8(w) => w.dequantize(),
            Self::Ggml(w) => w.dequantize(),
        }
    }

    /// `x · Wᵀ` from the codes. x: `[rows, d_in]` row-major -> `[rows, d_out]`.
    ///
    /// For [`Self::OutlierInt8`] this is LLM.int8()'s mixed-precision product (activations
    /// quantized per row), which by design differs from `x · dequantize()ᵀ`.
    ///
    /// # Panics
    /// If `x.len() != rows * d_in` (a caller's bug; [`QuantLinear`] checks shapes).
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (d_out, d_in) = self.dims();
        assert_eq!(x.len(), rows * d_in, "x must be [rows, d_in]");
        if rows == 0 || d_out == 0 {
            return vec![];
        }
        match self {
            Self::Affine(w) => w.matmul(x, rows),
            Self::Fp4(w) => w.matmul(x, rows),
            Self::OutlierInt8(w) => w.matmul(x, rows),
            Self::Ggml(w) => w.matmul(x, rows),
        }
    }

    /// The exact float values of rows `rows` (each `< d_out`): `[rows.len(), d_in]` row-major.
    /// GGML blocks dequantize only those rows (an embedding lookup); the other formats
    /// dequantize the whole weight first.
    pub fn dequantize_rows(&self, rows: &[usize]) -> Vec<f32> {
        if let Self::Ggml(w) = self {
            return rows.iter().flat_map(|&r| w.dequantize_row(r)).collect();
        }
        let (_, d_in) = self.dims();
        let all = self.dequantize();
        rows.iter().flat_map(|&r| all[r * d_in..(r + 1) * d_in].iter().copied()).collect()
    }

    /// Bytes the format occupies in memory (codes and statistics).
    pub fn storage_bytes(&self) -> usize {
        match self {
            Self::Affine(w) => w.storage_bytes(),
            Self::Fp4(w) => w.storage_bytes(),
            Self::OutlierInt8(w) => w.storage_bytes(),
            Self::Ggml(w) => w.storage_bytes(),
        }
    }

    /// A short name: `gptq-4bit-g128`, `nf4`, `llm.int8`...
    pub fn describe(&self) -> String {
        match self {
            Self::Affine(w) => w.describe(),
            Self::Fp4(w) => format!("{:?}", w.kind).to_lowercase(),
            Self::OutlierInt8(_) => "llm.int8".into(),
            Self::Ggml(w) => format!("ggml-{}", w.ty.name().to_lowercase()),
        }
    }
}

impl std::fmt::Debug for QuantizedWeight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (d_out, d_in) = self.dims();
        write!(f, "QuantizedWeight({}, [{d_out}, {d_in}], {} bytes)", self.describe(), self.storage_bytes())
    }
}
