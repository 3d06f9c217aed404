//! Several sequences in one forward pass, each with its own KV cache and length: the step of
//! continuous batching, where requests in prefill and requests in decode share the pass.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

use super::host_step::{HostMasks, HostPlan, HostSegment};
use super::{CausalLm, DecoderLayer, FeedForward, LayerContext};
use crate::error::{LlmError, Result};
use crate::nn::{KvCache, MaskSpec, PackedAttention, RopeTables};

/// One sequence of [`CausalLm::forward_packed`]: its new tokens and its own cache (batch 1).
pub struct PackedSequence<'a, B: Backend> {
    /// Tokens to append (a prompt chunk, or the last sampled token).
    pub tokens: &'a [u32],
    /// The sequence's cache; it grows (within its limit) and advances by `tokens.len()`.
    pub cache: &'a mut KvCache<B>,
}

/// Where a sequence's tokens sit in the packed row, with its masks.
struct Segment<B: Backend> {
    offset: usize,
    len: usize,
    ctx: LayerContext<B>,
}

impl<B: Backend> CausalLm<B> {
    /// Runs every sequence's new tokens in one pass: the linear layers see all of them as one
    /// `[1, total, d_model]` batch (the weights are read once for all sequences), attention
    /// runs per sequence over its own cache, at its own positions. What each sequence gets
    /// equals a [`CausalLm::forward_with`] of it alone, up to float summation order.
    ///
    /// Returns the logits of each sequence's last new token: `[sequences, vocab_size]`, f32.
    pub fn forward_packed(&self, seqs: &mut [PackedSequence<'_, B>]) -> Result<Tensor<B, 2>> {
        if crate::quant::host_backend::<B>(&self.device()) && rayon::current_thread_index().is_none() {
            return super::on_pool::run(|| self.forward_packed_in_place(seqs));
        }
        self.forward_packed_in_place(seqs)
    }

    fn forward_packed_in_place(&self, seqs: &mut [PackedSequence<'_, B>]) -> Result<Tensor<B, 2>> {
        if let Some(plan) = self.host_plan(seqs.iter().map(|s| s.tokens.len())) {
            return self.forward_packed_on_host(plan, seqs);
        }
        let segments = self.segments(seqs)?;
        let device = self.device();
        // Every token's own position, so the rotary embedding runs once over the packed row.
        let positions: Vec<usize> = seqs.iter().flat_map(|s| s.cache.len()..s.cache.len() + s.tokens.len()).collect();
        let rope = self.rotary.tables::<B>(&[positions], self.dtype(), &device);
        let flat: Vec<i64> = seqs.iter().flat_map(|s| s.tokens.iter().map(|&t| t as i64)).collect();
        let total = flat.len();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [1, total]), &device);
        let mut x = self.embed(ids)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let caches = seqs.iter_mut().map(|s| s.cache.layer_mut(i));
            x = layer.forward_packed(x, &rope, &segments, caches);
        }
        for s in seqs.iter_mut() {
            s.cache.advance(s.tokens.len());
        }
        let last: Vec<i64> = segments.iter().map(|s| (s.offset + s.len - 1) as i64).collect();
        let n = last.len();
        let last = Tensor::<B, 1, Int>::from_data(TensorData::new(last, [n]), &device);
        let x = self.norm.forward(x).squeeze_dim::<2>(0).select(0, last);
        Ok(self.logits(x))
    }

    /// [`Self::forward_packed_in_place`] of sequences of a few new tokens each as one host pass
    /// ([`super::host_step`]).
    fn forward_packed_on_host(&self, plan: HostPlan<'_>, seqs: &mut [PackedSequence<'_, B>]) -> Result<Tensor<B, 2>> {
        let spans = self.check_sequences(seqs)?;
        let windows = self.windows();
        let positions: Vec<usize> = seqs.iter().flat_map(|s| s.cache.len()..s.cache.len() + s.tokens.len()).collect();
        let (cos, sin) = self.rotary.host_tables(&[positions]);
        let flat: Vec<i64> = seqs.iter().flat_map(|s| s.tokens.iter().map(|&t| t as i64)).collect();
        let total = flat.len();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [1, total]), &self.device());
        let embedded = self.embed(ids)?.into_data().convert::<f32>().into_vec::<f32>().expect("converted to f32 above");
        let mut segments: Vec<HostSegment<'_, B>> = seqs
            .iter_mut()
            .zip(&spans)
            .map(|(s, &(offset, len, past_len))| {
                let spec = MaskSpec { batch: 1, past_len, seq: len, attention_mask: None, segment_ids: None };
                HostSegment { offset, len, masks: HostMasks::new(&spec, &windows), cache: &mut *s.cache }
            })
            .collect();
        let normed = self.host_pass(plan, embedded, &cos, &sin, &mut segments)?;
        let d = self.config.d_model;
        let last: Vec<f32> = spans.iter().flat_map(|&(offset, len, _)| normed[(offset + len - 1) * d..(offset + len) * d].iter().copied()).collect();
        Ok(self.logits(Tensor::<B, 2>::from_data(TensorData::new(last, [spans.len(), d]), &self.device())))
    }

    /// Checks each sequence (non-empty, ids in the vocabulary, room in its cache, which grows
    /// if it must) and returns its `(offset, len, past_len)` in the packed row.
    fn check_sequences(&self, seqs: &mut [PackedSequence<'_, B>]) -> Result<Vec<(usize, usize, usize)>> {
        if seqs.is_empty() {
            return Err(LlmError::Shape { what: "packed sequences".into(), expected: "at least one".into(), got: vec![0] });
        }
        let vocab = self.config.vocab_size as u32;
        let mut offset = 0;
        let mut out = Vec::with_capacity(seqs.len());
        for (i, s) in seqs.iter_mut().enumerate() {
            let len = s.tokens.len();
            if len == 0 {
                return Err(LlmError::Shape { what: format!("packed sequence {i}"), expected: "at least one token".into(), got: vec![0] });
            }
            if let Some(bad) = s.tokens.iter().find(|&&t| t >= vocab) {
                return Err(LlmError::Shape {
                    what: format!("packed sequence {i} ids"),
                    expected: format!("ids < vocab_size {vocab}"),
                    got: vec![*bad as usize],
                });
            }
            s.cache.grow_for(len);
            s.cache.check_room(1, len)?;
            out.push((offset, len, s.cache.len()));
            offset += len;
        }
        Ok(out)
    }

    /// [`Self::check_sequences`], then each sequence's rotary tables and masks.
    fn segments(&self, seqs: &mut [PackedSequence<'_, B>]) -> Result<Vec<Segment<B>>> {
        let device = self.device();
        let spans = self.check_sequences(seqs)?;
        Ok(spans
            .into_iter()
            .map(|(offset, len, past_len)| {
                let positions = vec![(past_len..past_len + len).collect()];
                let spec = MaskSpec { batch: 1, past_len, seq: len, attention_mask: None, segment_ids: None };
                Segment { offset, len, ctx: self.context_for(&positions, &spec, &device) }
            })
            .collect())
    }
}

impl<B: Backend> DecoderLayer<B> {
    /// [`DecoderLayer::forward`] over sequences packed into one row, each with its own cache.
    ///
    /// x: `[1, total, d_model]` -> `[1, total, d_model]`
    fn forward_packed<'c>(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        segments: &[Segment<B>],
        caches: impl Iterator<Item = (&'c mut crate::nn::kv_cache::LayerCache<B>, usize)>,
    ) -> Tensor<B, 3>
    where
        B: 'c,
    {
        let attention = segments
            .iter()
            .zip(caches)
            .map(|(s, cache)| PackedAttention { offset: s.offset, len: s.len, mask: s.ctx.mask(self), cache })
            .collect();
        let attn = &self.self_attn;
        let h = x.clone() + attn.output.forward(attn.heads_packed(self.input_layernorm.forward(x), rope, attention));
        let normed = self.post_attention_layernorm.forward(h.clone());
        match &self.ffn {
            FeedForward::Dense(mlp) => h + mlp.forward(normed),
            FeedForward::Moe(moe) => h + moe.forward(normed).hidden,
        }
    }
}
