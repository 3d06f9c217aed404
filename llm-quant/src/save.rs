//! Writing quantized checkpoints in the layouts the ecosystem reads:
//!
//! | layer format | tensors per linear layer `P` | `quantization_config` |
//! |---|---|---|
//! | GPTQ (affine, 2/3/4/8 bits) | `P.qweight` int32 `[d_in·bits/32, d_out]` (codes packed along the input, LSB first), `P.qzeros` int32 `[n_groups, d_out·bits/32]` (v1: each zero minus one, applied to the packed word), `P.scales` fp16 `[n_groups, d_out]`, `P.g_idx` int32 `[d_in]` | `quant_method: gptq`, `checkpoint_format: gptq` (GPTQModel/AutoGPTQ) |
//! | NF4/FP4 | `P.weight` uint8 `[n/2, 1]` (element 2k in the high nibble), `P.weight.absmax` f32 (uint8 when double-quantized, with `P.weight.nested_absmax`, `P.weight.nested_quant_map`), `P.weight.quant_map` f32 `[16]`, `P.weight.quant_state.bitsandbytes__nf4` (JSON bytes) | `quant_method: bitsandbytes`, `load_in_4bit` (transformers + bitsandbytes) |
//! | AWQ (AutoAWQ GEMM, 4 bits) | `P.qweight` int32 `[d_in, d_out/8]` (8 outputs per word in the order 0,2,4,6,1,3,5,7), `P.qzeros` int32 `[n_groups, d_out/8]` (same order, zeros as they are), `P.scales` fp16 `[n_groups, d_out]` | `quant_method: awq`, `version: gemm` (AutoAWQ, transformers) |
//! | HQQ (1-8 bits) | `P.W_q` u8 (i32 for 3 bits) codes of the `[d_out·d_in/g, g]` group matrix packed along its rows, `P.scale` / `P.zero` `[d_out·d_in/g, 1]` (f16 when exact), `P.shape` i64, `P.nbits`/`group_size`/`axis` i32, `P.packing`/`compute_dtype` ASCII, flags u8 (HQQLinear's 19 keys) | `quant_method: hqq` (hqq, transformers 4.x) |
//! | LLM.int8() | `P.weight` int8 `[d_out, d_in]`, `P.SCB` f32 `[d_out]` | `quant_method: bitsandbytes`, `load_in_8bit` |
//! | int8 absmax / zero-point | `P.weight` int8 `[d_out, d_in]`, `P.weight_scale` f32 `[d_out, n_groups]` (dequantization step), `P.weight_zero_point` f32 `[d_out, n_groups]` (zero-point scheme only): `w = (q − zp) · scale` | `quant_method: llm-rs`, `format: int8` |
//!
//! Everything else (embeddings, norms, unquantized layers) is written as f32 `P.weight`.
//! The directory also gets `config.json` (with `quantization_config`), the tokenizer files and
//! `generation_config.json` when given. Each layer format's writer sits beside its reader in
//! [`llm_core::weights::quantized`]; the directory is written with [`llm_core::io`]'s atomic
//! writer, so a crash never leaves a half-written checkpoint.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use llm_core::io::safetensors::{write_safetensors, OwnedTensor};
use llm_core::io::{host_f32, write_dir_atomic, write_json};
use llm_core::model::arch;
use llm_core::weights::{write_quantized, AffineFormat};
use llm_core::{CausalLm, Tokenizer};
use serde_json::Value;

use crate::error::{QuantError, Result};

/// What a save wrote.
#[derive(Debug, Clone)]
pub struct SaveReport {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Bytes of `model.safetensors`.
    pub model_bytes: u64,
    /// Linear layers written quantized.
    pub quantized_layers: usize,
}

/// Writes `model` (with whatever mix of quantized layers it holds) as a Hugging Face directory.
///
/// `quantization_config` goes into `config.json` (and `quantize_config.json` for GPTQ); use
/// [`crate::gptq::GptqConfig::to_json`] or [`crate::method::Method::config_json`] or [`crate::awq::AwqConfig::to_json`]. Affine layers are
/// written in the GPTQ layout unless `quant_method` is `llm-rs` (int8), `awq` (AWQ GEMM) or `hqq`.
pub fn save_quantized<B: Backend>(
    model: &CausalLm<B>,
    tokenizer: Option<&Tokenizer>,
    quantization_config: Value,
    dir: impl AsRef<Path>,
) -> Result<SaveReport> {
    save(model, tokenizer, Some(quantization_config), dir.as_ref())
}

/// Writes a model with dense weights (a merged fine-tune, say) as a plain Hugging Face
/// directory: `model.safetensors` (f32), `config.json` without `quantization_config`, and the
/// tokenizer files when given. Same atomic replace as [`save_quantized`]. A layer still holding
/// a quantized weight is an error naming it; a LoRA adapter left unmerged is an error too.
pub fn save_model<B: Backend>(model: &CausalLm<B>, tokenizer: Option<&Tokenizer>, dir: impl AsRef<Path>) -> Result<SaveReport> {
    if let Some((name, _)) = model.linears().into_iter().find(|(_, l)| l.quantized_weight().is_some() || l.lora.is_some()) {
        return Err(QuantError::Shape {
            what: name,
            expected: "a dense weight without an unmerged adapter".into(),
            got: "a quantized weight or an unmerged LoRA adapter (merge it first)".into(),
        });
    }
    save(model, tokenizer, None, dir.as_ref())
}

fn save<B: Backend>(
    model: &CausalLm<B>,
    tokenizer: Option<&Tokenizer>,
    quantization_config: Option<Value>,
    dir: &Path,
) -> Result<SaveReport> {
    if dir.exists() && !dir.join("config.json").exists() {
        // Only a previous checkpoint is replaced, never an unrelated directory.
        return Err(QuantError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "exists and is not a checkpoint directory"),
        });
    }
    let mut quantization_config = quantization_config.unwrap_or(Value::Null);
    if quantization_config.get("lm_head").is_some() {
        // Say what the file holds: GPTQ readers take `lm_head` from here.
        let head_quantized = model.linears().iter().any(|(n, l)| n == arch::LM_HEAD_MODULE && l.quantized_weight().is_some());
        quantization_config["lm_head"] = head_quantized.into();
    }
    let method = quantization_config.get("quant_method").and_then(Value::as_str).unwrap_or("").to_string();
    let affine = match method.as_str() {
        "llm-rs" => AffineFormat::Int8,
        "awq" => AffineFormat::Awq,
        "hqq" => AffineFormat::Hqq,
        _ => AffineFormat::Gptq,
    };
    let tensors = collect_tensors(model, affine)?;
    let quantized_layers = model.linears().iter().filter(|(_, l)| l.quantized_weight().is_some()).count();
    let model_path = dir.join("model.safetensors");
    write_dir_atomic(dir, |tmp| -> Result<()> {
        write_safetensors(&tmp.join("model.safetensors"), &tensors)?;
        let mut config = model.config.to_hf_json();
        if !quantization_config.is_null() {
            config["quantization_config"] = quantization_config.clone();
        }
        if method == "hqq" {
            add_legacy_rope(&mut config);
        }
        write_json(&tmp.join("config.json"), &config)?;
        if method == "gptq" {
            write_json(&tmp.join("quantize_config.json"), &quantization_config)?;
        }
        if let Some(t) = tokenizer {
            t.save_dir(tmp)?;
        }
        Ok(())
    })?;
    let model_bytes = std::fs::metadata(&model_path).map(|m| m.len()).map_err(|e| QuantError::Io { path: model_path, source: e })?;
    Ok(SaveReport { dir: dir.to_path_buf(), model_bytes, quantized_layers })
}

/// Adds transformers 4.x's RoPE spelling (`rope_theta`, and `rope_scaling` unless the type is
/// `default`) beside transformers 5's `rope_parameters`: only 4.x loads HQQ checkpoints, and it
/// ignores `rope_parameters`, silently running any other theta (SmolLM2's 100000) at 10000.
fn add_legacy_rope(config: &mut Value) {
    let Some(params) = config.get("rope_parameters").and_then(Value::as_object).cloned() else { return };
    if let Some(theta) = params.get("rope_theta") {
        config["rope_theta"] = theta.clone();
    }
    if params.get("rope_type").and_then(Value::as_str).is_some_and(|t| t != "default") {
        let mut scaling = params;
        scaling.remove("rope_theta");
        config["rope_scaling"] = Value::Object(scaling);
    }
}

/// Every tensor of `model` as the checkpoint stores it: the embedding and norms in f32, then
/// each linear layer through the format writer of its weight kind.
fn collect_tensors<B: Backend>(model: &CausalLm<B>, affine: AffineFormat) -> Result<Vec<OwnedTensor>> {
    let mut out = vec![];
    let (shape, v) = host_f32(model.embed_tokens.dense());
    out.push(OwnedTensor::f32(arch::EMBED.0, shape, &v));
    for (name, norm) in model.norms() {
        let (shape, v) = host_f32(norm.weight.val());
        out.push(OwnedTensor::f32(name, shape, &v));
    }
    for (prefix, linear) in model.linears() {
        if let Some(b) = &linear.bias {
            let (shape, v) = host_f32(b.val());
            out.push(OwnedTensor::f32(format!("{prefix}.bias"), shape, &v));
        }
        match linear.quantized_weight() {
            None => {
                let (shape, v) = host_f32(linear.dense_weight());
                out.push(OwnedTensor::f32(format!("{prefix}.weight"), shape, &v));
            }
            Some(q) => out.extend(write_quantized(&prefix, q, affine)?),
        }
    }
    Ok(out)
}
