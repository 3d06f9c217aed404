//! Writing adapters as peft does (`adapter_config.json` + `adapter_model.safetensors`) and
//! merged models as plain Hugging Face checkpoints. Reading is llm-core's
//! [`llm_core::adapter::PeftAdapter`].

use std::path::Path;

use burn::tensor::backend::Backend;
use llm_core::adapter::merge_adapters;
use llm_core::io::safetensors::{write_safetensors, OwnedTensor};
use llm_core::io::{write_dir_atomic, write_json};
use llm_core::{CausalLm, Tokenizer};
use serde_json::Value;

use crate::error::{Result, TrainError};
use crate::lora::LoraSpec;
use crate::params::{is_lora, read_params};

/// peft's prefix for every tensor of a causal-LM adapter.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// `adapter_config.json` for `spec` with every key peft 0.21 writes ([`LoraSpec::to_json`]).
pub fn adapter_config_json(spec: &LoraSpec, base_model: &str) -> Value {
    spec.to_json(base_model)
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
    write_dir_atomic(dir, |tmp| -> Result<()> {
        write_f32_safetensors(&tmp.join("adapter_model.safetensors"), &tensors)?;
        Ok(write_json(&tmp.join("adapter_config.json"), &config)?)
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

/// Writes f32 tensors `(name, shape, values)` with peft's `{"format": "pt"}` metadata.
pub(crate) fn write_f32_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<()> {
    let owned: Vec<OwnedTensor> = tensors.iter().map(|(n, shape, v)| OwnedTensor::f32(n.clone(), shape.clone(), v)).collect();
    Ok(write_safetensors(path, &owned)?)
}

/// Reads every tensor of an f32 safetensors file as `(shape, values)`; a corrupt file is a
/// [`TrainError::Checkpoint`] naming it.
pub(crate) fn read_f32_safetensors(path: &Path) -> Result<crate::params::HostTensors> {
    llm_core::io::safetensors::read_f32_safetensors(path).map_err(|e| match e {
        llm_core::LlmError::Io { path, source } => TrainError::io(path, source),
        other => TrainError::Checkpoint { path: path.to_path_buf(), message: other.to_string() },
    })
}
