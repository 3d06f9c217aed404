//! Writing quantized checkpoints in the layouts the ecosystem reads:
//!
//! | layer format | tensors per linear layer `P` | `quantization_config` |
//! |---|---|---|
//! | GPTQ (affine, 2/3/4/8 bits) | `P.qweight` int32 `[d_in·bits/32, d_out]` (codes packed along the input, LSB first), `P.qzeros` int32 `[n_groups, d_out·bits/32]` (v1: each zero minus one, applied to the packed word), `P.scales` fp16 `[n_groups, d_out]`, `P.g_idx` int32 `[d_in]` | `quant_method: gptq`, `checkpoint_format: gptq` (GPTQModel/AutoGPTQ) |
//! | NF4/FP4 | `P.weight` uint8 `[n/2, 1]` (element 2k in the high nibble), `P.weight.absmax` f32 (uint8 when double-quantized, with `P.weight.nested_absmax`, `P.weight.nested_quant_map`), `P.weight.quant_map` f32 `[16]`, `P.weight.quant_state.bitsandbytes__nf4` (JSON bytes) | `quant_method: bitsandbytes`, `load_in_4bit` (transformers + bitsandbytes) |
//! | LLM.int8() | `P.weight` int8 `[d_out, d_in]`, `P.SCB` f32 `[d_out]` | `quant_method: bitsandbytes`, `load_in_8bit` |
//! | int8 absmax / zero-point | `P.weight` int8 `[d_out, d_in]`, `P.weight_scale` f32 `[d_out, n_groups]` (dequantization step), `P.weight_zero_point` f32 `[d_out, n_groups]` (zero-point scheme only): `w = (q − zp) · scale` | `quant_method: llm-rs`, `format: int8` |
//!
//! Everything else (embeddings, norms, unquantized layers) is written as f32 `P.weight`.
//! The directory also gets `config.json` (with `quantization_config`), the tokenizer files and
//! `generation_config.json` when given; it is written under a temporary name and renamed, so a
//! crash never leaves a half-written checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use llm_core::quant::{pack_stream, v1_zero_offset_word, AffineWeight, Fp4Weight, OutlierInt8Weight, QuantizedWeight};
use llm_core::{CausalLm, Tokenizer};
use safetensors::Dtype;
use serde_json::Value;

use crate::error::{QuantError, Result};

/// One tensor to write.
struct Owned {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Owned {
    fn f32(name: String, shape: Vec<usize>, values: &[f32]) -> Self {
        Self { name, dtype: Dtype::F32, shape, bytes: bytemuck::cast_slice(values).to_vec() }
    }

    fn i32(name: String, shape: Vec<usize>, values: &[i32]) -> Self {
        Self { name, dtype: Dtype::I32, shape, bytes: bytemuck::cast_slice(values).to_vec() }
    }
}

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
/// [`crate::gptq::GptqConfig::to_json`] or [`crate::method::Method::config_json`]. Affine layers are written in the GPTQ layout unless
/// `quant_method` is `llm-rs`.
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
        let head_quantized = model.linears().iter().any(|(n, l)| n == "lm_head" && l.quantized_weight().is_some());
        quantization_config["lm_head"] = head_quantized.into();
    }
    let method = quantization_config.get("quant_method").and_then(Value::as_str).unwrap_or("").to_string();
    let tensors = collect_tensors(model, &method)?;
    let quantized_layers = model.linears().iter().filter(|(_, l)| l.quantized_weight().is_some()).count();
    let tmp = temp_sibling(dir);
    let io = |path: &Path, e: std::io::Error| QuantError::Io { path: path.to_path_buf(), source: e };
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let result = (|| -> Result<u64> {
        let model_path = tmp.join("model.safetensors");
        write_safetensors(&model_path, &tensors)?;
        let mut config = model.config.to_hf_json();
        if !quantization_config.is_null() {
            config["quantization_config"] = quantization_config.clone();
        }
        write_json(&tmp.join("config.json"), &config)?;
        if method == "gptq" {
            write_json(&tmp.join("quantize_config.json"), &quantization_config)?;
        }
        if let Some(t) = tokenizer {
            t.save_dir(&tmp)?;
        }
        std::fs::metadata(&model_path).map(|m| m.len()).map_err(|e| io(&model_path, e))
    })();
    let model_bytes = match result {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
    Ok(SaveReport { dir: dir.to_path_buf(), model_bytes, quantized_layers })
}

fn temp_sibling(dir: &Path) -> PathBuf {
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "checkpoint".into());
    dir.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    std::fs::write(path, text).map_err(|e| QuantError::Io { path: path.to_path_buf(), source: e })
}

fn write_safetensors(path: &Path, tensors: &[Owned]) -> Result<()> {
    let views = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| QuantError::Format { path: path.to_path_buf(), message: format!("{}: {e}", t.name) })
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| QuantError::Format { path: path.to_path_buf(), message: e.to_string() })
}

fn host<B: Backend, const D: usize>(t: burn::tensor::Tensor<B, D>) -> (Vec<usize>, Vec<f32>) {
    let data = t.into_data().convert::<f32>();
    let shape = data.shape.to_vec();
    (shape, data.into_vec::<f32>().expect("converted to f32"))
}

fn collect_tensors<B: Backend>(model: &CausalLm<B>, method: &str) -> Result<Vec<Owned>> {
    let mut out = vec![];
    let (shape, v) = host(model.embed_tokens.val());
    out.push(Owned::f32("model.embed_tokens.weight".into(), shape, &v));
    let (shape, v) = host(model.norm.weight.val());
    out.push(Owned::f32("model.norm.weight".into(), shape, &v));
    for (i, layer) in model.layers.iter().enumerate() {
        for (n, norm) in [("input_layernorm", &layer.input_layernorm), ("post_attention_layernorm", &layer.post_attention_layernorm)] {
            let (shape, v) = host(norm.weight.val());
            out.push(Owned::f32(format!("model.layers.{i}.{n}.weight"), shape, &v));
        }
    }
    for (prefix, linear) in model.linears() {
        if let Some(b) = &linear.bias {
            let (shape, v) = host(b.val());
            out.push(Owned::f32(format!("{prefix}.bias"), shape, &v));
        }
        match linear.quantized_weight() {
            None => {
                let (shape, v) = host(linear.dense_weight());
                out.push(Owned::f32(format!("{prefix}.weight"), shape, &v));
            }
            Some(QuantizedWeight::Affine(w)) if method == "llm-rs" => out.extend(int8_tensors(&prefix, w)?),
            Some(QuantizedWeight::Affine(w)) => out.extend(gptq_tensors(&prefix, w)?),
            Some(QuantizedWeight::Fp4(w)) => out.extend(bnb4_tensors(&prefix, w)),
            Some(QuantizedWeight::OutlierInt8(w)) => out.extend(bnb8_tensors(&prefix, w)),
        }
    }
    Ok(out)
}

/// GPTQ v1 tensors of one layer.
fn gptq_tensors(prefix: &str, w: &AffineWeight) -> Result<Vec<Owned>> {
    let (d_out, d_in, bits, n_groups) = (w.d_out, w.d_in, w.bits, w.n_groups());
    if !(d_in * bits as usize).is_multiple_of(32) {
        return Err(QuantError::Shape {
            what: format!("{prefix}.qweight"),
            expected: format!("d_in·bits divisible by 32 (bits {bits})"),
            got: format!("d_in {d_in}"),
        });
    }
    let codes = w.codes();
    let words_per_col = d_in * bits as usize / 32;
    // [d_in·bits/32, d_out]: column o packs codes[o, :].
    let mut qweight = vec![0i32; words_per_col * d_out];
    for o in 0..d_out {
        for (k, word) in pack_stream(&codes[o * d_in..(o + 1) * d_in], bits).into_iter().enumerate() {
            qweight[k * d_out + o] = word as i32;
        }
    }
    // [n_groups, d_out·bits/32]: row g packs zeros[:, g] minus one (v1), on the packed word.
    let zero_words = (d_out * bits as usize).div_ceil(32);
    let mut qzeros = Vec::with_capacity(n_groups * zero_words);
    for g in 0..n_groups {
        let zeros: Vec<u8> = (0..d_out).map(|o| w.zeros()[o * n_groups + g] as u8).collect();
        for (k, word) in pack_stream(&zeros, bits).into_iter().enumerate() {
            qzeros.push(word.wrapping_sub(v1_zero_offset_word(bits, k % bits as usize)) as i32);
        }
    }
    let scales: Vec<half::f16> =
        (0..n_groups * d_out).map(|i| half::f16::from_f32(w.scales()[(i % d_out) * n_groups + i / d_out])).collect();
    let g_idx: Vec<i32> = w.g_idx().iter().map(|&g| g as i32).collect();
    Ok(vec![
        Owned::i32(format!("{prefix}.qweight"), vec![words_per_col, d_out], &qweight),
        Owned::i32(format!("{prefix}.qzeros"), vec![n_groups, zero_words], &qzeros),
        Owned { name: format!("{prefix}.scales"), dtype: Dtype::F16, shape: vec![n_groups, d_out], bytes: bytemuck::cast_slice(&scales).to_vec() },
        Owned::i32(format!("{prefix}.g_idx"), vec![d_in], &g_idx),
    ])
}

/// int8 absmax / zero-point tensors of one layer (codes stored offset by 128 in memory).
fn int8_tensors(prefix: &str, w: &AffineWeight) -> Result<Vec<Owned>> {
    if w.bits != 8 {
        return Err(QuantError::config("quant_method", format!("llm-rs int8 layout needs 8-bit layers; {prefix} has {} bits", w.bits)));
    }
    let n_groups = w.n_groups();
    // The layout stores groups implicitly as equal consecutive runs of columns.
    let uniform = w.d_in.is_multiple_of(n_groups)
        && w.g_idx().iter().enumerate().all(|(c, &g)| g as usize == c / (w.d_in / n_groups));
    if !uniform {
        return Err(QuantError::config(
            "quant_method",
            format!("{prefix}: the llm-rs int8 layout needs equal consecutive groups; write this layer as GPTQ"),
        ));
    }
    let codes: Vec<u8> = w.codes().into_iter().map(|u| (i16::from(u) - 128) as i8 as u8).collect();
    let zero_points: Vec<f32> = w.zeros().iter().map(|z| z - 128.0).collect();
    let mut out = vec![
        Owned { name: format!("{prefix}.weight"), dtype: Dtype::I8, shape: vec![w.d_out, w.d_in], bytes: codes },
        Owned::f32(format!("{prefix}.weight_scale"), vec![w.d_out, n_groups], w.scales()),
    ];
    if zero_points.iter().any(|&z| z != 0.0) {
        out.push(Owned::f32(format!("{prefix}.weight_zero_point"), vec![w.d_out, n_groups], &zero_points));
    }
    Ok(out)
}

/// bitsandbytes 4-bit tensors of one layer, as transformers serialises `Params4bit`.
fn bnb4_tensors(prefix: &str, w: &Fp4Weight) -> Vec<Owned> {
    let mut state = serde_json::json!({
        "quant_type": w.kind.name(),
        "blocksize": w.blocksize,
        "dtype": "float32",
        "shape": [w.d_out, w.d_in],
    });
    let mut out = vec![
        Owned { name: format!("{prefix}.weight"), dtype: Dtype::U8, shape: vec![w.packed.len(), 1], bytes: w.packed.clone() },
        Owned::f32(format!("{prefix}.weight.quant_map"), vec![16], &w.code),
    ];
    match &w.double_quant {
        Some(dq) => {
            state["nested_blocksize"] = dq.blocksize2.into();
            state["nested_offset"] = f64::from(dq.offset).into();
            state["nested_dtype"] = "float32".into();
            out.push(Owned { name: format!("{prefix}.weight.absmax"), dtype: Dtype::U8, shape: vec![dq.codes.len()], bytes: dq.codes.clone() });
            out.push(Owned::f32(format!("{prefix}.weight.nested_absmax"), vec![dq.absmax2.len()], &dq.absmax2));
            out.push(Owned::f32(format!("{prefix}.weight.nested_quant_map"), vec![dq.code.len()], &dq.code));
        }
        None => out.push(Owned::f32(format!("{prefix}.weight.absmax"), vec![w.absmax.len()], &w.absmax)),
    }
    let json = serde_json::to_vec(&state).expect("JSON serialises");
    out.push(Owned {
        name: format!("{prefix}.weight.quant_state.bitsandbytes__{}", w.kind.name()),
        dtype: Dtype::U8,
        shape: vec![json.len()],
        bytes: json,
    });
    out
}

/// bitsandbytes 8-bit tensors of one layer.
fn bnb8_tensors(prefix: &str, w: &OutlierInt8Weight) -> Vec<Owned> {
    vec![
        Owned {
            name: format!("{prefix}.weight"),
            dtype: Dtype::I8,
            shape: vec![w.d_out, w.d_in],
            bytes: w.codes.iter().map(|&q| q as u8).collect(),
        },
        Owned::f32(format!("{prefix}.SCB"), vec![w.d_out], &w.row_absmax),
    ]
}
