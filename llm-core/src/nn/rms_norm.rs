//! Root-mean-square layer norm (Llama's `LlamaRMSNorm`).

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, DType, Tensor};

/// `x / sqrt(mean(x²) + eps) * weight`, the statistics computed in f32 as transformers does.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    /// `[d_model]`
    pub weight: Param<Tensor<B, 1>>,
    /// Added to the mean square before the square root.
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    /// Wraps a loaded weight `[d_model]`.
    pub fn new(weight: Tensor<B, 1>, eps: f64) -> Self {
        Self { weight: Param::from_tensor(weight), eps }
    }

    /// x: `[..., d_model]` -> same shape
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let dtype = x.dtype();
        let x = x.cast(DType::F32);
        let rms = (x.clone().square().mean_dim(D - 1) + self.eps).sqrt();
        // transformers normalises in f32, casts back, then scales by the weight.
        (x / rms).cast(dtype) * self.weight.val().unsqueeze()
    }
}
