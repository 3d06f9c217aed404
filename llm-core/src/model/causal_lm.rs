//! The decoder-only causal LM: embeddings, decoder layers, final norm, LM head.

use burn::module::Module;
use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};

use super::checkpoint::{CheckpointTape, Segment};
use super::host_step::{HostMasks, HostPlan, HostSegment};
use super::{DecoderLayer, LayerContext};
use crate::config::ModelConfig;
use crate::error::{LlmError, Result};
use crate::nn::{KvCache, Linear, MaskSpec, RmsNorm, RotaryEmbedding, TokenEmbedding};

/// A Llama-family causal LM (Llama, Mistral, Qwen2, Mixtral).
///
/// Build it with [`crate::weights`] loaders; run it with [`CausalLm::forward`] (whole sequences)
/// or [`CausalLm::forward_with`] (padding, explicit positions, KV cache, hidden states).
#[derive(Module, Debug)]
pub struct CausalLm<B: Backend> {
    /// `[vocab_size, d_model]`, float or (from a GGUF file) quantized.
    pub embed_tokens: TokenEmbedding<B>,
    /// Decoder layers, bottom to top.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final norm.
    pub norm: RmsNorm<B>,
    /// `[vocab_size, d_model]`; `None` when tied to `embed_tokens`.
    pub lm_head: Option<Linear<B>>,
    /// The configuration the model was built from.
    #[module(skip)]
    pub config: ModelConfig,
    /// Rotary frequencies.
    #[module(skip)]
    pub rotary: RotaryEmbedding,
    /// Gradient checkpointing per layer under autodiff: where forward passes record what the
    /// backward pass recomputes (see [`super::checkpoint`]). `None`: an ordinary graph.
    #[module(skip)]
    pub checkpoint: Option<CheckpointTape>,
}

/// Everything a forward pass can take besides the model.
#[derive(Debug, Clone)]
pub struct ModelInput<B: Backend> {
    /// `[batch, seq]`
    pub input_ids: Tensor<B, 2, Int>,
    /// `[batch][past_len + seq]`, false at padding (transformers' `attention_mask` as booleans).
    pub attention_mask: Option<Vec<Vec<bool>>>,
    /// `[batch][seq]` rotary positions; default `past_len..past_len + seq` for every row.
    pub position_ids: Option<Vec<Vec<usize>>>,
    /// `[batch][seq]` packed-example index per position (padding-free packing, no cache): a
    /// token attends only within its own example. Pair it with `position_ids` restarting at 0
    /// per example, and the packed row computes what the examples compute one by one.
    pub segment_ids: Option<Vec<Vec<usize>>>,
    /// Return the hidden state entering each layer and the final normed one.
    pub output_hidden_states: bool,
    /// Compute logits for the last position only (what decoding needs).
    pub last_logits_only: bool,
}

impl<B: Backend> ModelInput<B> {
    /// Plain input: no padding, default positions, all logits.
    pub fn new(input_ids: Tensor<B, 2, Int>) -> Self {
        Self {
            input_ids,
            attention_mask: None,
            position_ids: None,
            segment_ids: None,
            output_hidden_states: false,
            last_logits_only: false,
        }
    }
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct ModelOutput<B: Backend> {
    /// `[batch, seq or 1, vocab_size]`, f32.
    pub logits: Tensor<B, 3>,
    /// `n_layers + 1` tensors `[batch, seq, d_model]`: the embeddings, the input of each later
    /// layer, and the final normed state (transformers' `output_hidden_states`). Empty unless asked.
    pub hidden_states: Vec<Tensor<B, 3>>,
    /// Per MoE layer, `[batch*seq, n_experts]`.
    pub router_logits: Vec<Tensor<B, 2>>,
}

/// The layers' output before the head.
struct Body<B: Backend> {
    last: Tensor<B, 3>,
    hidden_states: Vec<Tensor<B, 3>>,
    router_logits: Vec<Tensor<B, 2>>,
}

impl<B: Backend> CausalLm<B> {
    /// input_ids: `[batch, seq]` -> logits `[batch, seq, vocab_size]`
    ///
    /// # Panics
    /// Never for valid ids; see [`Self::forward_with`] for the checked form.
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.forward_with(ModelInput::new(input_ids), None)
            .expect("a forward without cache or mask cannot fail")
            .logits
    }

    /// The full forward pass.
    ///
    /// With a cache, the new tokens are appended after the positions it holds and attend to
    /// them; `attention_mask` then covers past and new positions.
    pub fn forward_with(&self, input: ModelInput<B>, cache: Option<&mut KvCache<B>>) -> Result<ModelOutput<B>> {
        // On the CPU the pass runs on a thread of the pool its kernels split work on: called from
        // outside the pool, each parallel op would hand its work to the pool and put this thread
        // to sleep until it is done, two context switches per op and hundreds of ops per token;
        // the pool's other threads poll for its work meanwhile instead of parking between ops.
        if crate::quant::host_backend::<B>(&self.device()) && rayon::current_thread_index().is_none() {
            return super::on_pool::run(|| self.forward_in_place(input, cache));
        }
        self.forward_in_place(input, cache)
    }

    fn forward_in_place(&self, input: ModelInput<B>, cache: Option<&mut KvCache<B>>) -> Result<ModelOutput<B>> {
        let [batch, seq] = input.input_ids.dims();
        let plain = batch == 1 && !input.output_hidden_states && input.segment_ids.is_none();
        let cache = match cache {
            Some(c) if plain => match self.host_plan([seq]) {
                Some(plan) => return self.forward_on_host(plan, input, c),
                None => Some(c),
            },
            other => other,
        };
        let (last_only, want_hidden) = (input.last_logits_only, input.output_hidden_states);
        let mut out = self.forward_body(input, cache)?;
        let x = out.last;
        let seq = x.dims()[1];
        if want_hidden {
            out.hidden_states.push(x.clone());
        }
        let x = if last_only { x.narrow(1, seq - 1, 1) } else { x };
        Ok(ModelOutput { logits: self.logits(x), hidden_states: out.hidden_states, router_logits: out.router_logits })
    }

    /// [`Self::forward_in_place`] of one sequence's few new tokens as one host pass
    /// ([`super::host_step`]).
    fn forward_on_host(&self, plan: HostPlan<'_>, input: ModelInput<B>, cache: &mut KvCache<B>) -> Result<ModelOutput<B>> {
        let seq = input.input_ids.dims()[1];
        let past_len = cache.len();
        cache.grow_for(seq);
        cache.check_room(1, seq)?;
        self.check_input(&input, 1, seq, past_len)?;
        let positions = input.position_ids.clone().unwrap_or_else(|| vec![(past_len..past_len + seq).collect()]);
        let (cos, sin) = self.rotary.host_tables(&positions[..1]);
        let spec = MaskSpec { batch: 1, past_len, seq, attention_mask: input.attention_mask.as_deref(), segment_ids: None };
        let masks = HostMasks::new(&spec, &self.windows());
        let embedded = self.embed(input.input_ids)?.into_data().convert::<f32>().into_vec::<f32>().expect("converted to f32 above");
        let normed = self.host_pass(plan, embedded, &cos, &sin, &mut [HostSegment { offset: 0, len: seq, masks, cache }])?;
        let d = self.config.d_model;
        let kept = if input.last_logits_only { normed[(seq - 1) * d..].to_vec() } else { normed };
        let rows = kept.len() / d;
        let x = Tensor::<B, 3>::from_data(TensorData::new(kept, [1, rows, d]), &self.device());
        Ok(ModelOutput { logits: self.logits(x), hidden_states: vec![], router_logits: vec![] })
    }

    /// The final normed hidden state `[batch, seq, d_model]`, without the LM head: training
    /// computes logits only for the positions it scores (see [`Self::logits`]).
    pub fn forward_hidden(&self, input: ModelInput<B>, cache: Option<&mut KvCache<B>>) -> Result<Tensor<B, 3>> {
        Ok(self.forward_body(input, cache)?.last)
    }

    /// The LM head: x `[..., d_model]` -> logits `[..., vocab_size]` in f32.
    pub fn logits<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let logits = match &self.lm_head {
            Some(head) => head.forward(x),
            None => self.embed_tokens.head(x),
        };
        logits.cast(DType::F32)
    }

    /// Embed, run every layer (each with its rotary tables, mask and cache), final norm.
    fn forward_body(&self, input: ModelInput<B>, mut cache: Option<&mut KvCache<B>>) -> Result<Body<B>> {
        let past_len = cache.as_ref().map_or(0, |c| c.len());
        let seq = input.input_ids.dims()[1];
        if let Some(c) = cache.as_deref_mut() {
            c.grow_for(seq);
        }
        let ctx = self.input_context(&input, cache.as_deref(), past_len)?;
        let mut x = self.embed(input.input_ids)?;
        if let Some(tape) = self.checkpoint.as_ref().filter(|_| cache.is_none() && B::ad_enabled(&x.device())) {
            return Ok(self.checkpointed_body(tape, x, ctx, input.output_hidden_states));
        }
        let mut hidden_states = Vec::new();
        let mut router_logits = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            if input.output_hidden_states {
                hidden_states.push(x.clone());
            }
            let (out, router) = layer.forward(x, &ctx.rope, ctx.mask(layer), cache.as_mut().map(|c| c.layer_mut(i)));
            x = out;
            router_logits.extend(router);
        }
        if let Some(c) = cache {
            c.advance(seq);
        }
        Ok(Body { last: self.norm.forward(x), hidden_states, router_logits })
    }

    /// [`Self::forward_body`] with per-layer checkpointing: the layers run without a graph (the
    /// tape's graph-free layers, else detached inputs and outputs), the final state re-enters
    /// the graph as a leaf, and the tape records what the backward pass recomputes.
    fn checkpointed_body(&self, tape: &CheckpointTape, embedded: Tensor<B, 3>, ctx: LayerContext<B>, want_hidden: bool) -> Body<B> {
        let x = embedded.clone().detach();
        let mut inputs = match tape.graph_free_layers::<B>() {
            Some(run) => run(x, &ctx),
            None => {
                let mut states = vec![x];
                for layer in &self.layers {
                    let x = states.last().expect("the embedded input").clone();
                    states.push(layer.forward(x, &ctx.rope, ctx.mask(layer), None).0.detach());
                }
                states
            }
        };
        let output = inputs.pop().expect("the last layer's output").require_grad();
        let hidden_states = if want_hidden { inputs.clone() } else { vec![] };
        tape.record(Segment { embedded, inputs, context: ctx, output: output.clone() });
        Body { last: self.norm.forward(output), hidden_states, router_logits: vec![] }
    }

    /// Checks `input` (and the cache's room), then builds its rotary tables (default positions
    /// `past_len..past_len + seq`) and masks (causal, padding, segments, sliding windows).
    fn input_context(&self, input: &ModelInput<B>, cache: Option<&KvCache<B>>, past_len: usize) -> Result<LayerContext<B>> {
        let [batch, seq] = input.input_ids.dims();
        if let Some(c) = cache {
            c.check_room(batch, seq)?;
        }
        self.check_input(input, batch, seq, past_len)?;
        let positions = input.position_ids.clone().unwrap_or_else(|| vec![(past_len..past_len + seq).collect()]);
        let spec = MaskSpec {
            batch,
            past_len,
            seq,
            attention_mask: input.attention_mask.as_deref(),
            segment_ids: input.segment_ids.as_deref(),
        };
        Ok(self.context_for(&positions, &spec, &input.input_ids.device()))
    }

    /// A cache for `batch` rows of up to `capacity` positions, in the model's dtype.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> KvCache<B> {
        let c = &self.config;
        KvCache::new(c.n_layers, batch, c.n_kv_heads, capacity, c.head_dim, self.dtype(), &self.device())
    }

    /// The float dtype the weights are held in.
    pub fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }

    /// The device holding the weights (without materializing a lazily built embedding).
    pub fn device(&self) -> B::Device {
        self.embed_tokens.device()
    }

    pub(super) fn check_input(&self, input: &ModelInput<B>, batch: usize, seq: usize, past_len: usize) -> Result<()> {
        if seq == 0 || batch == 0 {
            return Err(LlmError::Shape {
                what: "input_ids".into(),
                expected: "[batch > 0, seq > 0]".into(),
                got: vec![batch, seq],
            });
        }
        if let Some(m) = &input.attention_mask {
            if m.len() != batch || m.iter().any(|r| r.len() != past_len + seq) {
                return Err(LlmError::Shape {
                    what: "attention_mask".into(),
                    expected: format!("[{batch}][{}] (past + new positions)", past_len + seq),
                    got: vec![m.len(), m.first().map_or(0, Vec::len)],
                });
            }
        }
        if let Some(p) = &input.position_ids {
            if (p.len() != batch && p.len() != 1) || p.iter().any(|r| r.len() != seq) {
                return Err(LlmError::Shape {
                    what: "position_ids".into(),
                    expected: format!("[{batch} or 1][{seq}]"),
                    got: vec![p.len(), p.first().map_or(0, Vec::len)],
                });
            }
        }
        if let Some(s) = &input.segment_ids {
            if past_len > 0 || s.len() != batch || s.iter().any(|r| r.len() != seq) {
                return Err(LlmError::Shape {
                    what: "segment_ids (packed rows run without a cache)".into(),
                    expected: format!("[{batch}][{seq}], past 0"),
                    got: vec![s.len(), s.first().map_or(0, Vec::len), past_len],
                });
            }
        }
        Ok(())
    }
}
