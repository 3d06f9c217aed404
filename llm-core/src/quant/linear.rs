//! The quantized half of [`crate::nn::Linear`]: where and how `x · Wᵀ` runs.

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{backend::Backend, DType, Tensor, TensorData};

use super::QuantizedWeight;
use crate::nn::linear::{linear_forward, per_row};

/// Inputs with at most this many rows take the fused kernel under [`QuantExecution::Auto`]:
/// decoding (one row per sequence) is bound by reading the weight, which the codes make
/// 4-8x smaller; long prompts are bound by arithmetic, where the backend's dense matmul wins.
pub const FUSED_MAX_ROWS: usize = 8;

/// The same bound for GGML blocks, whose integer kernel keeps each weight row in L1 while it
/// dots every input row. Measured on SmolLM2 Q4_1 (2 cores): the integer path runs a
/// 15-57-token prefill 1.2-2.2x faster than dequantize-then-matmul (which pays ~100 ms of
/// dequantization per forward) and loses from ~100 tokens; verifying 8-16 speculative drafts
/// goes from 39 to 111 tokens/s with it. 32, not the crossover near 64: the README's chat
/// prompt (37 tokens) on 8-bit activations flips its greedy answer from "Paris" to llama.cpp's
/// own "L'Etoile", as the Q8_0 head did (see `GgmlWeight::matmul_f32_input`). From
/// [`super::ggml::GEMM_MIN_ROWS`] rows on, Q4_0 and Q4_1 take the prompt kernels where the CPU
/// has AVX-512 VNNI ([`super::GgmlWeight::fused_for`]).
pub const GGML_FUSED_MAX_ROWS: usize = 32;

/// How a quantized linear layer computes its product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantExecution {
    /// On CPU backends: the fused kernel where it pays ([`super::QuantizedWeight::fused_for`]:
    /// up to [`FUSED_MAX_ROWS`] rows, for GGML blocks up to [`GGML_FUSED_MAX_ROWS`] and prompts
    /// through the prompt kernels), else dequantize per call. On GPU backends: [`Self::Materialize`]. Under autodiff: [`Self::Dequantize`] (the
    /// fused kernel runs on the host and would cut the graph).
    #[default]
    Auto,
    /// Dequantize on every call, then the backend's dense matmul: the reference path.
    Dequantize,
    /// The fused dequantize-matmul host kernel for every call (CPU backends).
    Fused,
    /// Dequantize once at load into a dense tensor on the device: the same numbers without
    /// the memory saving.
    Materialize,
}

/// A linear weight held quantized.
#[derive(Module, Debug)]
pub struct QuantLinear<B: Backend> {
    /// The codes and statistics, on the host.
    #[module(skip)]
    pub weight: Arc<QuantizedWeight>,
    /// The execution chosen at construction.
    #[module(skip)]
    pub execution: QuantExecution,
    /// `[d_out, d_in]` dequantized copy, only under [`QuantExecution::Materialize`].
    pub dense: Option<Tensor<B, 2>>,
    /// Where outputs are placed.
    #[module(skip)]
    pub device: B::Device,
    /// The float dtype of the model around it.
    #[module(skip)]
    pub dtype: DType,
}

/// Whether the backend computes on the host, where the fused kernel pays off.
pub(crate) fn host_backend<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device).to_lowercase();
    name.contains("flex") || name.contains("ndarray")
}

impl<B: Backend> QuantLinear<B> {
    /// Wraps `weight`; [`QuantExecution::Auto`] is resolved for `device` here.
    pub fn new(weight: QuantizedWeight, execution: QuantExecution, dtype: DType, device: &B::Device) -> Self {
        let execution = match execution {
            QuantExecution::Auto if B::ad_enabled(device) && !host_backend::<B>(device) => QuantExecution::Materialize,
            QuantExecution::Auto if B::ad_enabled(device) => QuantExecution::Dequantize,
            QuantExecution::Auto if !host_backend::<B>(device) => QuantExecution::Materialize,
            other => other,
        };
        let dense = (execution == QuantExecution::Materialize).then(|| dequantized(&weight, dtype, device));
        Self { weight: Arc::new(weight), execution, dense, device: device.clone(), dtype }
    }

    /// `(d_out, d_in)`.
    pub fn dims(&self) -> (usize, usize) {
        self.weight.dims()
    }

    /// `[d_out, d_in]` exact dequantized weight on the layer's device.
    pub fn dequantized(&self) -> Tensor<B, 2> {
        match &self.dense {
            Some(w) => w.clone(),
            None => dequantized(&self.weight, self.dtype, &self.device),
        }
    }

    /// Whether [`Self::forward`] on `rows` input rows runs the fused host kernel.
    pub fn fused_for(&self, rows: usize) -> bool {
        self.dense.is_none()
            && match self.execution {
                QuantExecution::Fused => true,
                QuantExecution::Auto => self.weight.fused_for(rows),
                _ => false,
            }
    }

    /// x: `[..., d_in]` -> `[..., d_out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>, bias: Option<Tensor<B, 1>>) -> Tensor<B, D> {
        if let Some(w) = &self.dense {
            return linear_forward(x, w.clone(), bias);
        }
        let dims = x.dims();
        let rows: usize = dims[..D - 1].iter().product();
        let device = x.device();
        if !self.fused_for(rows) {
            if B::ad_enabled(&device) {
                // Under autodiff the weight is dequantized again in the backward pass instead
                // of being kept in the graph (QLoRA's memory saving).
                let (d_out, _) = self.dims();
                let dtype = x.dtype();
                return per_row(x, d_out, bias, |x2| match super::frozen::try_frozen_matmul(x2, &self.weight, dtype) {
                    Ok(y) => y,
                    Err(x2) => x2.matmul(dequantized(&self.weight, dtype, &device).transpose()),
                });
            }
            let w = dequantized(&self.weight, x.dtype(), &device);
            return linear_forward(x, w, bias);
        }
        let (d_out, _) = self.dims();
        let dtype = x.dtype();
        per_row(x, d_out, bias, |x2| {
            let host = x2.into_data().convert::<f32>().into_vec::<f32>().expect("converted to f32 above");
            let y = self.weight.matmul(&host, rows);
            Tensor::from_data(TensorData::new(y, [rows, d_out]), (&device, dtype))
        })
    }
}

/// `[d_out, d_in]` on `device`.
pub(super) fn dequantized<B: Backend>(weight: &QuantizedWeight, dtype: DType, device: &B::Device) -> Tensor<B, 2> {
    let (d_out, d_in) = weight.dims();
    Tensor::from_data(TensorData::new(weight.dequantize(), [d_out, d_in]), (device, dtype))
}
