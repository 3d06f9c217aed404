//! LoRA adapters as llama.cpp reads them (`llama_adapter_lora_init`, `--lora FILE.gguf`):
//! `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, and per adapted
//! weight `W` the pair `W.lora_a` `[r, d_in]` and `W.lora_b` `[d_out, r]` under GGUF names,
//! B's rows of Q and K in llama.cpp's RoPE order (as `convert_lora_to_gguf.py` writes them).
//!
//! llama.cpp scales every pair by `alpha / r`, one alpha per file; a PEFT adapter whose
//! per-module scaling differs from that (rsLoRA, `alpha_pattern`, `rank_pattern`) has the
//! difference folded into B, so the update `scaling · B·A` is the same.

use std::path::Path;

use burn::tensor::{backend::Backend, Tensor, TensorData};

use super::PeftAdapter;
use crate::config::ModelConfig;
use crate::error::{LlmError, Result};
use crate::model::arch::{self, LinearId, LinearSlot};
use crate::model::CausalLm;
use crate::nn::LoraAdapter;
use crate::weights::gguf::quants::{dequantize, GgmlType};
use crate::weights::gguf::{permute_rows, unpermute_rows, write_gguf, GgufTensorPlan};
use crate::weights::{GgufFile, GgufValue, TensorSource};

/// The head count whose rows llama.cpp permutes in module `m`'s output (Q and K), if any.
fn rope_heads(m: &str, c: &ModelConfig) -> Option<usize> {
    match LinearId::parse(m)?.slot()? {
        LinearSlot::Q => Some(c.n_heads),
        LinearSlot::K => Some(c.n_kv_heads),
        _ => None,
    }
}

fn f32s(data: TensorData, what: &str) -> Result<Vec<f32>> {
    data.convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| LlmError::Config { field: what.to_string(), message: format!("{e:?}") })
}

/// Writes `adapter` (for a base model of `config`) as a llama.cpp LoRA GGUF at `out`, F32.
/// Returns the adapted modules.
pub fn write_lora_gguf(adapter: &PeftAdapter, config: &ModelConfig, out: &Path) -> Result<Vec<String>> {
    let modules = adapter.modules();
    let alpha = adapter.config.alpha;
    let mut tensors: Vec<(GgufTensorPlan, Vec<f32>)> = vec![];
    for m in &modules {
        let (a, b) = adapter.pair(m)?;
        let (a_shape, b_shape) = (a.shape.clone(), b.shape.clone());
        let (r, _, scaling) = adapter.config.scaling_for(m);
        let gguf = arch::hf_to_gguf(&format!("{m}.weight")).ok_or_else(|| LlmError::Config {
            field: format!("{}: {m}", adapter.dir.display()),
            message: "has no GGUF name (experts and unknown modules cannot be written as a llama.cpp adapter)".into(),
        })?;
        let mut b = f32s(b, m)?;
        // llama.cpp applies alpha / r; fold whatever else peft's scaling is into B.
        let fold = (scaling * r as f64 / alpha) as f32;
        if fold != 1.0 {
            b.iter_mut().for_each(|v| *v *= fold);
        }
        if let Some(heads) = rope_heads(m, config) {
            b = permute_rows(&gguf, &b, &b_shape, heads)?;
        }
        tensors.push((GgufTensorPlan::new(format!("{gguf}.lora_a"), &a_shape, GgmlType::F32), f32s(a, m)?));
        tensors.push((GgufTensorPlan::new(format!("{gguf}.lora_b"), &b_shape, GgmlType::F32), b));
    }
    let s = |v: &str| GgufValue::String(v.to_string());
    let metadata = vec![
        ("general.architecture".to_string(), s("llama")),
        ("general.type".to_string(), s("adapter")),
        ("adapter.type".to_string(), s("lora")),
        ("adapter.lora.alpha".to_string(), GgufValue::F32(alpha as f32)),
    ];
    let plan: Vec<GgufTensorPlan> = tensors.iter().map(|(p, _)| p.clone()).collect();
    write_gguf(out, &metadata, &plan, |i| Ok(tensors[i].1.iter().flat_map(|v| v.to_le_bytes()).collect()))?;
    Ok(modules)
}

/// Attaches the llama.cpp LoRA adapter at `path` to `model` (unmerged), B's Q/K rows put back
/// in Hugging Face order, each pair scaled by `adapter.lora.alpha / r`. Returns the adapted
/// modules. A file that is not a LoRA adapter, a tensor for no layer of the model, a missing
/// half of a pair or a wrong shape is an error naming the file and tensor.
pub fn apply_lora_gguf<B: Backend>(model: &mut CausalLm<B>, path: &Path) -> Result<Vec<String>> {
    let file = GgufFile::open(path)?;
    let field = |what: &str| format!("{}: {what}", path.display());
    let get = |k: &str| file.get(k).and_then(GgufValue::as_str);
    if get("general.type") != Some("adapter") || get("adapter.type") != Some("lora") {
        return Err(LlmError::Config { field: field("adapter.type"), message: "is not a LoRA adapter GGUF (general.type = adapter, adapter.type = lora)".into() });
    }
    let alpha = file.get("adapter.lora.alpha").and_then(GgufValue::as_f64).unwrap_or(0.0);
    let config = model.config.clone();
    let (dtype, device) = (model.dtype(), model.device());
    let mut modules = vec![];
    for name in file.tensors.keys().filter_map(|n| n.strip_suffix(".lora_a")) {
        let hf = arch::gguf_to_hf(name, 0).into_iter().next().map(|(h, _)| h).unwrap_or_default();
        let module = hf.strip_suffix(".weight").unwrap_or(&hf).to_string();
        let read = |suffix: &str| -> Result<(Vec<usize>, Vec<f32>)> {
            let t = format!("{name}.{suffix}");
            let info = file.tensors.get(&t).ok_or_else(|| LlmError::Config { field: field(&t), message: "is missing (each lora_a needs its lora_b)".into() })?;
            if !matches!(info.ggml_type, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0) {
                return Err(LlmError::Config { field: field(&t), message: format!("type {} is not supported for adapters", info.ggml_type.name()) });
            }
            Ok((info.shape(), dequantize(info.ggml_type, file.tensor_bytes(info))))
        };
        let ((a_shape, a), (b_shape, mut b)) = (read("lora_a")?, read("lora_b")?);
        let Some(linear) = model.linear_mut(&module) else {
            return Err(LlmError::Config { field: field(&format!("{name}.lora_a")), message: "adapts no linear layer of the model".into() });
        };
        let (d_out, d_in) = linear.dims();
        let r = a_shape.first().copied().unwrap_or(0);
        if a_shape != [r, d_in] || b_shape != [d_out, r] || r == 0 {
            return Err(LlmError::Shape {
                what: field(name),
                expected: format!("lora_a [r, {d_in}], lora_b [{d_out}, r]"),
                got: [a_shape, b_shape].concat(),
            });
        }
        if let Some(heads) = rope_heads(&module, &config) {
            b = unpermute_rows(&b, &b_shape, heads);
        }
        let linear = model.linear_mut(&module).expect("checked above");
        let a = Tensor::<B, 2>::from_data(TensorData::new(a, [r, d_in]), (&device, dtype));
        let b = Tensor::<B, 2>::from_data(TensorData::new(b, [d_out, r]), (&device, dtype));
        linear.lora = Some(LoraAdapter::new(a, b, alpha / r as f64));
        modules.push(module);
    }
    if modules.is_empty() {
        return Err(LlmError::Config { field: field("tensors"), message: "holds no `*.lora_a` tensor".into() });
    }
    Ok(modules)
}

impl PeftAdapter {
    /// The `(lora_A, lora_B)` tensors of module `m` (`[r, d_in]`, `[d_out, r]`), as stored.
    pub fn pair(&self, m: &str) -> Result<(TensorData, TensorData)> {
        let read = |s: &str| self.tensors.read(&format!("{}{m}.{s}", super::PREFIX));
        Ok((read("lora_A.weight")?, read("lora_B.weight")?))
    }
}
