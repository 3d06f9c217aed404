//! The token embedding: a float table, or a quantized one kept as stored (GGML blocks from a
//! GGUF file), whose rows are dequantized on lookup and which a tied LM head runs on through
//! the quantized kernels.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, module::embedding, DType, Int, Tensor, TensorData};

use crate::error::{LlmError, Result};
use crate::nn::linear::{linear_forward, per_row};
use crate::quant::{QuantLinear, QuantizedWeight};
use crate::weights::gguf::quants::GgmlType;

/// The `[vocab_size, d_model]` token table.
#[derive(Module, Debug)]
pub enum TokenEmbedding<B: Backend> {
    /// Float rows.
    Dense(Param<Tensor<B, 2>>),
    /// Quantized rows (on GPU devices materialized once at load, see [`QuantLinear`]).
    Quantized(QuantLinear<B>),
}

impl<B: Backend> TokenEmbedding<B> {
    /// A float table `[vocab_size, d_model]`.
    pub fn dense_table(table: Tensor<B, 2>) -> Self {
        Self::Dense(Param::from_tensor(table))
    }

    /// The float table `[vocab_size, d_model]`: the tensor itself, or the exact dequantization.
    pub fn dense(&self) -> Tensor<B, 2> {
        match self {
            Self::Dense(t) => t.val(),
            Self::Quantized(q) => q.dequantized(),
        }
    }

    /// `(vocab_size, d_model)`, without materializing a lazily built table.
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Self::Dense(t) => {
                let [v, d] = t.lazy_shape().dims();
                (v, d)
            }
            Self::Quantized(q) => q.dims(),
        }
    }

    /// The float dtype of the rows it returns.
    pub fn dtype(&self) -> DType {
        match self {
            Self::Dense(t) => t.val().dtype(),
            Self::Quantized(q) => q.dtype,
        }
    }

    /// The device holding it (a lazily built table is not materialized).
    pub fn device(&self) -> B::Device {
        match self {
            Self::Dense(t) => t.lazy_device(),
            Self::Quantized(q) => q.device.clone(),
        }
    }

    /// Whether the table has been built (a lazily initialized float table may not be yet).
    pub fn is_initialized(&self) -> bool {
        match self {
            Self::Dense(t) => t.is_initialized(),
            Self::Quantized(_) => true,
        }
    }

    /// ids: `[batch, seq]` -> rows `[batch, seq, d_model]`. A quantized table dequantizes only
    /// the rows asked for, and checks every id against the vocabulary (a float table leaves
    /// that to the backend's gather).
    pub fn lookup(&self, ids: Tensor<B, 2, Int>) -> Result<Tensor<B, 3>> {
        let q = match self {
            Self::Dense(t) => return Ok(embedding(t.val(), ids)),
            Self::Quantized(q) if q.dense.is_some() => return Ok(embedding(q.dequantized(), ids)),
            Self::Quantized(q) => q,
        };
        let [batch, seq] = ids.dims();
        let (vocab, d_model) = q.dims();
        let host = ids.into_data().convert::<i64>().into_vec::<i64>().map_err(|e| LlmError::Shape {
            what: format!("input_ids ({e:?})"),
            expected: "integer ids".into(),
            got: vec![batch, seq],
        })?;
        let mut rows = Vec::with_capacity(host.len());
        for &id in &host {
            match usize::try_from(id).ok().filter(|&i| i < vocab) {
                Some(i) => rows.push(i),
                None => {
                    return Err(LlmError::Shape {
                        what: format!("input_ids (id {id})"),
                        expected: format!("ids in 0..{vocab} (vocab_size)"),
                        got: vec![batch, seq],
                    })
                }
            }
        }
        let values = q.weight.dequantize_rows(&rows);
        Ok(Tensor::from_data(TensorData::new(values, [batch, seq, d_model]), (&q.device, q.dtype)))
    }

    /// The tied LM head: x `[..., d_model]` -> `[..., vocab_size]` (`x · Eᵀ`). A Q8_0 table
    /// on the fused host path keeps `x` in f32 ([`crate::quant::GgmlWeight::matmul_f32_input`]); other
    /// quantized tables run as any quantized layer.
    pub fn head<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let q = match self {
            Self::Dense(t) => return linear_forward(x, t.val(), None),
            Self::Quantized(q) => q,
        };
        let dims = x.dims();
        let rows: usize = dims[..D - 1].iter().product();
        let QuantizedWeight::Ggml(g) = &*q.weight else { return q.forward(x, None) };
        if g.ty != GgmlType::Q8_0 || !q.fused_for(rows) {
            return q.forward(x, None);
        }
        let (device, dtype) = (x.device(), x.dtype());
        per_row(x, g.d_out, None, |x2| {
            let host = x2.into_data().convert::<f32>().into_vec::<f32>().expect("converted to f32 above");
            let y = g.matmul_f32_input(&host, rows).expect("a Q8_0 weight");
            Tensor::from_data(TensorData::new(y, [rows, g.d_out]), (&device, dtype))
        })
    }
}
