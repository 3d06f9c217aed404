//! Layer-by-layer access to a [`CausalLm`]: what calibration-based quantization (GPTQ) and
//! weight surgery need — the embedded input, the per-layer rotary tables and masks, and the
//! linear layers by Hugging Face name.

use burn::tensor::{backend::Backend, Bool, Int, Tensor};

use super::arch::{self, LinearId, NormSlot};
use super::{CausalLm, DecoderLayer, FeedForward};
use crate::nn::{Linear, MaskSpec, RmsNorm, RopeTables};

/// Rotary tables and causal masks for running layers one at a time over plain sequences
/// (no padding, positions from 0).
pub struct LayerContext<B: Backend> {
    /// Rotary tables for positions `0..seq`.
    pub rope: RopeTables<B>,
    full_mask: Option<Tensor<B, 4, Bool>>,
    window_masks: Vec<(usize, Option<Tensor<B, 4, Bool>>)>,
}

impl<B: Backend> LayerContext<B> {
    /// The mask `layer` uses (`[batch, 1, seq, seq]`, true = hidden).
    pub fn mask(&self, layer: &DecoderLayer<B>) -> Option<Tensor<B, 4, Bool>> {
        match layer.self_attn.sliding_window {
            None => self.full_mask.clone(),
            Some(w) => self.window_masks.iter().find(|(ww, _)| *ww == w).and_then(|(_, m)| m.clone()),
        }
    }
}

impl<B: burn::tensor::backend::AutodiffBackend> LayerContext<B> {
    /// The same tables and masks on the inner backend (no graph).
    pub fn inner(&self) -> LayerContext<B::InnerBackend> {
        LayerContext {
            rope: RopeTables { cos: self.rope.cos.clone().inner(), sin: self.rope.sin.clone().inner() },
            full_mask: self.full_mask.clone().map(Tensor::inner),
            window_masks: self.window_masks.iter().map(|(w, m)| (*w, m.clone().map(Tensor::inner))).collect(),
        }
    }
}

impl<B: Backend> CausalLm<B> {
    /// input_ids: `[batch, seq]` -> `[batch, seq, d_model]`, the input of layer 0. An id
    /// outside the vocabulary is an error from a quantized table (see [`TokenEmbedding::lookup`]).
    ///
    /// [`TokenEmbedding::lookup`]: crate::nn::TokenEmbedding::lookup
    pub fn embed(&self, input_ids: Tensor<B, 2, Int>) -> crate::Result<Tensor<B, 3>> {
        self.embed_tokens.lookup(input_ids)
    }

    /// Tables and masks for `batch` plain sequences of `seq` tokens.
    pub fn layer_context(&self, batch: usize, seq: usize) -> LayerContext<B> {
        let positions = vec![(0..seq).collect()];
        let spec = MaskSpec { batch, past_len: 0, seq, attention_mask: None, segment_ids: None };
        self.context_for(&positions, &spec, &self.device())
    }

    /// Rotary tables for `positions` and one mask per distinct attention span (full, and each
    /// sliding window a layer uses), as `spec` describes them.
    pub(crate) fn context_for(&self, positions: &[Vec<usize>], spec: &MaskSpec<'_>, device: &B::Device) -> LayerContext<B> {
        let rope = self.rotary.tables::<B>(positions, self.dtype(), device);
        let windows = self.windows();
        LayerContext {
            rope,
            full_mask: spec.build::<B>(None, device),
            window_masks: windows.into_iter().map(|w| (w, spec.build::<B>(Some(w), device))).collect(),
        }
    }

    /// The linear layer at `id`, if the model has it.
    pub fn linear(&self, id: LinearId) -> Option<&Linear<B>> {
        match id {
            LinearId::Layer { layer, slot } => self.layers.get(layer)?.linear(slot),
            LinearId::Expert { layer, expert, slot } => match &self.layers.get(layer)?.ffn {
                FeedForward::Moe(moe) => moe.experts.get(expert)?.linear(slot),
                FeedForward::Dense(_) => None,
            },
            LinearId::LmHead => self.lm_head.as_ref(),
        }
    }

    /// The linear layer at `id`, for replacing its weight or attaching an adapter.
    pub fn linear_at_mut(&mut self, id: LinearId) -> Option<&mut Linear<B>> {
        match id {
            LinearId::Layer { layer, slot } => self.layers.get_mut(layer)?.linear_mut(slot),
            LinearId::Expert { layer, expert, slot } => match &mut self.layers.get_mut(layer)?.ffn {
                FeedForward::Moe(moe) => moe.experts.get_mut(expert)?.linear_mut(slot),
                FeedForward::Dense(_) => None,
            },
            LinearId::LmHead => self.lm_head.as_mut(),
        }
    }

    /// Calls `f` on every linear layer in computation order ([`arch::linear_ids`]).
    pub fn visit_linears(&self, mut f: impl FnMut(LinearId, &Linear<B>)) {
        for id in arch::linear_ids(&self.config) {
            if let Some(l) = self.linear(id) {
                f(id, l);
            }
        }
    }

    /// Calls `f` on every linear layer in computation order, mutably.
    pub fn visit_linears_mut(&mut self, mut f: impl FnMut(LinearId, &mut Linear<B>)) {
        for id in arch::linear_ids(&self.config) {
            if let Some(l) = self.linear_at_mut(id) {
                f(id, l);
            }
        }
    }

    /// Every linear layer with its Hugging Face prefix ([`LinearId::hf`]),
    /// in computation order; `lm_head` last when untied.
    pub fn linears(&self) -> Vec<(String, &Linear<B>)> {
        arch::linear_ids(&self.config).into_iter().filter_map(|id| Some((id.hf(), self.linear(id)?))).collect()
    }

    /// The linear layer with Hugging Face prefix `name`, for replacing its weight.
    pub fn linear_mut(&mut self, name: &str) -> Option<&mut Linear<B>> {
        self.linear_at_mut(LinearId::parse(name)?)
    }

    /// Every norm with its Hugging Face tensor name: each layer's two, then the final one.
    pub fn norms(&self) -> Vec<(String, &RmsNorm<B>)> {
        let mut out = vec![];
        for (i, layer) in self.layers.iter().enumerate() {
            out.push((arch::norm_name(i, NormSlot::Input), &layer.input_layernorm));
            out.push((arch::norm_name(i, NormSlot::PostAttention), &layer.post_attention_layernorm));
        }
        out.push((arch::FINAL_NORM.0.to_string(), &self.norm));
        out
    }
}
