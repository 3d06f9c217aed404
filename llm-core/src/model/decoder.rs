//! One decoder layer: pre-norm attention and pre-norm feed-forward, each with a residual.

use burn::module::Module;
use burn::tensor::{backend::Backend, Bool, Tensor};

use crate::nn::kv_cache::LayerCache;
use crate::nn::{Attention, Mlp, RmsNorm, RopeTables, SparseMoe};

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
}
