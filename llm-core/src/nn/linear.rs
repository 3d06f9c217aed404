//! A linear layer stored the way checkpoints store it.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::lora::LoraAdapter;
use crate::quant::{GgmlWeight, QuantExecution, QuantLinear, QuantizedWeight};

/// The weight of a [`Linear`]: dense, or held in a quantized format.
#[derive(Module, Debug)]
pub enum LinearWeight<B: Backend> {
    /// `[d_out, d_in]` float.
    Dense(Param<Tensor<B, 2>>),
    /// Codes and statistics (see [`crate::quant`]).
    Quantized(QuantLinear<B>),
}

/// `y = x · Wᵀ + b` with `W` kept as `[d_out, d_in]` (PyTorch's layout, unlike `burn-nn`'s
/// `Linear`): weights load without a transpose copy, and on Flex a matvec against the
/// transposed view is 1.3-1.8x faster than against `[d_in, d_out]`.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_out, d_in]`, dense or quantized.
    pub weight: LinearWeight<B>,
    /// `[d_out]`
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// A LoRA update applied on top of the weight, unmerged.
    pub lora: Option<LoraAdapter<B>>,
}

impl<B: Backend> Linear<B> {
    /// Wraps loaded tensors. weight: `[d_out, d_in]`, bias: `[d_out]`.
    pub fn new(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self { weight: LinearWeight::Dense(Param::from_tensor(weight)), bias: bias.map(Param::from_tensor), lora: None }
    }

    /// A layer whose weight stays quantized. bias: `[d_out]`.
    pub fn quantized(
        weight: QuantizedWeight,
        bias: Option<Tensor<B, 1>>,
        execution: QuantExecution,
        device: &B::Device,
    ) -> Self {
        let dtype = bias.as_ref().map_or(burn::tensor::DType::F32, |b| b.dtype());
        Self::quantized_as(weight, bias, execution, dtype, device)
    }

    /// As [`Self::quantized`], materializing (if at all) in `dtype`.
    pub fn quantized_as(
        weight: QuantizedWeight,
        bias: Option<Tensor<B, 1>>,
        execution: QuantExecution,
        dtype: burn::tensor::DType,
        device: &B::Device,
    ) -> Self {
        let weight = LinearWeight::Quantized(QuantLinear::new(weight, execution, dtype, device));
        Self { weight, bias: bias.map(Param::from_tensor), lora: None }
    }

    /// The dense weight `[d_out, d_in]`: the tensor itself, or the exact dequantization.
    pub fn dense_weight(&self) -> Tensor<B, 2> {
        match &self.weight {
            LinearWeight::Dense(w) => w.val(),
            LinearWeight::Quantized(q) => q.dequantized(),
        }
    }

    /// The quantized weight, if the layer holds one.
    pub fn quantized_weight(&self) -> Option<&QuantizedWeight> {
        match &self.weight {
            LinearWeight::Dense(_) => None,
            LinearWeight::Quantized(q) => Some(&q.weight),
        }
    }

    /// x: `[..., d_in]` -> `[..., d_out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let bias = self.bias.as_ref().map(|b| b.val());
        let delta = self.lora.as_ref().filter(|l| l.enabled).map(|l| l.delta(x.clone()));
        let y = match &self.weight {
            LinearWeight::Dense(w) => linear_forward(x, w.val(), bias),
            LinearWeight::Quantized(q) => q.forward(x, bias),
        };
        match delta {
            Some(d) => y + d,
            None => y,
        }
    }

    /// Several layers on the same input: `[layer.forward(x) for layer in layers]`. When every
    /// layer holds GGML blocks, runs the fused host kernel for this many rows and has no active
    /// LoRA (a CPU decode step's Q/K/V or gate/up), the input is quantized once and the layers
    /// share one parallel region ([`crate::quant::ggml::matmul_group`]); the numbers are those
    /// of the layers run one by one.
    ///
    /// x: `[..., d_in]` -> one `[..., d_out_i]` per layer.
    pub fn forward_group<const D: usize>(layers: &[&Self], x: Tensor<B, D>) -> Vec<Tensor<B, D>> {
        let dims = x.dims();
        let rows: usize = dims[..D - 1].iter().product();
        let d_in = dims[D - 1];
        let blocks: Option<Vec<&GgmlWeight>> = layers.iter().map(|l| l.fused_blocks(rows)).collect();
        let Some(weights) = blocks.filter(|w| rows > 0 && w.len() > 1 && w.iter().all(|w| w.d_in == d_in)) else {
            return layers.iter().map(|l| l.forward(x.clone())).collect();
        };
        let (device, dtype) = (x.device(), x.dtype());
        let host = x.reshape([rows, d_in]).into_data().convert::<f32>().into_vec::<f32>().expect("converted to f32 above");
        let outs = crate::quant::ggml::matmul_group(&weights, &host, rows);
        layers
            .iter()
            .zip(outs)
            .map(|(layer, y)| {
                let d_out = y.len() / rows;
                let y = Tensor::<B, 2>::from_data(TensorData::new(y, [rows, d_out]), (&device, dtype));
                let y = match &layer.bias {
                    Some(b) => y + b.val().unsqueeze::<2>(),
                    None => y,
                };
                let mut out = dims;
                out[D - 1] = d_out;
                y.reshape(out)
            })
            .collect()
    }

    /// The GGML blocks of this layer when its forward on `rows` rows is the fused host kernel
    /// and no LoRA adds to it.
    fn fused_blocks(&self, rows: usize) -> Option<&GgmlWeight> {
        if self.lora.as_ref().is_some_and(|l| l.enabled) {
            return None;
        }
        match &self.weight {
            LinearWeight::Quantized(q) if q.fused_for(rows) => match &*q.weight {
                QuantizedWeight::Ggml(g) => Some(g),
                _ => None,
            },
            _ => None,
        }
    }

    /// Folds the attached LoRA adapter into the weight: `W' = W + s·B·A` (peft's
    /// `get_delta_weight` + `safe_merge`), the delta computed once, the result committed only
    /// when every element is finite. A quantized weight is dequantized first, so the merged layer
    /// is dense; the bias is kept. Returns whether there was an adapter to merge; on error the
    /// layer is unchanged.
    pub fn merge_lora(&mut self) -> crate::Result<bool> {
        let Some(lora) = &self.lora else { return Ok(false) };
        // Detached: under autodiff the sum is not a leaf, and a parameter must be one (merging a
        // trainer's model used to panic in Burn's `require_grad`).
        let merged = (self.dense_weight() + lora.delta_weight()).detach();
        if !crate::adapter::all_finite(merged.clone()) {
            return Err(crate::LlmError::config("LoRA merge", "the merged weight holds NaN or Inf; the layer was left unmerged"));
        }
        let bias = self.bias.take().map(|b| b.val());
        *self = Self::new(merged, bias);
        Ok(true)
    }

    /// `(d_out, d_in)`.
    pub fn dims(&self) -> (usize, usize) {
        match &self.weight {
            LinearWeight::Dense(w) => {
                let [d_out, d_in] = w.dims();
                (d_out, d_in)
            }
            LinearWeight::Quantized(q) => q.dims(),
        }
    }
}

/// `x · Wᵀ + b` for a weight stored `[d_out, d_in]`.
///
/// x: `[..., d_in]`, weight `[d_out, d_in]`, bias `[d_out]` -> `[..., d_out]`
///
/// The input is flattened to 2-D so the weight is only ever viewed transposed: reshaping a
/// transposed view (as `burn::tensor::module::linear` does to broadcast it) makes backends
/// copy the whole weight on every call. A decode-sized product (up to 8 f32 rows) against a
/// plain f32 Flex weight runs on the host, reading the weight in place (`host_dense`).
pub fn linear_forward<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    let [d_out, _] = weight.dims();
    per_row(x, d_out, bias, |x2| super::host_dense::product(&x2, &weight).unwrap_or_else(|| x2.matmul(weight.transpose())))
}

/// Flattens x: `[..., d_in]` to `[rows, d_in]`, applies `product` (-> `[rows, d_out]`), adds
/// the bias `[d_out]` and restores the leading dims: `[..., d_out]`. Every linear product
/// (dense, quantized) goes through here.
pub(crate) fn per_row<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    d_out: usize,
    bias: Option<Tensor<B, 1>>,
    product: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>,
) -> Tensor<B, D> {
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let y = product(x.reshape([rows, d_in]));
    let y = match bias {
        Some(b) => y + b.unsqueeze::<2>(),
        None => y,
    };
    let mut out = dims;
    out[D - 1] = d_out;
    y.reshape(out)
}
