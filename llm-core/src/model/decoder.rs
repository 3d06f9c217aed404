//! One decoder layer: pre-norm attention and pre-norm feed-forward, each with a residual.

use burn::module::Module;
use burn::tensor::{backend::Backend, Bool, Tensor};

use super::arch::{LinearInput, LinearSlot};
use crate::nn::kv_cache::LayerCache;
use crate::nn::{Attention, Linear, Mlp, RmsNorm, RopeTables, SparseMoe};

/// The feed-forward half of a layer: a dense SwiGLU MLP or a sparse mixture of them.
// One per layer, so the size gap between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum FeedForward<B: Backend> {
    /// Llama, Mistral, Qwen2.
    Dense(Mlp<B>),
    /// Mixtral.
    Moe(SparseMoe<B>),
}

/// `x + attn(norm(x))`, then `h + ffn(norm(h))`.
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Norm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// Norm before the feed-forward.
    pub post_attention_layernorm: RmsNorm<B>,
    /// Feed-forward.
    pub ffn: FeedForward<B>,
}

impl<B: Backend> DecoderLayer<B> {
    /// The linear layer in `slot` ([`crate::model::arch`]); `None` for a slot this layer's
    /// feed-forward does not have (a router in a dense layer).
    pub fn linear(&self, slot: LinearSlot) -> Option<&Linear<B>> {
        let a = &self.self_attn;
        match (slot, &self.ffn) {
            (LinearSlot::Q, _) => Some(&a.query),
            (LinearSlot::K, _) => Some(&a.key),
            (LinearSlot::V, _) => Some(&a.value),
            (LinearSlot::O, _) => Some(&a.output),
            (LinearSlot::Router, FeedForward::Moe(moe)) => Some(&moe.router),
            (slot, FeedForward::Dense(mlp)) => mlp.linear(slot),
            _ => None,
        }
    }

    /// [`Self::linear`], mutably.
    pub fn linear_mut(&mut self, slot: LinearSlot) -> Option<&mut Linear<B>> {
        let a = &mut self.self_attn;
        match (slot, &mut self.ffn) {
            (LinearSlot::Q, _) => Some(&mut a.query),
            (LinearSlot::K, _) => Some(&mut a.key),
            (LinearSlot::V, _) => Some(&mut a.value),
            (LinearSlot::O, _) => Some(&mut a.output),
            (LinearSlot::Router, FeedForward::Moe(moe)) => Some(&mut moe.router),
            (slot, FeedForward::Dense(mlp)) => mlp.linear_mut(slot),
            _ => None,
        }
    }

    /// x: `[batch, seq, d_model]` -> (`[batch, seq, d_model]`, router logits `[batch*seq, n_experts]` for MoE)
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: Option<Tensor<B, 4, Bool>>,
        cache: Option<(&mut LayerCache<B>, usize)>,
    ) -> (Tensor<B, 3>, Option<Tensor<B, 2>>) {
        let h = x.clone() + self.self_attn.forward(self.input_layernorm.forward(x), rope, mask, cache);
        let normed = self.post_attention_layernorm.forward(h.clone());
        match &self.ffn {
            FeedForward::Dense(mlp) => (h + mlp.forward(normed), None),
            FeedForward::Moe(moe) => {
                let out = moe.forward(normed);
                (h + out.hidden, Some(out.router_logits))
            }
        }
    }

    /// [`Self::forward`] without a cache, handing `observe` the input of each linear layer
    /// (calibration). Mixture-of-experts layers are not observed: each expert sees a different
    /// subset of tokens.
    ///
    /// x: `[batch, seq, d_model]` -> `[batch, seq, d_model]`; observed inputs are `[batch, seq, width]`.
    pub fn forward_observed(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: Option<Tensor<B, 4, Bool>>,
        observe: &mut dyn FnMut(LinearInput, Tensor<B, 3>),
    ) -> Tensor<B, 3> {
        let normed = self.input_layernorm.forward(x.clone());
        observe(LinearInput::Attention, normed.clone());
        let heads = self.self_attn.heads(normed, rope, mask, None);
        observe(LinearInput::AttentionOutput, heads.clone());
        let h = x + self.self_attn.output.forward(heads);
        let normed = self.post_attention_layernorm.forward(h.clone());
        match &self.ffn {
            FeedForward::Dense(mlp) => {
                observe(LinearInput::Mlp, normed.clone());
                let hidden = mlp.hidden(normed);
                observe(LinearInput::MlpHidden, hidden.clone());
                h + mlp.down.forward(hidden)
            }
            FeedForward::Moe(moe) => h + moe.forward(normed).hidden,
        }
    }
}
