//! GGUF files llama.cpp runs, written from any model llm-core loads: the container (through
//! `llm_core::weights::gguf::write_gguf`, beside its reader), ggml's quantizers for every
//! legacy and K-quant type ([`legacy`], [`kquants`]), llama-quantize's file types and
//! per-tensor rules ([`mix`]), the tokenizer as metadata ([`vocab`]), and the export itself
//! ([`export`]).
//!
//! The blocks are byte for byte what llama.cpp's reference quantizers write for the same f32
//! rows (tested against llama.cpp's own files in `fixtures/m_gguf_write`).

pub mod export;
pub mod imatrix;
pub mod kquants;
pub mod legacy;
pub mod mix;
pub mod vocab;
pub mod weighted;

use llm_core::weights::gguf::quants::GgmlType;

pub use export::{write_gguf_from, write_model_gguf, GgufOptions, GgufReport, TensorReport};
pub use imatrix::{Imatrix, ImatrixEntry};
pub use mix::{FileType, TypeOverride};

use crate::error::{QuantError, Result};

/// `general.quantization_version` of the block layouts written here (ggml's `GGML_QNT_VERSION`).
pub const GGUF_QUANTIZATION_VERSION: u32 = 2;

/// Quantizes one row (whole blocks) and appends its bytes.
pub type RowQuantizer = fn(&[f32], &mut Vec<u8>);

/// The row quantizer of `ty`, or `None` for a type this crate does not write.
pub fn row_quantizer(ty: GgmlType) -> Option<RowQuantizer> {
    Some(match ty {
        GgmlType::F32 => |x: &[f32], out: &mut Vec<u8>| out.extend(x.iter().flat_map(|v| v.to_le_bytes())),
        GgmlType::F16 => legacy::f16_row,
        GgmlType::BF16 => legacy::bf16_row,
        GgmlType::Q8_0 => legacy::q8_0_row,
        GgmlType::Q4_0 => legacy::q4_0_row,
        GgmlType::Q4_1 => legacy::q4_1_row,
        GgmlType::Q5_0 => legacy::q5_0_row,
        GgmlType::Q5_1 => legacy::q5_1_row,
        GgmlType::Q2_K => kquants::q2_k_row,
        GgmlType::Q3_K => kquants::q3_k_row,
        GgmlType::Q4_K => kquants::q4_k_row,
        GgmlType::Q5_K => kquants::q5_k_row,
        GgmlType::Q6_K => kquants::q6_k_row,
        _ => return None,
    })
}

/// Quantizes `values` (rows of `cols`, row-major) to `ty`, rows in parallel. Errors name
/// `tensor` when the type is not written here or the rows do not split into its blocks.
///
/// values: `[rows, cols]` -> the blocks of each row, in order.
pub fn quantize_rows(tensor: &str, ty: GgmlType, values: &[f32], cols: usize) -> Result<Vec<u8>> {
    quantize_rows_weighted(tensor, ty, values, cols, None)
}

/// [`quantize_rows`] under an importance matrix `importance` (`[cols]`, one weight per input
/// column, `in_sum2 / counts`), as llama-quantize quantizes with `--imatrix`; types the matrix
/// does not change (Q8_0, floats) ignore it.
pub fn quantize_rows_weighted(tensor: &str, ty: GgmlType, values: &[f32], cols: usize, importance: Option<&[f32]>) -> Result<Vec<u8>> {
    let quantize = row_quantizer(ty)
        .ok_or_else(|| QuantError::config("type", format!("tensor `{tensor}`: GGML type {} cannot be written", ty.name())))?;
    let (block, block_bytes) = ty.block_layout().expect("every written type has a block layout");
    if cols == 0 || !cols.is_multiple_of(block) || !values.len().is_multiple_of(cols) {
        return Err(QuantError::Shape {
            what: format!("tensor `{tensor}` as {}", ty.name()),
            expected: format!("rows of a multiple of {block} values"),
            got: format!("{} values in rows of {cols}", values.len()),
        });
    }
    let row_bytes = cols / block * block_bytes;
    match importance {
        Some(qw) if qw.len() != cols => Err(QuantError::Shape {
            what: format!("importance matrix for `{tensor}`"),
            expected: format!("{cols} columns"),
            got: format!("{}", qw.len()),
        }),
        Some(qw) if weighted::uses_importance(ty) => {
            Ok(export::par_rows(values, cols, row_bytes, |row, out| {
                weighted::quantize_row_weighted(ty, row, qw, out);
            }))
        }
        _ => Ok(export::par_rows(values, cols, row_bytes, quantize)),
    }
}
