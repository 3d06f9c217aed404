//! LoRA (Hu et al. 2021) as peft runs it: `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` with `A: [r, d_in]`,
//! `B: [d_out, r]` and `s = alpha / r` (or `alpha / √r` with rsLoRA), never materialising
//! `W + s·B·A` unless asked to merge.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor};

use super::linear::linear_forward;

/// The low-rank update of one linear layer.
#[derive(Module, Debug)]
pub struct LoraAdapter<B: Backend> {
    /// `[r, d_in]` (peft's `lora_A.weight`).
    pub lora_a: Param<Tensor<B, 2>>,
    /// `[d_out, r]` (peft's `lora_B.weight`).
    pub lora_b: Param<Tensor<B, 2>>,
    /// `alpha / r`, or `alpha / √r` with rsLoRA.
    #[module(skip)]
    pub scaling: f64,
    /// When false the layer computes its base product only (peft's `disable_adapter`).
    #[module(skip)]
    pub enabled: bool,
}

impl<B: Backend> LoraAdapter<B> {
    /// Wraps `A: [r, d_in]` and `B: [d_out, r]`.
    pub fn new(lora_a: Tensor<B, 2>, lora_b: Tensor<B, 2>, scaling: f64) -> Self {
        Self { lora_a: Param::from_tensor(lora_a), lora_b: Param::from_tensor(lora_b), scaling, enabled: true }
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.lora_a.dims()[0]
    }

    /// `s·(x·Aᵀ)·Bᵀ`. x: `[..., d_in]` -> `[..., d_out]`.
    pub fn delta<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        linear_forward(linear_forward(x, self.lora_a.val(), None), self.lora_b.val(), None) * self.scaling
    }

    /// `s·B·A`: `[d_out, d_in]`, what merging adds to the weight.
    pub fn delta_weight(&self) -> Tensor<B, 2> {
        self.lora_b.val().matmul(self.lora_a.val()) * self.scaling
    }
}
