//! LoRA (Hu et al. 2021) as peft runs it: `y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ` with `A: [r, d_in]`,
//! `B: [d_out, r]` and `s = alpha / r` (or `alpha / √r` with rsLoRA), never materialising
//! `W + s·B·A` unless asked to merge.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, DType, Shape, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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
    /// Dropout probability on the adapter's input, applied only while training (on an
    /// autodiff backend).
    #[module(skip)]
    pub dropout: f64,
    /// Seeds this adapter's dropout mask; the trainer sets a fresh one per micro-batch, so the
    /// masks are a function of `(seed, step)` and a resumed run draws the same ones.
    #[module(skip)]
    pub dropout_seed: u64,
    /// Apply dropout off autodiff too: the graph-free forward pass of gradient checkpointing
    /// must draw the masks its recomputation under autodiff draws.
    #[module(skip)]
    pub force_dropout: bool,
}

impl<B: Backend> LoraAdapter<B> {
    /// Wraps `A: [r, d_in]` and `B: [d_out, r]`.
    pub fn new(lora_a: Tensor<B, 2>, lora_b: Tensor<B, 2>, scaling: f64) -> Self {
        Self { lora_a: Param::from_tensor(lora_a), lora_b: Param::from_tensor(lora_b), scaling, enabled: true, dropout: 0.0, dropout_seed: 0, force_dropout: false }
    }

    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.lora_a.dims()[0]
    }

    /// `s·(dropout(x)·Aᵀ)·Bᵀ`. x: `[..., d_in]` -> `[..., d_out]`.
    pub fn delta<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let device = x.device();
        let x = if self.dropout > 0.0 && (self.force_dropout || B::ad_enabled(&device)) {
            // Inverted dropout, as torch: keep with probability 1 - p, scale kept values by 1/(1 - p).
            let mask = self.dropout_mask(x.shape(), x.dtype(), &device);
            x * mask
        } else {
            x
        };
        linear_forward(linear_forward(x, self.lora_a.val(), None), self.lora_b.val(), None) * self.scaling
    }

    /// `0` (dropped, probability `p`) or `1/(1 - p)` per element, from `dropout_seed` (host RNG:
    /// no shared backend state, so concurrent models do not disturb each other's masks).
    fn dropout_mask<const D: usize>(&self, shape: Shape, dtype: DType, device: &B::Device) -> Tensor<B, D> {
        let mut rng = StdRng::seed_from_u64(self.dropout_seed);
        let keep = (1.0 / (1.0 - self.dropout)) as f32;
        let n = shape.num_elements();
        let mask: Vec<f32> = (0..n).map(|_| if rng.random::<f64>() < self.dropout { 0.0 } else { keep }).collect();
        Tensor::from_data(TensorData::new(mask, shape), (device, dtype))
    }

    /// `s·B·A`: `[d_out, d_in]`, what merging adds to the weight.
    pub fn delta_weight(&self) -> Tensor<B, 2> {
        self.lora_b.val().matmul(self.lora_a.val()) * self.scaling
    }
}
