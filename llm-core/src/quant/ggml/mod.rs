//! GGML block formats run as stored: a GGUF tensor's blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and
//! the K-quants Q2_K..Q6_K) are kept byte for byte, and `x · Wᵀ` is computed from them by
//! quantizing each input row once to 8-bit blocks ([`act`]) and taking integer dot products
//! per block ([`dot`]), as llama.cpp's CPU backend does. Output rows are split across threads.

pub mod act;
pub mod dot;

use rayon::prelude::*;

use super::kernels::multiversion;

pub use act::ActRow;
pub use dot::block_elems;

use crate::error::{LlmError, Result};
use crate::weights::gguf::quants::{self, GgmlType};

/// A weight `[d_out, d_in]` held in a GGML block format, rows of whole blocks.
#[derive(Clone)]
pub struct GgmlWeight {
    /// Output features (rows).
    pub d_out: usize,
    /// Input features (a multiple of the block size).
    pub d_in: usize,
    /// The block type.
    pub ty: GgmlType,
    data: Vec<u8>,
    row_bytes: usize,
}

/// Output rows one thread takes at a time.
const ROWS_PER_TASK: usize = 16;

impl GgmlWeight {
    /// Wraps the blocks of a `[d_out, d_in]` tensor of type `ty` (`data`: `d_out` rows of
    /// `d_in / block` blocks). `tensor` names it in errors.
    pub fn new(tensor: &str, ty: GgmlType, d_out: usize, d_in: usize, data: Vec<u8>) -> Result<Self> {
        let bad = |message: String| Err(LlmError::Quant { tensor: tensor.into(), message });
        let (Some(block), Some((_, block_bytes))) = (block_elems(ty), ty.block_layout()) else {
            return bad(format!("{} is not a quantized block type we run", ty.name()));
        };
        if !d_in.is_multiple_of(block) {
            return bad(format!("row length {d_in} is not a multiple of {}'s block of {block}", ty.name()));
        }
        let row_bytes = d_in / block * block_bytes;
        if d_out.checked_mul(row_bytes) != Some(data.len()) {
            return bad(format!("{} bytes do not hold [{d_out}, {d_in}] of {}", data.len(), ty.name()));
        }
        Ok(Self { d_out, d_in, ty, data, row_bytes })
    }

    /// The same weight with its rows reordered: row `r` of the result is row `source(r)`.
    pub fn with_rows(self, source: impl Fn(usize) -> usize) -> Self {
        let mut data = vec![0u8; self.data.len()];
        for (r, dst) in data.chunks_exact_mut(self.row_bytes).enumerate() {
            let s = source(r);
            dst.copy_from_slice(&self.data[s * self.row_bytes..(s + 1) * self.row_bytes]);
        }
        Self { data, ..self }
    }

    /// The stored blocks of row `r`.
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// The exact float weight, `[d_out, d_in]` row-major (gguf-py's dequantization).
    pub fn dequantize(&self) -> Vec<f32> {
        quants::dequantize(self.ty, &self.data)
    }

    /// Bytes of the blocks.
    pub fn storage_bytes(&self) -> usize {
        self.data.len()
    }

    /// `x · Wᵀ` through the integer dot products. x: `[rows, d_in]` -> `[rows, d_out]`.
    ///
    /// # Panics
    /// If `x.len() != rows * d_in` (a caller's bug; [`crate::quant::QuantLinear`] checks shapes).
    pub fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.d_in, "x must be [rows, d_in]");
        if rows == 0 || self.d_out == 0 {
            return vec![0f32; rows * self.d_out];
        }
        let acts: Vec<ActRow> = x
            .chunks_exact(self.d_in)
            .map(|row| {
                let mut a = ActRow::default();
                a.quantize(row);
                a
            })
            .collect();
        let out = self.matmul_quantized(&acts);
        if rows == 1 {
            return out;
        }
        let mut t = vec![0f32; out.len()];
        for (o, col) in out.chunks_exact(rows).enumerate() {
            for (r, &v) in col.iter().enumerate() {
                t[r * self.d_out + o] = v;
            }
        }
        t
    }

    /// `[d_out, rows]`: every output row against every quantized input row.
    fn matmul_quantized(&self, acts: &[ActRow]) -> Vec<f32> {
        let rows = acts.len();
        let mut out = vec![0f32; self.d_out * rows];
        out.par_chunks_mut(ROWS_PER_TASK * rows).enumerate().for_each(|(task, chunk)| {
            let first = task * ROWS_PER_TASK;
            rows_dot(self.ty, &self.data, self.row_bytes, first, acts, chunk);
        });
        out
    }
}

multiversion! {
    fn rows_dot(ty: GgmlType, data: &[u8], row_bytes: usize, first: usize, acts: &[ActRow], out: &mut [f32]) {
        let rows = acts.len();
        for (i, col) in out.chunks_exact_mut(rows).enumerate() {
            let w = &data[(first + i) * row_bytes..(first + i + 1) * row_bytes];
            for (y, a) in col.iter_mut().zip(acts) {
                *y = dot::row_dot(ty, w, a);
            }
        }
    }
}
