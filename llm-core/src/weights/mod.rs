//! Loading weights: Hugging Face safetensors directories and GGUF files, checked strictly
//! against the model the config describes.

pub mod gguf;
mod names;
pub mod quantized;
mod random;
pub mod safetensors;

use std::path::Path;

use burn::module::Param;
use burn::tensor::{backend::Backend, DType, Tensor, TensorData};
use tracing::info;

pub use gguf::{GgufFile, GgufSource, GgufValue};
pub use names::{expected_tensors, TensorSpec};
pub use quantized::{read_quantized, LinearLayout};
pub use random::RandomSource;
pub use safetensors::SafetensorsSource;

use crate::config::{Architecture, ModelConfig};
use crate::error::{LlmError, Result};
use crate::model::{CausalLm, DecoderLayer, FeedForward};
use crate::nn::{Attention, AttentionKernel, Linear, Mlp, RmsNorm, RotaryEmbedding, SparseMoe};
use crate::quant::QuantExecution;

/// Where `scripts/fetch-models.sh` caches checkpoints: `$LLM_CACHE_DIR`, else `~/.cache/llm-rs`.
pub fn cache_dir() -> std::path::PathBuf {
    std::env::var_os("LLM_CACHE_DIR").map(Into::into).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache/llm-rs")
    })
}

/// Named float tensors from a checkpoint, under Hugging Face names.
pub trait TensorSource {
    /// The directory or file, for messages.
    fn source_name(&self) -> &str;
    /// Every tensor the checkpoint holds.
    fn tensor_names(&self) -> Vec<String>;
    /// Shape of a tensor in PyTorch order.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// Reads a tensor as stored: floats (GGUF blocks dequantised), or the integer tensors of
    /// quantized layouts.
    fn read(&self, name: &str) -> Result<TensorData>;
}

/// Options for building a model from weights.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Float dtype the weights are held in on the device (F32, F16 or BF16).
    pub dtype: DType,
    /// Attention kernel.
    pub attention: AttentionKernel,
    /// How quantized layers run (fused kernel, dequantize per call, or once at load).
    pub quant_execution: QuantExecution,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { dtype: DType::F32, attention: AttentionKernel::Fused, quant_execution: QuantExecution::Auto }
    }
}

/// Loads a model from a Hugging Face directory (with `config.json`) or a `.gguf` file.
pub fn load_model<B: Backend>(path: impl AsRef<Path>, options: LoadOptions, device: &B::Device) -> Result<CausalLm<B>> {
    let path = path.as_ref();
    if path.is_dir() {
        let config = ModelConfig::from_file(path.join("config.json"))?;
        let source = SafetensorsSource::open_dir(path)?;
        build_model(config, &source, options, device)
    } else {
        let source = GgufSource::open(path)?;
        build_model(source.config().clone(), &source, options, device)
    }
}

/// Checks `source` against the tensors `config` needs, then builds the model on `device`.
///
/// Missing, unexpected and mis-shaped tensors are all reported in one
/// [`LlmError::WeightMismatch`].
pub fn build_model<B: Backend>(
    config: ModelConfig,
    source: &dyn TensorSource,
    options: LoadOptions,
    device: &B::Device,
) -> Result<CausalLm<B>> {
    if !matches!(options.dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(LlmError::config("dtype", format!("{:?} is not a float dtype we run (F32, F16, BF16)", options.dtype)));
    }
    check_tensors(&config, source)?;
    let loader = Loader { source, device, dtype: options.dtype, options, config: &config };
    let started = std::time::Instant::now();
    let layers = (0..config.n_layers)
        .map(|i| loader.layer(&config, i, options.attention))
        .collect::<Result<Vec<_>>>()?;
    let lm_head = if config.tie_word_embeddings { None } else { Some(loader.linear("lm_head", false)?) };
    let embed_tokens = Param::from_tensor(loader.tensor("model.embed_tokens.weight")?);
    let norm = RmsNorm::new(loader.tensor("model.norm.weight")?, config.rms_norm_eps);
    let model = CausalLm {
        embed_tokens,
        layers,
        norm,
        lm_head,
        rotary: RotaryEmbedding::new(&config.rope, config.head_dim),
        config,
    };
    info!(source = source.source_name(), seconds = started.elapsed().as_secs_f64(), "loaded weights");
    Ok(model)
}

/// Tensors some checkpoints carry that the model recomputes or shares.
fn ignorable(name: &str, config: &ModelConfig) -> bool {
    name.ends_with("rotary_emb.inv_freq") || (config.tie_word_embeddings && name == "lm_head.weight")
}

fn check_tensors(config: &ModelConfig, source: &dyn TensorSource) -> Result<()> {
    let expected = expected_tensors(config);
    let mut missing = vec![];
    let mut mis_shaped = vec![];
    // Names the checkpoint may hold: the expected ones plus each quantized layer's own tensors
    // (their shapes are checked when the layer is read).
    let mut known = std::collections::HashSet::new();
    for spec in &expected {
        let layout = spec.name.strip_suffix(".weight").map(|p| (p, LinearLayout::detect(source, p)));
        if let Some((prefix, layout)) = layout.filter(|(_, l)| *l != LinearLayout::Dense) {
            let (required, optional) = layout.tensors(source, prefix);
            for suffix in required {
                let name = format!("{prefix}.{suffix}");
                if source.shape(&name).is_none() {
                    missing.push(name.clone());
                }
                known.insert(name);
            }
            known.extend(optional.into_iter().map(|s| format!("{prefix}.{s}")));
            continue;
        }
        known.insert(spec.name.clone());
        match source.shape(&spec.name) {
            None => missing.push(spec.name.clone()),
            Some(shape) if shape != spec.shape => mis_shaped.push((spec.name.clone(), spec.shape.clone(), shape)),
            Some(_) => {}
        }
    }
    let unexpected: Vec<String> = source
        .tensor_names()
        .into_iter()
        .filter(|n| !known.contains(n) && !ignorable(n, config))
        .collect();
    if missing.is_empty() && unexpected.is_empty() && mis_shaped.is_empty() {
        Ok(())
    } else {
        Err(LlmError::WeightMismatch { source_name: source.source_name().to_string(), missing, unexpected, mis_shaped })
    }
}

struct Loader<'a, B: Backend> {
    source: &'a dyn TensorSource,
    device: &'a B::Device,
    dtype: DType,
    options: LoadOptions,
    config: &'a ModelConfig,
}

impl<B: Backend> Loader<'_, B> {
    fn tensor<const D: usize>(&self, name: &str) -> Result<Tensor<B, D>> {
        let data = self.source.read(name)?;
        Ok(Tensor::from_data(data, (self.device, self.dtype)))
    }

    fn linear(&self, prefix: &str, bias: bool) -> Result<Linear<B>> {
        let bias = if bias { Some(self.tensor(&format!("{prefix}.bias"))?) } else { None };
        match LinearLayout::detect(self.source, prefix) {
            LinearLayout::Dense => Ok(Linear::new(self.tensor(&format!("{prefix}.weight"))?, bias)),
            layout => {
                let [d_out, d_in]: [usize; 2] = self.linear_dims(prefix)?;
                let q = read_quantized(self.source, layout, prefix, d_out, d_in, self.config.quantization.as_ref())?;
                Ok(Linear::quantized_as(q, bias, self.options.quant_execution, self.dtype, self.device))
            }
        }
    }

    /// `[d_out, d_in]` of a linear layer, from the config's table of expected tensors.
    fn linear_dims(&self, prefix: &str) -> Result<[usize; 2]> {
        let name = format!("{prefix}.weight");
        expected_tensors(self.config)
            .into_iter()
            .find(|s| s.name == name)
            .and_then(|s| s.shape.try_into().ok())
            .ok_or_else(|| LlmError::Quant { tensor: name, message: "not a linear layer of this model".into() })
    }

    fn mlp(&self, prefix: &str, names: [&str; 3], bias: bool) -> Result<Mlp<B>> {
        Ok(Mlp {
            gate_proj: self.linear(&format!("{prefix}.{}", names[0]), bias)?,
            up_proj: self.linear(&format!("{prefix}.{}", names[1]), bias)?,
            down_proj: self.linear(&format!("{prefix}.{}", names[2]), bias)?,
        })
    }

    fn layer(&self, c: &ModelConfig, i: usize, kernel: AttentionKernel) -> Result<DecoderLayer<B>> {
        let p = format!("model.layers.{i}");
        let self_attn = Attention {
            q_proj: self.linear(&format!("{p}.self_attn.q_proj"), c.qkv_bias)?,
            k_proj: self.linear(&format!("{p}.self_attn.k_proj"), c.qkv_bias)?,
            v_proj: self.linear(&format!("{p}.self_attn.v_proj"), c.qkv_bias)?,
            o_proj: self.linear(&format!("{p}.self_attn.o_proj"), c.o_bias)?,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            sliding_window: c.sliding_window[i],
            kernel,
        };
        let ffn = match (c.architecture, c.moe) {
            (Architecture::Mixtral, Some(moe)) => FeedForward::Moe(SparseMoe {
                gate: self.linear(&format!("{p}.block_sparse_moe.gate"), false)?,
                experts: (0..moe.n_experts)
                    .map(|e| self.mlp(&format!("{p}.block_sparse_moe.experts.{e}"), ["w1", "w3", "w2"], false))
                    .collect::<Result<_>>()?,
                top_k: moe.n_experts_per_tok,
            }),
            _ => FeedForward::Dense(self.mlp(&format!("{p}.mlp"), ["gate_proj", "up_proj", "down_proj"], c.mlp_bias)?),
        };
        Ok(DecoderLayer {
            input_layernorm: RmsNorm::new(self.tensor(&format!("{p}.input_layernorm.weight"))?, c.rms_norm_eps),
            self_attn,
            post_attention_layernorm: RmsNorm::new(
                self.tensor(&format!("{p}.post_attention_layernorm.weight"))?,
                c.rms_norm_eps,
            ),
            ffn,
        })
    }
}
