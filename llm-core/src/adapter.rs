//! PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors` exactly as peft
//! writes them, applied to a loaded model without merging, or merged into its weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{backend::Backend, ElementConversion, Tensor};
use serde_json::Value;

use crate::error::{LlmError, Result};
use crate::model::CausalLm;
use crate::nn::{Linear, LoraAdapter};
use crate::weights::{SafetensorsSource, TensorSource};

/// The LoRA settings of `adapter_config.json` (peft's names).
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Default rank.
    pub r: usize,
    /// Default alpha.
    pub lora_alpha: f64,
    /// Scale by `alpha / √r` instead of `alpha / r`.
    pub use_rslora: bool,
    /// Module names (suffixes) adapted, or `["all-linear"]`.
    pub target_modules: Vec<String>,
    /// Per-module rank overrides (key matched as a dotted suffix of the module name).
    pub rank_pattern: BTreeMap<String, usize>,
    /// Per-module alpha overrides.
    pub alpha_pattern: BTreeMap<String, f64>,
    /// Modules trained in full alongside the adapter.
    pub modules_to_save: Vec<String>,
    /// Dropout on the adapter's input during training.
    pub lora_dropout: f64,
}

impl LoraConfig {
    /// Parses peft's `adapter_config.json`; settings this runtime does not implement (DoRA,
    /// non-LoRA PEFT types, `fan_in_fan_out`) are errors naming the field.
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let field = |name: &str, message: String| LlmError::Config { field: format!("{}: {name}", path.display()), message };
        match v.get("peft_type").and_then(Value::as_str) {
            Some("LORA") | None => {}
            Some(other) => return Err(field("peft_type", format!("`{other}` is not supported; supported: LORA"))),
        }
        for flag in ["use_dora", "fan_in_fan_out"] {
            if v.get(flag).and_then(Value::as_bool) == Some(true) {
                return Err(field(flag, "true is not supported".into()));
            }
        }
        let r = v.get("r").and_then(Value::as_u64).ok_or_else(|| field("r", "missing or not an integer".into()))? as usize;
        let strings = |key: &str| -> Vec<String> {
            match v.get(key) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                _ => vec![],
            }
        };
        let map = |key: &str| -> BTreeMap<String, f64> {
            v.get(key)
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, x)| x.as_f64().map(|f| (k.clone(), f))).collect())
                .unwrap_or_default()
        };
        Ok(Self {
            r,
            lora_alpha: v.get("lora_alpha").and_then(Value::as_f64).unwrap_or(8.0),
            use_rslora: v.get("use_rslora").and_then(Value::as_bool).unwrap_or(false),
            target_modules: strings("target_modules"),
            rank_pattern: map("rank_pattern").into_iter().map(|(k, x)| (k, x as usize)).collect(),
            alpha_pattern: map("alpha_pattern"),
            modules_to_save: strings("modules_to_save"),
            lora_dropout: v.get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0),
        })
    }

    /// `(r, alpha, scaling)` for the module `name` (`model.layers.0.self_attn.q_proj`).
    pub fn scaling_for(&self, name: &str) -> (usize, f64, f64) {
        let matches = |key: &str| name == key || name.ends_with(&format!(".{key}"));
        let r = self.rank_pattern.iter().find(|(k, _)| matches(k)).map_or(self.r, |(_, &r)| r);
        let alpha = self.alpha_pattern.iter().find(|(k, _)| matches(k)).map_or(self.lora_alpha, |(_, &a)| a);
        let scaling = if self.use_rslora { alpha / (r as f64).sqrt() } else { alpha / r as f64 };
        (r, alpha, scaling)
    }
}

/// A PEFT LoRA adapter directory.
pub struct PeftAdapter {
    /// Its `adapter_config.json`.
    pub config: LoraConfig,
    /// The directory.
    pub dir: PathBuf,
    tensors: SafetensorsSource,
}

/// peft's prefix for every tensor of a causal-LM adapter.
const PREFIX: &str = "base_model.model.";

impl PeftAdapter {
    /// Reads `adapter_config.json` and maps `adapter_model.safetensors`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let path = dir.join("adapter_config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| LlmError::io(&path, e))?;
        let json: Value = serde_json::from_str(&text).map_err(|source| LlmError::Json { path: path.clone(), source })?;
        let config = LoraConfig::from_json(&json, &path)?;
        let tensors = SafetensorsSource::open_files(
            dir.display().to_string(),
            &[dir.join("adapter_model.safetensors")],
        )?;
        Ok(Self { config, dir: dir.to_path_buf(), tensors })
    }

    /// Module prefixes (`model.layers.0.self_attn.q_proj`) the adapter holds LoRA weights for.
    pub fn modules(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tensors
            .tensor_names()
            .iter()
            .filter_map(|n| n.strip_prefix(PREFIX)?.strip_suffix(".lora_A.weight").map(str::to_string))
            .collect();
        out.sort();
        out
    }

    /// Attaches the adapter to `model` (unmerged): every `lora_A`/`lora_B` pair goes onto the
    /// linear layer of the same name. Tensors that match no layer, are missing their pair, or
    /// have the wrong shape are errors listing them; returns the adapted module names.
    pub fn apply<B: Backend>(&self, model: &mut CausalLm<B>) -> Result<Vec<String>> {
        let modules = self.modules();
        let known: Vec<String> = modules
            .iter()
            .flat_map(|m| [format!("{PREFIX}{m}.lora_A.weight"), format!("{PREFIX}{m}.lora_B.weight")])
            .collect();
        let unexpected: Vec<String> = self.tensors.tensor_names().into_iter().filter(|n| !known.contains(n)).collect();
        let unknown_modules: Vec<String> = modules.iter().filter(|m| model.linear_mut(m).is_none()).cloned().collect();
        if !unexpected.is_empty() || !unknown_modules.is_empty() {
            let mut names = model.linears().into_iter().map(|(n, _)| n).collect::<Vec<_>>();
            names.truncate(12);
            return Err(LlmError::Config {
                field: format!("{}: adapter_model.safetensors", self.dir.display()),
                message: format!(
                    "unsupported tensors {unexpected:?}; modules not in the model {unknown_modules:?} (the model's linear layers: {}, ...)",
                    names.join(", ")
                ),
            });
        }
        let (dtype, device) = (model.dtype(), model.device());
        for m in &modules {
            let read = |suffix: &str| -> Result<Tensor<B, 2>> {
                let data = self.tensors.read(&format!("{PREFIX}{m}.{suffix}"))?;
                Ok(Tensor::from_data(data, (&device, dtype)))
            };
            let (a, b) = (read("lora_A.weight")?, read("lora_B.weight")?);
            let linear = model.linear_mut(m).expect("checked above");
            let (d_out, d_in) = linear.dims();
            let (r, _, scaling) = self.config.scaling_for(m);
            if a.dims() != [r, d_in] || b.dims() != [d_out, r] {
                return Err(LlmError::Shape {
                    what: format!("{m} LoRA A/B (r = {r})"),
                    expected: format!("A [{r}, {d_in}], B [{d_out}, {r}]"),
                    got: [a.dims(), b.dims()].concat(),
                });
            }
            let mut lora = LoraAdapter::new(a, b, scaling);
            lora.dropout = self.config.lora_dropout;
            linear.lora = Some(lora);
        }
        Ok(modules)
    }
}

/// Turns every adapter of `model` on or off (off = the base model, peft's `disable_adapter`).
pub fn set_adapters_enabled<B: Backend>(model: &mut CausalLm<B>, enabled: bool) {
    let names: Vec<String> = model.linears().into_iter().map(|(n, _)| n).collect();
    for n in names {
        if let Some(l) = model.linear_mut(&n).and_then(|l| l.lora.as_mut()) {
            l.enabled = enabled;
        }
    }
}

/// Merges every adapter into its weight (`W += s·B·A`) and removes it; returns how many.
///
/// Checks each update for NaN/Inf before changing anything (peft's `safe_merge`). A quantized
/// base is dequantized first, so the merged layer is dense.
pub fn merge_adapters<B: Backend>(model: &mut CausalLm<B>) -> Result<usize> {
    let names: Vec<String> = model.linears().into_iter().filter(|(_, l)| l.lora.is_some()).map(|(n, _)| n).collect();
    for n in &names {
        let delta = model.linear_mut(n).and_then(|l| l.lora.as_ref()).expect("listed above").delta_weight();
        // A NaN or Inf anywhere makes the sum of magnitudes non-finite.
        let finite = delta.abs().sum().into_scalar().elem::<f32>().is_finite();
        if !finite {
            return Err(LlmError::Config { field: n.clone(), message: "LoRA update holds NaN or Inf; nothing was merged".into() });
        }
    }
    for n in &names {
        let linear = model.linear_mut(n).expect("listed above");
        merge_one(linear);
    }
    Ok(names.len())
}

fn merge_one<B: Backend>(linear: &mut Linear<B>) {
    if let Some(lora) = linear.lora.take() {
        let merged = linear.dense_weight() + lora.delta_weight();
        let bias = linear.bias.take().map(|b| b.val());
        *linear = Linear::new(merged, bias);
    }
}
