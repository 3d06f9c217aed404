//! The SwiGLU feed-forward block.

use burn::module::Module;
use burn::tensor::{activation::silu, backend::Backend, Tensor};

use super::Linear;
use crate::model::LinearSlot;

/// `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[d_ff, d_model]`
    pub gate_proj: Linear<B>,
    /// `[d_ff, d_model]`
    pub up_proj: Linear<B>,
    /// `[d_model, d_ff]`
    pub down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// x: `[..., d_model]` -> `[..., d_model]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.down_proj.forward(self.hidden(x))
    }

    /// The input `down_proj` sees. x: `[..., d_model]` -> `[..., d_ff]`
    pub fn hidden<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        gate * self.up_proj.forward(x)
    }

    /// The projection in `slot` (Gate, Up or Down).
    pub fn linear(&self, slot: LinearSlot) -> Option<&Linear<B>> {
        match slot {
            LinearSlot::Gate => Some(&self.gate_proj),
            LinearSlot::Up => Some(&self.up_proj),
            LinearSlot::Down => Some(&self.down_proj),
            _ => None,
        }
    }

    /// [`Self::linear`], mutably.
    pub fn linear_mut(&mut self, slot: LinearSlot) -> Option<&mut Linear<B>> {
        match slot {
            LinearSlot::Gate => Some(&mut self.gate_proj),
            LinearSlot::Up => Some(&mut self.up_proj),
            LinearSlot::Down => Some(&mut self.down_proj),
            _ => None,
        }
    }
}
