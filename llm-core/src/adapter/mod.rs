//! PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors` exactly as peft
//! writes them, applied to a loaded model without merging, or merged into its weights.

mod config;
mod gguf;

use std::path::{Path, PathBuf};

pub use config::{AdapterConfigJson, LoraConfig, TargetModules};
pub use gguf::{apply_lora_gguf, write_lora_gguf};

use burn::tensor::{backend::Backend, ElementConversion, Tensor};
use serde_json::Value;

use crate::error::{LlmError, Result};
use crate::model::CausalLm;
use crate::nn::LoraAdapter;
use crate::weights::{SafetensorsSource, TensorSource};

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

    /// Module prefixes ([`crate::model::LinearId::hf`] names) the adapter holds LoRA weights for.
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
            lora.dropout = self.config.dropout;
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

/// Merges every adapter into its weight (`W += s·B·A`, [`Linear::merge_lora`]) and removes
/// it; returns how many.
///
/// Checks every update for NaN/Inf before changing anything (peft's `safe_merge`), so a bad
/// update leaves the model as it was. Each merged weight is checked again before it is
/// committed; that second check fails only for a base that itself holds NaN/Inf (or an f16
/// overflow), and then the layers before it are already merged. A quantized base is
/// dequantized first, so the merged layer is dense.
pub fn merge_adapters<B: Backend>(model: &mut CausalLm<B>) -> Result<usize> {
    let names: Vec<String> = model.linears().into_iter().filter(|(_, l)| l.lora.is_some()).map(|(n, _)| n).collect();
    for n in &names {
        let lora = model.linear_mut(n).and_then(|l| l.lora.as_ref()).expect("listed above");
        if !all_finite(lora.delta_weight()) {
            return Err(LlmError::Config { field: n.clone(), message: "LoRA update holds NaN or Inf; nothing was merged".into() });
        }
    }
    for n in &names {
        model.linear_mut(n).expect("listed above").merge_lora().map_err(|e| in_layer(e, n))?;
    }
    Ok(names.len())
}

/// Whether every element is finite: a NaN or Inf makes the sum of magnitudes non-finite. The
/// sum runs in f32, so an f16 layer's healthy weights (whose |W| sums past 65504) pass.
pub(crate) fn all_finite<B: Backend>(t: Tensor<B, 2>) -> bool {
    t.cast(burn::tensor::DType::F32).abs().sum().into_scalar().elem::<f32>().is_finite()
}

fn in_layer(e: LlmError, layer: &str) -> LlmError {
    match e {
        LlmError::Config { message, .. } => LlmError::Config { field: layer.to_string(), message },
        other => other,
    }
}
