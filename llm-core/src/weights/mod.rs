//! Loading weights: Hugging Face safetensors directories and GGUF files, checked strictly
//! against the model the config describes.

pub mod gguf;
pub mod quantized;
pub(crate) mod random;
pub mod safetensors;

use std::path::Path;

use burn::module::Param;
use burn::tensor::{backend::Backend, DType, Tensor, TensorData};
use tracing::info;

pub use gguf::{GgufFile, GgufSource, GgufValue};
pub use crate::model::arch::{expected_tensors, TensorSpec};
pub use crate::model::init::InitWeights;
pub use quantized::{read_quantized, write_quantized, AffineFormat, CheckpointLayout};
pub use random::RandomSource;
pub use safetensors::SafetensorsSource;

use crate::config::ModelConfig;
use crate::error::{LlmError, Result};
use crate::model::arch::{self, LinearId, NormSlot};
use crate::model::CausalLm;
use crate::nn::{AttentionKernel, Linear, TokenEmbedding};
use crate::quant::{QuantExecution, QuantLinear, QuantizedWeight};

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
    /// A linear weight held in GGML blocks, as stored (rows in Hugging Face order); `None`
    /// when the source holds `name` as floats or has no such formats.
    fn read_blocks(&self, name: &str) -> Option<Result<crate::quant::GgmlWeight>> {
        let _ = name;
        None
    }
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
    /// GGUF linear weights in a quantized block type stay in their blocks (run by integer
    /// dot products on the CPU, dequantized onto GPU devices); `false` dequantizes them to
    /// `dtype` at load, the path used before blocks ran as stored. Autodiff backends always
    /// dequantize (the layers stay trainable parameters).
    pub ggml_blocks: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { dtype: DType::F32, attention: AttentionKernel::Fused, quant_execution: QuantExecution::Auto, ggml_blocks: true }
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

/// Builds the model `config` describes on `device`, then fills it from `source`
/// ([`ModelConfig::init_with`] then [`load_into`]); the built weights are lazy and never
/// allocated, so peak memory is the checkpoint's.
///
/// Missing, unexpected and mis-shaped tensors are all reported in one
/// [`LlmError::WeightMismatch`].
pub fn build_model<B: Backend>(
    config: ModelConfig,
    source: &dyn TensorSource,
    options: LoadOptions,
    device: &B::Device,
) -> Result<CausalLm<B>> {
    // Checked before anything is built: a config claiming a million layers beside a 2-layer
    // checkpoint fails here at once instead of building (and listing) a million layers.
    check_counts(&config, source)?;
    // And every tensor's name and shape, before the model (its RoPE tables) is built.
    check_tensors(&config, source)?;
    check_dtype(options.dtype)?;
    let mut model = config.init_with::<B>(InitWeights::Zeros, &options, device);
    fill(&mut model, source, &options)?;
    Ok(model)
}

fn check_dtype(dtype: DType) -> Result<()> {
    if matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
        Ok(())
    } else {
        Err(LlmError::config("dtype", format!("{dtype:?} is not a float dtype we run (F32, F16, BF16)")))
    }
}

/// Fills `model` with the tensors of `source`, checked first against the tensors its config
/// needs: missing, unexpected and mis-shaped tensors are all reported in one
/// [`LlmError::WeightMismatch`] and the model is left as it was. Linear layers stored in a
/// quantized layout (GPTQ, bitsandbytes, our int8) become quantized layers that run as
/// `options.quant_execution` says; everything is held in `options.dtype` on the model's device.
pub fn load_into<B: Backend>(model: &mut CausalLm<B>, source: &dyn TensorSource, options: &LoadOptions) -> Result<()> {
    check_dtype(options.dtype)?;
    check_tensors(&model.config, source)?;
    fill(model, source, options)
}

/// [`load_into`] after its checks.
fn fill<B: Backend>(model: &mut CausalLm<B>, source: &dyn TensorSource, options: &LoadOptions) -> Result<()> {
    let started = std::time::Instant::now();
    let device = model.embed_tokens.device();
    let loader = Loader { source, device: &device, options, config: &model.config };
    let mut linears = vec![];
    for id in arch::linear_ids(&model.config) {
        linears.push((id, loader.linear(id)?));
    }
    let embed = loader.embedding()?;
    let norm = loader.tensor(arch::FINAL_NORM.0)?;
    let mut norms = vec![];
    for i in 0..model.config.n_layers {
        norms.push([loader.tensor(&arch::norm_name(i, NormSlot::Input))?, loader.tensor(&arch::norm_name(i, NormSlot::PostAttention))?]);
    }
    // Everything read: commit.
    for (id, linear) in linears {
        let slot = model.linear_at_mut(id).ok_or_else(|| LlmError::config("model", format!("{} is not a layer of the built model", id.hf())))?;
        *slot = linear;
    }
    model.embed_tokens = embed;
    model.norm.weight = Param::from_tensor(norm);
    for (layer, [input, post]) in model.layers.iter_mut().zip(norms) {
        layer.input_layernorm.weight = Param::from_tensor(input);
        layer.post_attention_layernorm.weight = Param::from_tensor(post);
    }
    info!(source = source.source_name(), seconds = started.elapsed().as_secs_f64(), "loaded weights");
    Ok(())
}

/// Layers (experts) the config may claim beyond those the checkpoint holds before the mismatch
/// is reported as a wrong count rather than listed tensor by tensor.
const LISTED_EXTRA: usize = 16;

/// `num_hidden_layers` and `num_local_experts` against the layers and experts `source` holds
/// tensors for (read from their names), before any per-layer work: a config claiming a million
/// layers beside a 2-layer file is a config error at once, not a million layers built and
/// listed. A few layers too many are left to the tensor-by-tensor report.
fn check_counts(config: &ModelConfig, source: &dyn TensorSource) -> Result<()> {
    let names = source.tensor_names();
    let count = |index: fn(&str) -> Option<usize>| names.iter().filter_map(|n| index(n)).max().map_or(0, |i| i + 1);
    let mismatch = |field: &str, claimed: usize, held: usize| {
        LlmError::config(field, format!("the config says {claimed}, but {} holds tensors for {held}", source.source_name()))
    };
    let layers = count(arch::layer_of);
    if config.n_layers > layers + LISTED_EXTRA {
        return Err(mismatch("num_hidden_layers", config.n_layers, layers));
    }
    if let Some(moe) = config.moe.filter(|_| arch::is_moe(config)) {
        let experts = count(arch::expert_of);
        if moe.n_experts > experts + LISTED_EXTRA {
            return Err(mismatch("num_local_experts", moe.n_experts, experts));
        }
    }
    Ok(())
}

/// Tensors some checkpoints carry that the model recomputes or shares.
fn ignorable(name: &str, config: &ModelConfig) -> bool {
    name.ends_with("rotary_emb.inv_freq") || (config.tie_word_embeddings && name == arch::LM_HEAD.0)
}

fn check_tensors(config: &ModelConfig, source: &dyn TensorSource) -> Result<()> {
    let expected = expected_tensors(config);
    let mut missing = vec![];
    let mut mis_shaped = vec![];
    // Names the checkpoint may hold: the expected ones plus each quantized layer's own tensors
    // (their shapes are checked when the layer is read).
    let mut known = std::collections::HashSet::new();
    for spec in &expected {
        let layout = spec.name.strip_suffix(".weight").map(|p| (p, CheckpointLayout::detect(source, p, config.quantization.as_ref())));
        if let Some((prefix, layout)) = layout.filter(|(_, l)| *l != CheckpointLayout::Dense) {
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
    options: &'a LoadOptions,
    config: &'a ModelConfig,
}

impl<B: Backend> Loader<'_, B> {
    fn tensor<const D: usize>(&self, name: &str) -> Result<Tensor<B, D>> {
        let data = self.source.read(name)?;
        Ok(Tensor::from_data(data, (self.device, self.options.dtype)))
    }

    /// Whether GGML blocks stay as stored (never under autodiff: the layers stay trainable).
    fn keep_blocks(&self) -> bool {
        self.options.ggml_blocks && !B::ad_enabled(self.device)
    }

    /// The token table: GGML blocks kept as stored (rows dequantized on lookup, a tied head
    /// run from them), else floats.
    fn embedding(&self) -> Result<TokenEmbedding<B>> {
        let name = arch::EMBED.0;
        if let Some(blocks) = self.keep_blocks().then(|| self.source.read_blocks(name)).flatten() {
            let q = QuantLinear::new(QuantizedWeight::Ggml(blocks?), self.options.quant_execution, self.options.dtype, self.device);
            return Ok(TokenEmbedding::Quantized(q));
        }
        Ok(TokenEmbedding::dense_table(self.tensor(name)?))
    }

    fn linear(&self, id: LinearId) -> Result<Linear<B>> {
        let prefix = id.hf();
        let bias = if id.has_bias(self.config) { Some(self.tensor(&format!("{prefix}.bias"))?) } else { None };
        let name = format!("{prefix}.weight");
        // Under autodiff the layers stay dense parameters, as a fine-tune of a GGUF expects.
        if let Some(blocks) = self.keep_blocks().then(|| self.source.read_blocks(&name)).flatten() {
            let q = QuantizedWeight::Ggml(blocks?);
            return Ok(Linear::quantized_as(q, bias, self.options.quant_execution, self.options.dtype, self.device));
        }
        match CheckpointLayout::detect(self.source, &prefix, self.config.quantization.as_ref()) {
            CheckpointLayout::Dense => Ok(Linear::new(self.tensor(&name)?, bias)),
            layout => {
                let [d_out, d_in] = id.shape(self.config);
                let q = read_quantized(self.source, layout, &prefix, d_out, d_in, self.config.quantization.as_ref())?;
                Ok(Linear::quantized_as(q, bias, self.options.quant_execution, self.options.dtype, self.device))
            }
        }
    }
}
