//! Building a model from its config alone (Burn's `Config::init(&device)`): every weight is a
//! lazy parameter, allocated only when first read, so building then loading
//! ([`crate::weights::load_into`]) never holds the built weights and the checkpoint at once.

use burn::module::{Param, ParamId};
use burn::tensor::{backend::Backend, DType, Shape, Tensor, TensorData};

use super::arch::{self, LinearId, NormSlot};
use super::{CausalLm, DecoderLayer, FeedForward};
use crate::config::ModelConfig;
use crate::nn::linear::LinearWeight;
use crate::nn::{Attention, Linear, Mlp, RmsNorm, RotaryEmbedding, SparseMoe, TokenEmbedding};
use crate::weights::random::random_values;
use crate::weights::LoadOptions;

/// What a built model's weights hold until something loads into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitWeights {
    /// Zeros (norm weights too): a shell for [`crate::weights::load_into`].
    Zeros,
    /// Seeded uniform noise, exactly [`crate::weights::RandomSource`]'s: linear weights in
    /// `±1/√d_in`, norm weights 1. For speed measurements of architectures too large to ship.
    Random {
        /// The same seed gives the same weights.
        seed: u64,
    },
}

impl ModelConfig {
    /// The model this config describes on `device`, zero weights in f32 (fused attention).
    pub fn init<B: Backend>(&self, device: &B::Device) -> CausalLm<B> {
        self.init_with(InitWeights::Zeros, &LoadOptions::default(), device)
    }

    /// The model this config describes, with `weights`, in `options.dtype`, with
    /// `options.attention`. The weights are lazy: nothing is allocated until read.
    pub fn init_with<B: Backend>(&self, weights: InitWeights, options: &LoadOptions, device: &B::Device) -> CausalLm<B> {
        let init = Init { weights, dtype: options.dtype, device: device.clone() };
        let layers = (0..self.n_layers).map(|i| init.layer(self, i, options)).collect();
        let lm_head = (!self.tie_word_embeddings).then(|| init.linear(self, LinearId::LmHead));
        CausalLm {
            embed_tokens: TokenEmbedding::Dense(init.param(arch::EMBED.0, [self.vocab_size, self.d_model])),
            layers,
            norm: init.norm(arch::FINAL_NORM.0, self),
            lm_head,
            rotary: RotaryEmbedding::new(&self.rope, self.head_dim),
            config: self.clone(),
            checkpoint: None,
        }
    }
}

struct Init<B: Backend> {
    weights: InitWeights,
    dtype: DType,
    device: B::Device,
}

impl<B: Backend> Init<B> {
    /// A lazy parameter named `name` (its Hugging Face name seeds the random draw).
    fn param<const D: usize>(&self, name: &str, shape: [usize; D]) -> Param<Tensor<B, D>> {
        let (weights, dtype, name) = (self.weights, self.dtype, name.to_string());
        let init = move |device: &B::Device, require_grad: bool| {
            let values = match weights {
                InitWeights::Zeros => vec![0.0f32; shape.iter().product()],
                InitWeights::Random { seed } => random_values(&name, &shape, seed),
            };
            Tensor::<B, D>::from_data(TensorData::new(values, shape), (device, dtype)).set_require_grad(require_grad)
        };
        Param::uninitialized(ParamId::new(), init, self.device.clone(), true, Shape::new(shape))
    }

    fn norm(&self, name: &str, c: &ModelConfig) -> RmsNorm<B> {
        RmsNorm { weight: self.param(name, [c.d_model]), eps: c.rms_norm_eps }
    }

    fn linear(&self, c: &ModelConfig, id: LinearId) -> Linear<B> {
        let prefix = id.hf();
        let shape = id.shape(c);
        let bias = id.has_bias(c).then(|| self.param(&format!("{prefix}.bias"), [shape[0]]));
        Linear { weight: LinearWeight::Dense(self.param(&format!("{prefix}.weight"), shape)), bias, lora: None }
    }

    fn layer(&self, c: &ModelConfig, layer: usize, options: &LoadOptions) -> DecoderLayer<B> {
        use arch::LinearSlot::*;
        let at = |slot| self.linear(c, LinearId::Layer { layer, slot });
        let self_attn = Attention {
            query: at(Q),
            key: at(K),
            value: at(V),
            output: at(O),
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            sliding_window: c.sliding_window[layer],
            kernel: options.attention,
        };
        let ffn = match c.moe.filter(|_| arch::is_moe(c)) {
            Some(moe) => FeedForward::Moe(SparseMoe {
                router: at(Router),
                experts: (0..moe.n_experts)
                    .map(|expert| {
                        let at = |slot| self.linear(c, LinearId::Expert { layer, expert, slot });
                        Mlp { gate: at(Gate), up: at(Up), down: at(Down) }
                    })
                    .collect(),
                top_k: moe.n_experts_per_tok,
            }),
            None => FeedForward::Dense(Mlp { gate: at(Gate), up: at(Up), down: at(Down) }),
        };
        DecoderLayer {
            input_layernorm: self.norm(&arch::norm_name(layer, NormSlot::Input), c),
            self_attn,
            post_attention_layernorm: self.norm(&arch::norm_name(layer, NormSlot::PostAttention), c),
            ffn,
        }
    }
}
