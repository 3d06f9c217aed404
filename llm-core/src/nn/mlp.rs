//! The SwiGLU feed-forward block.

use burn::module::Module;
use burn::tensor::{backend::Backend, Tensor};

use super::Linear;
use crate::model::LinearSlot;

/// `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[d_ff, d_model]`
    pub gate: Linear<B>,
    /// `[d_ff, d_model]`
    pub up: Linear<B>,
    /// `[d_model, d_ff]`
    pub down: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// x: `[..., d_model]` -> `[..., d_model]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.down.forward(self.hidden(x))
    }

    /// The input `down` sees. x: `[..., d_model]` -> `[..., d_ff]`
    pub fn hidden<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let mut both = Linear::forward_group(&[&self.gate, &self.up], x);
        let up = both.pop().expect("two outputs");
        let gate = both.pop().expect("two outputs");
        super::swiglu::swiglu(gate, up)
    }

    /// The projection in `slot` (Gate, Up or Down).
    pub fn linear(&self, slot: LinearSlot) -> Option<&Linear<B>> {
        match slot {
            LinearSlot::Gate => Some(&self.gate),
            LinearSlot::Up => Some(&self.up),
            LinearSlot::Down => Some(&self.down),
            _ => None,
        }
    }

    /// [`Self::linear`], mutably.
    pub fn linear_mut(&mut self, slot: LinearSlot) -> Option<&mut Linear<B>> {
        match slot {
            LinearSlot::Gate => Some(&mut self.gate),
            LinearSlot::Up => Some(&mut self.up),
            LinearSlot::Down => Some(&mut self.down),
            _ => None,
        }
    }
}
