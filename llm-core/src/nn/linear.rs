//! A linear layer stored the way checkpoints store it.

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor};

/// `y = x · Wᵀ + b` with `W` kept as `[d_out, d_in]` (PyTorch's layout, unlike `burn-nn`'s
/// `Linear`): weights load without a transpose copy, and on Flex a matvec against the
/// transposed view is 1.3-1.8x faster than against `[d_in, d_out]`.
#[derive(Module, Debug)]
pub struct Linear<B: Backend> {
    /// `[d_out, d_in]`
    pub weight: Param<Tensor<B, 2>>,
    /// `[d_out]`
    pub bias: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> Linear<B> {
    /// Wraps loaded tensors. weight: `[d_out, d_in]`, bias: `[d_out]`.
    pub fn new(weight: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self { weight: Param::from_tensor(weight), bias: bias.map(Param::from_tensor) }
    }

    /// x: `[..., d_in]` -> `[..., d_out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        linear_forward(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()))
    }

    /// `(d_out, d_in)`.
    pub fn dims(&self) -> (usize, usize) {
        let [d_out, d_in] = self.weight.dims();
        (d_out, d_in)
    }
}

/// `x · Wᵀ + b` for a weight stored `[d_out, d_in]`.
///
/// x: `[..., d_in]`, weight `[d_out, d_in]`, bias `[d_out]` -> `[..., d_out]`
///
/// The input is flattened to 2-D so the weight is only ever viewed transposed: reshaping a
/// transposed view (as `burn::tensor::module::linear` does to broadcast it) makes backends
/// copy the whole weight on every call.
pub fn linear_forward<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
) -> Tensor<B, D> {
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let [d_out, _] = weight.dims();
    let y = x.reshape([rows, d_in]).matmul(weight.transpose());
    let y = match bias {
        Some(b) => y + b.unsqueeze::<2>(),
        None => y,
    };
    let mut out = dims;
    out[D - 1] = d_out;
    y.reshape(out)
}
