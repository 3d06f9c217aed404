//! A model as a GGUF file llama.cpp runs: `general.*` and `llama.*` metadata from the
//! validated config, the tokenizer, and every tensor under its GGUF name, Q and K rows in
//! llama.cpp's RoPE order, Mixtral experts stacked, each stored in the type the file type's
//! rules give it. Tensors stream one at a time from the source (dequantized as read), so the
//! memory held is one tensor's floats and bytes.

use std::path::Path;
use std::time::Instant;

use llm_core::config::{Architecture, ModelConfig, RopeScaling};
use llm_core::model::arch::{self, LinearId, LinearSlot};
use llm_core::weights::gguf::quants::GgmlType;
use llm_core::weights::gguf::{permute_rows, write_gguf, GgufTensorPlan};
use llm_core::weights::{GgufSource, GgufValue, SafetensorsSource, TensorSource};
use rayon::prelude::*;

use super::mix::{tensor_type, FileType, MixContext, TypeOverride};
use super::vocab::{self, SpecialIds};
use super::imatrix::Imatrix;
use super::{quantize_rows_weighted, GGUF_QUANTIZATION_VERSION};
use crate::error::{QuantError, Result};

/// How to write a GGUF.
#[derive(Debug, Clone)]
pub struct GgufOptions {
    /// The file type (`Q4_K_M`, `Q8_0`, `F16`, ...).
    pub file_type: FileType,
    /// Per-tensor types by regex on the GGUF name, before the file type's rules.
    pub overrides: Vec<TypeOverride>,
    /// `general.name`; the source's file or directory name when `None`.
    pub name: Option<String>,
    /// An importance matrix: the K-quant and legacy quantizers weigh each column's error by
    /// it (llama-quantize's `--imatrix`).
    pub imatrix: Option<Imatrix>,
}

impl GgufOptions {
    /// `file_type` with no overrides.
    pub fn new(file_type: FileType) -> Self {
        Self { file_type, overrides: vec![], name: None, imatrix: None }
    }
}

/// One written tensor.
#[derive(Debug, Clone)]
pub struct TensorReport {
    /// GGUF name.
    pub name: String,
    /// Stored type.
    pub ggml_type: GgmlType,
    /// Elements.
    pub elements: usize,
    /// Bytes of data.
    pub bytes: usize,
}

/// What [`write_model_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct GgufReport {
    /// Every tensor, in file order.
    pub tensors: Vec<TensorReport>,
    /// Size of the file.
    pub file_bytes: u64,
    /// Seconds spent.
    pub seconds: f64,
}

impl GgufReport {
    /// Bits per weight over every tensor (what llama-quantize prints as BPW).
    pub fn bits_per_weight(&self) -> f64 {
        let bytes: usize = self.tensors.iter().map(|t| t.bytes).sum();
        let elements: usize = self.tensors.iter().map(|t| t.elements).sum();
        8.0 * bytes as f64 / elements.max(1) as f64
    }

    /// How many tensors are stored in each type, by type name.
    pub fn type_counts(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = vec![];
        for t in &self.tensors {
            match counts.iter_mut().find(|(n, _)| *n == t.ggml_type.name()) {
                Some((_, c)) => *c += 1,
                None => counts.push((t.ggml_type.name(), 1)),
            }
        }
        counts
    }
}

/// Writes the model at `input` (a Hugging Face directory with `config.json`, safetensors and
/// `tokenizer.json`, or a `.gguf` file) to `out` as a GGUF of `options.file_type`.
pub fn write_model_gguf(input: &Path, out: &Path, options: &GgufOptions) -> Result<GgufReport> {
    let name = options.name.clone().unwrap_or_else(|| {
        input.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().trim_end_matches(".gguf").to_string())
    });
    if input.is_file() {
        let source = GgufSource::open(input)?;
        let tokenizer = vocab::from_gguf(source.file());
        let config = source.config().clone();
        return write_gguf_from(&source, &config, tokenizer, &name, out, options);
    }
    let config = ModelConfig::from_file(input.join("config.json"))?;
    let ids = SpecialIds { bos: config.bos_token_id, eos: config.eos_token_ids.first().copied(), pad: config.pad_token_id };
    let tokenizer = vocab::from_dir(input, config.vocab_size, ids)?;
    let source = SafetensorsSource::open_dir(input)?;
    write_gguf_from(&source, &config, tokenizer, &name, out, options)
}

/// Writes the tensors of `source` (Hugging Face names, as llm-core's loader reads them) for the
/// model `config` describes, with `tokenizer` metadata, to `out`.
pub fn write_gguf_from(
    source: &dyn TensorSource,
    config: &ModelConfig,
    tokenizer: Vec<(String, GgufValue)>,
    name: &str,
    out: &Path,
    options: &GgufOptions,
) -> Result<GgufReport> {
    let start = Instant::now();
    let mut metadata = model_metadata(config, name, options.file_type)?;
    metadata.extend(tokenizer);
    let entries = plan(source, config, options)?;
    let plan: Vec<GgufTensorPlan> = entries.iter().map(|e| e.plan.clone()).collect();
    tracing::info!(tensors = plan.len(), file_type = options.file_type.name(), out = %out.display(), "writing GGUF");
    let imatrix = options.imatrix.as_ref();
    write_gguf(out, &metadata, &plan, |i| entries[i].bytes(source, imatrix).map_err(core_err))?;
    let tensors = entries
        .iter()
        .map(|e| TensorReport {
            name: e.plan.name.clone(),
            ggml_type: e.plan.ggml_type,
            elements: e.plan.dims.iter().product::<u64>() as usize,
            bytes: e.plan.byte_len().unwrap_or(0),
        })
        .collect();
    let file_bytes = std::fs::metadata(out).map_err(|e| QuantError::Io { path: out.to_path_buf(), source: e })?.len();
    Ok(GgufReport { tensors, file_bytes, seconds: start.elapsed().as_secs_f64() })
}

/// `write_gguf`'s producer returns llm-core errors; a quantization error is carried as one.
fn core_err(e: QuantError) -> llm_core::LlmError {
    match e {
        QuantError::Core(e) => e,
        other => llm_core::LlmError::Config { field: "GGUF export".into(), message: other.to_string() },
    }
}

/// The `general.*` and `llama.*` keys convert_hf_to_gguf writes for a Llama-family model.
fn model_metadata(c: &ModelConfig, name: &str, file_type: FileType) -> Result<Vec<(String, GgufValue)>> {
    match c.architecture {
        Architecture::Llama | Architecture::Mistral | Architecture::Mixtral => {}
        Architecture::Qwen2 => {
            return Err(QuantError::config(
                "architecture",
                "qwen2 cannot be exported to GGUF yet (llama.cpp names it `qwen2`, which llm-core does not read); supported: llama, mistral, mixtral",
            ))
        }
    }
    if c.qkv_bias || c.o_bias || c.mlp_bias {
        return Err(QuantError::config("attention_bias", "biased projections have no `llama` GGUF layout; supported: bias-free Llama models"));
    }
    if c.sliding_window.iter().any(Option::is_some) {
        tracing::warn!("GGUF `llama` has no sliding window: attention beyond the window will differ from the source");
    }
    let s = |v: &str| GgufValue::String(v.to_string());
    let u = |v: usize| GgufValue::U32(v as u32);
    let f = |v: f64| GgufValue::F32(v as f32);
    let mut m: Vec<(String, GgufValue)> = vec![
        ("general.architecture".into(), s("llama")),
        ("general.type".into(), s("model")),
        ("general.name".into(), s(name)),
        ("general.file_type".into(), GgufValue::U32(file_type.llama_ftype())),
    ];
    if !file_type.is_float() {
        m.push(("general.quantization_version".into(), GgufValue::U32(GGUF_QUANTIZATION_VERSION)));
    }
    let mut put = |k: &str, v: GgufValue| m.push((format!("llama.{k}"), v));
    put("block_count", u(c.n_layers));
    put("context_length", u(c.max_position_embeddings));
    put("embedding_length", u(c.d_model));
    put("feed_forward_length", u(c.d_ff));
    put("attention.head_count", u(c.n_heads));
    put("attention.head_count_kv", u(c.n_kv_heads));
    put("rope.freq_base", f(c.rope.rope_theta));
    put("attention.layer_norm_rms_epsilon", f(c.rms_norm_eps));
    put("attention.key_length", u(c.head_dim));
    put("attention.value_length", u(c.head_dim));
    put("vocab_size", u(c.vocab_size));
    put("rope.dimension_count", u(c.head_dim));
    if let Some(moe) = c.moe {
        put("expert_count", u(moe.n_experts));
        put("expert_used_count", u(moe.n_experts_per_tok));
    }
    match &c.rope.scaling {
        RopeScaling::Default => {}
        RopeScaling::Linear { factor } => {
            put("rope.scaling.type", s("linear"));
            put("rope.scaling.factor", f(*factor));
        }
        RopeScaling::Yarn { factor, original_max_position_embeddings, .. } => {
            put("rope.scaling.type", s("yarn"));
            put("rope.scaling.factor", f(*factor));
            put("rope.scaling.original_context_length", u(*original_max_position_embeddings));
        }
        other => {
            return Err(QuantError::config(
                "rope_scaling",
                format!("{other:?} has no GGUF metadata llm-core reads back (Llama 3's is a rope_freqs tensor); supported: none, linear, yarn"),
            ))
        }
    }
    Ok(m)
}

/// One GGUF tensor and where its values come from.
struct Entry {
    plan: GgufTensorPlan,
    /// The Hugging Face tensors stacked into it (one, or one per expert).
    sources: Vec<String>,
    /// Heads whose rows llama.cpp's RoPE permutation reorders (Q and K).
    rope_heads: Option<usize>,
}

impl Entry {
    /// The tensor's bytes: each source read as f32, permuted, quantized row by row.
    fn bytes(&self, source: &dyn TensorSource, imatrix: Option<&Imatrix>) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.plan.byte_len()?);
        let cols = self.plan.dims.first().copied().unwrap_or(1) as usize;
        let importance = match imatrix {
            Some(m) => m.weights_for(&self.plan.name, cols, self.sources.len())?,
            None => None,
        };
        for (e, name) in self.sources.iter().enumerate() {
            let data = source.read(name)?;
            let shape = data.shape.clone();
            let mut values: Vec<f32> = data
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|e| QuantError::Shape { what: name.clone(), expected: "float values".into(), got: format!("{e:?}") })?;
            if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
                return Err(QuantError::NonFinite { what: format!("{name} (element {bad})") });
            }
            if let Some(heads) = self.rope_heads {
                values = permute_rows(name, &values, &shape, heads)?;
            }
            let qw = importance.as_ref().map(|w| &w[e * cols..(e + 1) * cols]);
            out.extend(quantize_rows_weighted(&self.plan.name, self.plan.ggml_type, &values, cols, qw)?);
        }
        Ok(out)
    }
}

/// The tensors of the file, in llama.cpp's order (`weight_name_comparer`: by layer, then by name;
/// tensors outside layers first), with their types.
fn plan(source: &dyn TensorSource, c: &ModelConfig, options: &GgufOptions) -> Result<Vec<Entry>> {
    let ctx = MixContext {
        n_layers: c.n_layers,
        n_gqa: c.n_heads / c.n_kv_heads.max(1),
        n_experts: c.moe.map_or(0, |m| m.n_experts),
        tied_embeddings: c.tie_word_embeddings,
        has_imatrix: options.imatrix.is_some(),
    };
    let available = source.tensor_names();
    let mut entries: Vec<Entry> = vec![];
    for spec in arch::expected_tensors(c) {
        if !available.contains(&spec.name) {
            return Err(llm_core::LlmError::WeightMismatch {
                source_name: source.source_name().to_string(),
                missing: vec![spec.name],
                unexpected: vec![],
                mis_shaped: vec![],
            }
            .into());
        }
        let (module, kind) = spec.name.rsplit_once('.').unwrap_or((&spec.name, ""));
        let id = LinearId::parse(module);
        let (gguf, shape) = match id {
            Some(id @ LinearId::Expert { expert, .. }) => {
                if expert != 0 {
                    continue; // stacked under expert 0's entry
                }
                let mut shape = spec.shape.clone();
                shape.insert(0, ctx.n_experts);
                (arch::gguf_name(id, kind), shape)
            }
            _ => {
                let gguf = arch::hf_to_gguf(&spec.name)
                    .ok_or_else(|| QuantError::config("tensor", format!("`{}` has no GGUF name", spec.name)))?;
                (gguf, spec.shape.clone())
            }
        };
        let sources = match id {
            Some(LinearId::Expert { layer, slot, .. }) => (0..ctx.n_experts)
                .map(|e| format!("{}.{kind}", LinearId::Expert { layer, expert: e, slot }.hf()))
                .collect(),
            _ => vec![spec.name.clone()],
        };
        let rope_heads = match id.and_then(|id| id.slot()) {
            Some(LinearSlot::Q) => Some(c.n_heads),
            Some(LinearSlot::K) => Some(c.n_kv_heads),
            _ => None,
        };
        let cols = *shape.last().unwrap_or(&1);
        let ggml_type = tensor_type(options.file_type, &gguf, shape.len(), cols, &ctx, &options.overrides)
            .unwrap_or(GgmlType::F32);
        entries.push(Entry { plan: GgufTensorPlan::new(gguf, &shape, ggml_type), sources, rope_heads });
    }
    let layer = |n: &str| n.strip_prefix("blk.").and_then(|r| r.split('.').next()).and_then(|l| l.parse::<i64>().ok()).unwrap_or(-1);
    entries.sort_by(|a, b| layer(&a.plan.name).cmp(&layer(&b.plan.name)).then_with(|| a.plan.name.cmp(&b.plan.name)));
    Ok(entries)
}

/// Quantizes many rows on every core; rows are independent, so the bytes do not depend on the
/// thread count.
pub(super) fn par_rows(values: &[f32], cols: usize, row_bytes: usize, f: impl Fn(&[f32], &mut Vec<u8>) + Sync) -> Vec<u8> {
    let chunks: Vec<Vec<u8>> = values
        .par_chunks(cols * 64)
        .map(|rows| {
            let mut out = Vec::with_capacity(rows.len() / cols * row_bytes);
            rows.chunks(cols).for_each(|r| f(r, &mut out));
            out
        })
        .collect();
    chunks.concat()
}
