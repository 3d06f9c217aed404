//! Model configuration: the Hub's `config.json` ([`HfConfig`]) and the validated
//! [`ModelConfig`] the model is built from.

mod hf;
mod quantization;
mod rope;

use std::path::Path;

use serde_json::Value;

pub use hf::HfConfig;
pub use quantization::CheckpointQuantization;
pub use rope::{RopeConfig, RopeScaling, SUPPORTED_ROPE_TYPES};

use crate::error::{LlmError, Result};

/// The `model_type`s this crate runs.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["llama", "mistral", "qwen2", "mixtral"];

/// The architecture family, from `model_type`. It decides the tensor names and bias layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 1/2/3, SmolLM, TinyLlama...
    Llama,
    /// Mistral (sliding-window attention on every layer when set).
    Mistral,
    /// Qwen2 (bias on q/k/v, sliding window on the top layers when enabled).
    Qwen2,
    /// Mixtral sparse mixture of experts.
    Mixtral,
}

impl Architecture {
    fn parse(model_type: &str) -> Result<Self> {
        match model_type {
            "llama" => Ok(Self::Llama),
            "mistral" => Ok(Self::Mistral),
            "qwen2" => Ok(Self::Qwen2),
            "mixtral" => Ok(Self::Mixtral),
            other => Err(LlmError::config(
                "model_type",
                format!("`{other}` is not supported; supported: {}", SUPPORTED_MODEL_TYPES.join(", ")),
            )),
        }
    }
}

/// Sparse mixture-of-experts settings (Mixtral).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoeConfig {
    /// Experts per layer (`num_local_experts`).
    pub n_experts: usize,
    /// Experts each token is routed to (`num_experts_per_tok`).
    pub n_experts_per_tok: usize,
}

/// A validated model configuration with this crate's names.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Architecture family.
    pub architecture: Architecture,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream (`hidden_size`).
    pub d_model: usize,
    /// Width of the MLP's hidden layer (`intermediate_size`).
    pub d_ff: usize,
    /// Number of decoder layers.
    pub n_layers: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (GQA when fewer than `n_heads`, MQA when 1).
    pub n_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Longest context the checkpoint declares.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary embedding settings.
    pub rope: RopeConfig,
    /// The LM head reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub o_bias: bool,
    /// Bias on the MLP projections.
    pub mlp_bias: bool,
    /// Sliding-window size per layer (`None` = full attention for that layer).
    pub sliding_window: Vec<Option<usize>>,
    /// Mixture-of-experts settings, for Mixtral.
    pub moe: Option<MoeConfig>,
    /// Beginning-of-sequence token.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence tokens (one or several).
    pub eos_token_ids: Vec<u32>,
    /// Padding token.
    pub pad_token_id: Option<u32>,
    /// How the checkpoint's linear layers are quantized (`quantization_config`), if at all.
    pub quantization: Option<CheckpointQuantization>,
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| LlmError::io(path, e))?;
        let hf: HfConfig =
            serde_json::from_str(&text).map_err(|source| LlmError::Json { path: path.to_path_buf(), source })?;
        Self::from_hf(&hf)
    }

    /// Reads and validates a `config.json` already parsed as JSON (`origin` names it in errors).
    pub fn from_json(value: &Value, origin: &Path) -> Result<Self> {
        let hf: HfConfig = serde_json::from_value(value.clone()).map_err(|source| LlmError::Json { path: origin.to_path_buf(), source })?;
        Self::from_hf(&hf)
    }

    /// Validates a parsed `config.json`. Errors name the field and what is supported.
    pub fn from_hf(hf: &HfConfig) -> Result<Self> {
        let model_type = hf.model_type.as_deref().ok_or_else(|| {
            LlmError::config("model_type", format!("is missing; supported: {}", SUPPORTED_MODEL_TYPES.join(", ")))
        })?;
        let architecture = Architecture::parse(model_type)?;
        let quantization = hf.quantization_config.as_ref().map(CheckpointQuantization::from_json).transpose()?;
        if let Some(act) = hf.hidden_act.as_deref() {
            if act != "silu" {
                return Err(LlmError::config("hidden_act", format!("`{act}` is not supported; supported: silu")));
            }
        }
        if let Some(p) = hf.partial_rotary_factor {
            if p != 1.0 {
                return Err(LlmError::config("partial_rotary_factor", format!("{p} is not supported; supported: 1.0")));
            }
        }
        let d_model = required(hf.hidden_size, "hidden_size")?;
        let n_heads = required(hf.num_attention_heads, "num_attention_heads")?;
        if n_heads == 0 {
            return Err(LlmError::config("num_attention_heads", "must be positive"));
        }
        let n_kv_heads = hf.num_key_value_heads.unwrap_or(n_heads);
        let head_dim = match hf.head_dim {
            Some(h) => h,
            None if d_model % n_heads == 0 => d_model / n_heads,
            None => {
                return Err(LlmError::config(
                    "head_dim",
                    format!("absent, and hidden_size {d_model} is not divisible by num_attention_heads {n_heads}"),
                ))
            }
        };
        let n_layers = bounded(required(hf.num_hidden_layers, "num_hidden_layers")?, "num_hidden_layers", MAX_LAYERS)?;
        let max_position_embeddings = hf.max_position_embeddings.unwrap_or(2048);
        let rope = RopeConfig::from_json(
            hf.rope_parameters.as_ref(),
            hf.rope_theta,
            hf.rope_scaling.as_ref(),
            max_position_embeddings,
        )?;
        let (qkv_bias, o_bias) = match architecture {
            Architecture::Qwen2 => (true, false),
            Architecture::Llama => {
                let b = hf.attention_bias.unwrap_or(false);
                (b, b)
            }
            Architecture::Mistral | Architecture::Mixtral => (false, false),
        };
        let moe = match architecture {
            Architecture::Mixtral => Some(MoeConfig {
                n_experts: required(hf.num_local_experts, "num_local_experts")?,
                n_experts_per_tok: required(hf.num_experts_per_tok, "num_experts_per_tok")?,
            }),
            _ => None,
        };
        let config = Self {
            architecture,
            vocab_size: required(hf.vocab_size, "vocab_size")?,
            d_model,
            d_ff: required(hf.intermediate_size, "intermediate_size")?,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            max_position_embeddings,
            rms_norm_eps: hf.rms_norm_eps.unwrap_or(1e-6),
            rope,
            tie_word_embeddings: hf.tie_word_embeddings.unwrap_or(false),
            qkv_bias,
            o_bias,
            mlp_bias: architecture == Architecture::Llama && hf.mlp_bias.unwrap_or(false),
            sliding_window: sliding_windows(hf, architecture, n_layers)?,
            moe,
            bos_token_id: token_ids("bos_token_id", hf.bos_token_id.as_ref())?.first().copied(),
            eos_token_ids: token_ids("eos_token_id", hf.eos_token_id.as_ref())?,
            pad_token_id: token_ids("pad_token_id", hf.pad_token_id.as_ref())?.first().copied(),
            quantization,
        };
        config.validate()?;
        Ok(config)
    }

    /// A transformers 5 `config.json` for this configuration (without `quantization_config`,
    /// which writers of quantized checkpoints add). [`Self::from_hf`] reads it back unchanged.
    pub fn to_hf_json(&self) -> Value {
        let model_type = match self.architecture {
            Architecture::Llama => "llama",
            Architecture::Mistral => "mistral",
            Architecture::Qwen2 => "qwen2",
            Architecture::Mixtral => "mixtral",
        };
        let architectures = match self.architecture {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Mistral => "MistralForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
            Architecture::Mixtral => "MixtralForCausalLM",
        };
        let mut v = serde_json::json!({
            "architectures": [architectures],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.d_model,
            "intermediate_size": self.d_ff,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "hidden_act": "silu",
            "rope_parameters": self.rope.to_json(),
            "tie_word_embeddings": self.tie_word_embeddings,
            "attention_bias": self.qkv_bias,
            "mlp_bias": self.mlp_bias,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": match self.eos_token_ids.as_slice() {
                [one] => Value::from(*one),
                many => Value::from(many.to_vec()),
            },
            "pad_token_id": self.pad_token_id,
            "dtype": "float32",
        });
        if let Some(w) = self.sliding_window.iter().flatten().next() {
            v["sliding_window"] = (*w).into();
            v["layer_types"] = self
                .sliding_window
                .iter()
                .map(|s| if s.is_some() { "sliding_attention" } else { "full_attention" })
                .collect::<Vec<_>>()
                .into();
        }
        if let Some(moe) = self.moe {
            v["num_local_experts"] = moe.n_experts.into();
            v["num_experts_per_tok"] = moe.n_experts_per_tok.into();
        }
        v
    }

    /// Checks the invariants the model relies on. Called by [`Self::from_hf`]; call it again
    /// after editing fields by hand.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("vocab_size", self.vocab_size, MAX_DIM),
            ("hidden_size", self.d_model, MAX_DIM),
            ("intermediate_size", self.d_ff, MAX_DIM),
            ("num_hidden_layers", self.n_layers, MAX_LAYERS),
            ("num_attention_heads", self.n_heads, MAX_DIM),
            ("num_key_value_heads", self.n_kv_heads, MAX_DIM),
            ("head_dim", self.head_dim, MAX_DIM),
        ];
        for (field, v, max) in sizes {
            if v == 0 {
                return Err(LlmError::config(field, "must be positive"));
            }
            bounded(v, field, max)?;
        }
        if let Some(moe) = self.moe {
            bounded(moe.n_experts, "num_local_experts", MAX_LAYERS)?;
        }
        bounded(self.n_heads * self.head_dim, "num_attention_heads * head_dim", MAX_DIM)?;
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(LlmError::config(
                "num_key_value_heads",
                format!("{} does not divide num_attention_heads {}", self.n_kv_heads, self.n_heads),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(LlmError::config("head_dim", format!("must be even for RoPE, got {}", self.head_dim)));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return Err(LlmError::config("rms_norm_eps", format!("must be positive, got {}", self.rms_norm_eps)));
        }
        if self.sliding_window.len() != self.n_layers {
            return Err(LlmError::config("layer_types", format!("expected {} entries", self.n_layers)));
        }
        if let Some(moe) = self.moe {
            if moe.n_experts_per_tok == 0 || moe.n_experts_per_tok > moe.n_experts {
                return Err(LlmError::config(
                    "num_experts_per_tok",
                    format!("must be in 1..={}, got {}", moe.n_experts, moe.n_experts_per_tok),
                ));
            }
        }
        Ok(())
    }

    /// Query heads that share one key/value head.
    pub fn n_rep(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }
}

/// Layers (and experts) a config may claim: 32x the deepest published model (Llama 3.1 405B,
/// 126 layers), so a lying `config.json` fails before anything is built per layer.
pub const MAX_LAYERS: usize = 4096;

/// Any one dimension (vocabulary, widths, heads): 64x the largest published (256k-token
/// vocabularies). With every dimension at most 2^24 and experts at most 2^12, a tensor's size
/// (two dimensions, times an expert count for stacked experts) stays below 2^60: no overflow.
pub const MAX_DIM: usize = 1 << 24;

fn bounded(v: usize, field: &str, max: usize) -> Result<usize> {
    if v > max {
        return Err(LlmError::config(field, format!("{v} exceeds the supported maximum {max}")));
    }
    Ok(v)
}

fn required(v: Option<usize>, field: &str) -> Result<usize> {
    v.ok_or_else(|| LlmError::config(field, "is required"))
}

/// Per-layer sliding windows: explicit `layer_types` (transformers 5) win; otherwise Mistral and
/// Mixtral apply `sliding_window` everywhere and Qwen2 from `max_window_layers` up when
/// `use_sliding_window` is set. Llama has no sliding window.
fn sliding_windows(hf: &HfConfig, arch: Architecture, n_layers: usize) -> Result<Vec<Option<usize>>> {
    let window = hf.sliding_window;
    if let Some(types) = &hf.layer_types {
        if types.len() != n_layers {
            return Err(LlmError::config(
                "layer_types",
                format!("has {} entries for {n_layers} layers", types.len()),
            ));
        }
        return types
            .iter()
            .map(|t| match t.as_str() {
                "full_attention" => Ok(None),
                "sliding_attention" => window
                    .map(Some)
                    .ok_or_else(|| LlmError::config("sliding_window", "required by layer_types `sliding_attention`")),
                other => Err(LlmError::config(
                    "layer_types",
                    format!("`{other}` is not supported; supported: full_attention, sliding_attention"),
                )),
            })
            .collect();
    }
    Ok(match arch {
        Architecture::Llama => vec![None; n_layers],
        Architecture::Mistral | Architecture::Mixtral => vec![window; n_layers],
        Architecture::Qwen2 => {
            let on = hf.use_sliding_window.unwrap_or(false);
            let from = hf.max_window_layers.unwrap_or(n_layers);
            (0..n_layers).map(|i| if on && i >= from { window } else { None }).collect()
        }
    })
}

/// Token ids are written as an integer, a list of integers, or null.
fn token_ids(field: &str, v: Option<&Value>) -> Result<Vec<u32>> {
    let one = |x: &Value| {
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| LlmError::config(field, format!("expected a token id, got {x}")))
    };
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(x) => Ok(vec![one(x)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ModelConfig> {
        let hf: HfConfig = serde_json::from_str(json).expect("test JSON parses");
        ModelConfig::from_hf(&hf)
    }

    const BASE: &str = r#""vocab_size": 32, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4"#;

    #[test]
    fn unknown_model_type_names_field_and_lists_supported() {
        let err = parse(&format!(r#"{{"model_type": "gpt2", {BASE}}}"#)).unwrap_err().to_string();
        assert!(err.contains("model_type") && err.contains("gpt2") && err.contains("mixtral"), "{err}");
    }

    #[test]
    fn unknown_rope_type_is_rejected_with_supported_list() {
        let err = parse(&format!(
            r#"{{"model_type": "llama", {BASE}, "rope_scaling": {{"rope_type": "longrope", "factor": 2.0}}}}"#
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("rope_scaling.rope_type") && err.contains("longrope") && err.contains("yarn"), "{err}");
    }

    #[test]
    fn head_dim_is_derived_and_kv_heads_default_to_heads() {
        let c = parse(&format!(r#"{{"model_type": "llama", {BASE}}}"#)).unwrap();
        assert_eq!((c.head_dim, c.n_kv_heads, c.n_rep()), (4, 4, 1));
        assert_eq!(c.rope, RopeConfig { rope_theta: 10_000.0, scaling: RopeScaling::Default });
    }

    #[test]
    fn qwen2_has_qkv_bias_and_top_layer_sliding_window() {
        let c = parse(&format!(
            r#"{{"model_type": "qwen2", {BASE}, "sliding_window": 8, "use_sliding_window": true,
                "max_window_layers": 1, "eos_token_id": [5, 6]}}"#
        ))
        .unwrap();
        assert!(c.qkv_bias && !c.o_bias);
        assert_eq!(c.sliding_window, vec![None, Some(8)]);
        assert_eq!(c.eos_token_ids, vec![5, 6]);
    }

    #[test]
    fn gqa_must_divide_heads() {
        let err = parse(&format!(r#"{{"model_type": "mistral", {BASE}, "num_key_value_heads": 3}}"#)).unwrap_err();
        assert!(err.to_string().contains("num_key_value_heads"), "{err}");
    }

    #[test]
    fn unsupported_activation_is_rejected() {
        let err = parse(&format!(r#"{{"model_type": "llama", {BASE}, "hidden_act": "gelu"}}"#)).unwrap_err();
        assert!(err.to_string().contains("hidden_act"), "{err}");
    }
}
