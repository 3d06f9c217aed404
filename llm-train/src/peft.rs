//! Writing adapters as peft does (`adapter_config.json` + `adapter_model.safetensors`) and
//! merged models as plain Hugging Face checkpoints. Reading is llm-core's
//! [`llm_core::adapter::PeftAdapter`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use llm_core::adapter::merge_adapters;
use llm_core::{CausalLm, Tokenizer};
use serde_json::{json, Value};

use crate::error::{Result, TrainError};
use crate::lora::LoraSpec;
use crate::params::{is_lora, read_params};

/// peft's prefix for every tensor of a causal-LM adapter.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// `adapter_config.json` for `spec` with every key peft 0.21 writes (so peft's
/// `LoraConfig.from_pretrained` and our loader read it alike).
pub fn adapter_config_json(spec: &LoraSpec, base_model: &str) -> Value {
    json!({
        "alora_invocation_tokens": null,
        "alpha_pattern": spec.alpha_pattern,
        "arrow_config": null,
        "auto_mapping": null,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "corda_config": null,
        "ensure_weight_tying": false,
        "eva_config": null,
        "exclude_modules": null,
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "kasa_config": null,
        "layer_replication": null,
        "layers_pattern": null,
        "layers_to_transform": null,
        "loftq_config": {},
        "lora_alpha": spec.alpha,
        "lora_bias": false,
        "lora_dropout": spec.dropout,
        "lora_ga_config": null,
        "megatron_config": null,
        "megatron_core": "megatron.core",
        "modules_to_save": null,
        "monteclora_config": null,
        "peft_type": "LORA",
        "peft_version": "0.21.2",
        "qalora_group_size": 16,
        "r": spec.r,
        "rank_pattern": spec.rank_pattern,
        "revision": null,
        "target_modules": spec.targets.to_json(),
        "target_parameters": null,
        "task_type": "CAUSAL_LM",
        "trainable_token_indices": null,
        "use_bdlora": null,
        "use_dora": false,
        "use_qalora": false,
        "use_rslora": spec.use_rslora,
        "velora_config": null,
    })
}

/// Writes the adapters `model` carries to `dir` as a peft adapter directory; returns the tensor
/// names written. The directory is built under a temporary name and renamed into place.
pub fn save_adapter<B: Backend>(model: &CausalLm<B>, spec: &LoraSpec, base_model: &str, dir: impl AsRef<Path>) -> Result<Vec<String>> {
    let dir = dir.as_ref();
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = read_params(model, is_lora)
        .into_iter()
        .map(|(name, (shape, v))| (format!("{PEFT_PREFIX}{name}"), shape, v))
        .collect();
    if tensors.is_empty() {
        return Err(TrainError::config("adapter", "the model carries no LoRA adapter to save"));
    }
    let mut config = adapter_config_json(spec, base_model);
    if spec.targets == crate::lora::TargetModules::AllLinear {
        // peft saves `all-linear` expanded to the module names it matched.
        let mut names: Vec<String> = model
            .linears()
            .into_iter()
            .filter(|(_, l)| l.lora.is_some())
            .filter_map(|(n, _)| n.rsplit('.').next().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        config["target_modules"] = names.into();
    }
    write_dir_atomically(dir, |tmp| {
        write_f32_safetensors(&tmp.join("adapter_model.safetensors"), &tensors)?;
        write_json(&tmp.join("adapter_config.json"), &config)
    })?;
    Ok(tensors.into_iter().map(|(n, _, _)| n).collect())
}

/// Merges the adapters into a copy of `model` and writes it as a Hugging Face checkpoint
/// (`model.safetensors`, `config.json`, tokenizer files). A quantized (QLoRA) base is
/// dequantized by the merge; see [`crate::qlora::merge_qlora`] to merge into the original
/// float weights instead.
pub fn save_merged<B: Backend>(model: &CausalLm<B>, tokenizer: Option<&Tokenizer>, dir: impl AsRef<Path>) -> Result<usize> {
    let mut merged = model.clone();
    let n = merge_adapters(&mut merged)?;
    llm_quant::save_model(&merged, tokenizer, dir)?;
    Ok(n)
}

/// Builds `dir` through `fill(tmp)` in a sibling temporary directory, then renames it into
/// place (replacing an older `dir`), so a crash never leaves a half-written directory.
pub(crate) fn write_dir_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
    let tmp: PathBuf = dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    if let Some(parent) = tmp.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| TrainError::io(dir, e))
}

pub(crate) fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    std::fs::write(path, text).map_err(|e| TrainError::io(path, e))
}

/// Writes f32 tensors `(name, shape, values)` with peft's `{"format": "pt"}` metadata.
pub(crate) fn write_f32_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, shape, v)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytemuck::cast_slice(v))
                .map(|view| (name.clone(), view))
                .map_err(|e| TrainError::Checkpoint { path: path.to_path_buf(), message: format!("{name}: {e}") })
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| TrainError::Checkpoint { path: path.to_path_buf(), message: e.to_string() })
}

/// Reads every tensor of an f32 safetensors file as `(shape, values)`.
pub(crate) fn read_f32_safetensors(path: &Path) -> Result<crate::params::HostTensors> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |message: String| TrainError::Checkpoint { path: path.to_path_buf(), message };
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    st.iter()
        .map(|(name, view)| {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(bad(format!("{name}: dtype {:?}, expected F32", view.dtype())));
            }
            let v: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            Ok((name.to_string(), (view.shape().to_vec(), v)))
        })
        .collect()
}
