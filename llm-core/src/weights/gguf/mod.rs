//! GGUF checkpoints (llama.cpp's format) for `general.architecture = llama`: metadata to
//! [`ModelConfig`], tensors dequantised to f32 under their Hugging Face names.

mod file;
pub mod quants;
mod write;

use std::path::Path;

use burn::tensor::TensorData;

pub use file::{GgufFile, GgufTensorInfo, GgufValue};
pub use quants::GgmlType;
pub use write::{write_gguf, GgufTensorPlan, DEFAULT_ALIGNMENT};

use super::TensorSource;
use crate::config::{Architecture, ModelConfig, MoeConfig, RopeConfig, RopeScaling};
use crate::error::{LlmError, Result};
use crate::model::arch::{self, LinearId, LinearSlot};
use crate::quant::GgmlWeight;

/// A GGUF file seen as a checkpoint with Hugging Face tensor names.
///
/// Q and K projection rows are un-permuted on read: llama.cpp's converter reorders them for
/// its interleaved RoPE, while our attention (like transformers) rotates split halves.
pub struct GgufSource {
    file: GgufFile,
    config: ModelConfig,
    name: String,
    /// HF name -> (GGUF name, expert index for stacked expert tensors).
    names: Vec<(String, String, Option<usize>)>,
}

impl GgufSource {
    /// Opens and parses a GGUF file and derives the model config from its metadata.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let file = GgufFile::open(path.as_ref())?;
        let config = config_from_gguf(&file)?;
        let names = hf_names(&file, &config);
        Ok(Self { name: file.path().display().to_string(), file, config, names })
    }

    /// The model config the metadata describes.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The parsed file: metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`) and tensor infos.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    fn lookup(&self, hf: &str) -> Option<(&GgufTensorInfo, &str, Option<usize>)> {
        let (_, gguf, expert) = self.names.iter().find(|(h, _, _)| h == hf)?;
        Some((self.file.tensors.get(gguf)?, gguf.as_str(), *expert))
    }
}

impl TensorSource for GgufSource {
    fn source_name(&self) -> &str {
        &self.name
    }

    fn tensor_names(&self) -> Vec<String> {
        self.names.iter().map(|(h, _, _)| h.clone()).collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let (info, _, expert) = self.lookup(name)?;
        let shape = info.shape();
        Some(if expert.is_some() { shape[1..].to_vec() } else { shape })
    }

    fn read(&self, name: &str) -> Result<TensorData> {
        let (info, _, expert) = self.lookup(name).ok_or_else(|| LlmError::WeightMismatch {
            source_name: self.name.clone(),
            missing: vec![name.to_string()],
            unexpected: vec![],
            mis_shaped: vec![],
        })?;
        let (bytes, shape) = self.stored(name, info, expert)?;
        let mut values = quants::dequantize(info.ggml_type, bytes);
        if let Some(heads) = self.rope_heads(name) {
            check_rope_rows(name, &shape, heads)?;
            values = unpermute_rows(&values, &shape, heads);
        }
        Ok(TensorData::new(values, shape))
    }

    fn read_blocks(&self, name: &str) -> Option<Result<GgmlWeight>> {
        let (info, _, expert) = self.lookup(name)?;
        crate::quant::ggml::block_elems(info.ggml_type)?;
        Some(self.stored(name, info, expert).and_then(|(bytes, shape)| {
            let [d_out, d_in] = shape[..] else {
                return Err(LlmError::config(format!("GGUF tensor for `{name}`"), format!("shape {shape:?} is not a matrix")));
            };
            let w = GgmlWeight::new(name, info.ggml_type, d_out, d_in, bytes.to_vec())?;
            self.file.release(bytes);
            Ok(match self.rope_heads(name) {
                Some(heads) => {
                    check_rope_rows(name, &shape, heads)?;
                    let head_dim = d_out / heads;
                    w.with_rows(|r| unpermuted_source(r, head_dim))
                }
                None => w,
            })
        }))
    }
}

impl GgufSource {
    /// The stored bytes and HF shape of `name` (one expert's slab of a stacked tensor).
    fn stored<'a>(&'a self, name: &str, info: &GgufTensorInfo, expert: Option<usize>) -> Result<(&'a [u8], Vec<usize>)> {
        let mut bytes = self.file.tensor_bytes(info);
        let mut shape = info.shape();
        if let Some(e) = expert {
            // Stacked experts [n_experts, rows, cols]: expert e is one contiguous slab.
            if shape.len() != 3 || e >= shape[0] {
                return Err(LlmError::Gguf {
                    path: self.file.path().to_path_buf(),
                    offset: info.range.start as u64,
                    message: format!("tensor for `{name}` has shape {shape:?}, not [n_experts > {e}, rows, cols]"),
                });
            }
            let per = bytes.len() / shape[0];
            bytes = &bytes[e * per..(e + 1) * per];
            shape.remove(0);
        }
        Ok((bytes, shape))
    }

    /// The head count whose RoPE rows llama.cpp permuted in `name` (Q and K projections).
    fn rope_heads(&self, name: &str) -> Option<usize> {
        let slot = name.rsplit_once('.').and_then(|(module, _)| LinearId::parse(module)).and_then(|id| id.slot());
        match slot {
            Some(LinearSlot::Q) => Some(self.config.n_heads),
            Some(LinearSlot::K) => Some(self.config.n_kv_heads),
            _ => None,
        }
    }
}

/// A Q or K projection's rows split into `heads` heads of an even width (what llama.cpp's
/// permutation assumes), or an error naming the tensor.
fn check_rope_rows(name: &str, shape: &[usize], heads: usize) -> Result<()> {
    let rows = shape.first().copied().unwrap_or(0);
    if heads == 0 || rows % heads != 0 || (rows / heads) % 2 != 0 {
        let message = format!("{rows} rows do not split into {heads} heads of an even width (shape {shape:?})");
        return Err(LlmError::config(format!("GGUF tensor for `{name}`"), message));
    }
    Ok(())
}

/// The GGUF row HF row `dst` comes from: within a head, HF row `a·d/2 + i` is GGUF row `2i + a`.
fn unpermuted_source(dst: usize, head_dim: usize) -> usize {
    let (h, r) = (dst / head_dim, dst % head_dim);
    let half = head_dim / 2;
    let (a, i) = (r / half, r % half);
    h * head_dim + 2 * i + a
}

/// Undoes llama.cpp's `permute`: within each head, GGUF row `2i + a` is HF row `a * d/2 + i`.
///
/// values: `[n_heads * head_dim, cols]` (or `[n_heads * head_dim]` for a bias), row-major;
/// `head_dim` even (callers check with `check_rope_rows`).
pub fn unpermute_rows(values: &[f32], shape: &[usize], n_heads: usize) -> Vec<f32> {
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    let head_dim = rows / n_heads;
    let mut out = vec![0.0; values.len()];
    if cols == 0 || head_dim < 2 {
        return out;
    }
    for (dst, row) in out.chunks_exact_mut(cols).enumerate() {
        let src = unpermuted_source(dst, head_dim);
        row.copy_from_slice(&values[src * cols..(src + 1) * cols]);
    }
    out
}

/// llama.cpp's `permute` (what `convert_hf_to_gguf.py` applies to Q and K): within each head,
/// HF row `a * d/2 + i` becomes GGUF row `2i + a`; the inverse of [`unpermute_rows`].
///
/// values: `[n_heads * head_dim, cols]` (or `[n_heads * head_dim]` for a bias), row-major.
/// Errors name `name` when the rows do not split into heads of an even width.
pub fn permute_rows(name: &str, values: &[f32], shape: &[usize], n_heads: usize) -> Result<Vec<f32>> {
    check_rope_rows(name, shape, n_heads)?;
    let rows = shape[0];
    let cols: usize = shape[1..].iter().product();
    let head_dim = rows / n_heads;
    let half = head_dim / 2;
    let mut out = vec![0.0; values.len()];
    if cols == 0 {
        return Ok(out);
    }
    for (dst, row) in out.chunks_exact_mut(cols).enumerate() {
        let (h, r) = (dst / head_dim, dst % head_dim);
        let src = h * head_dim + (r % 2) * half + r / 2;
        row.copy_from_slice(&values[src * cols..(src + 1) * cols]);
    }
    Ok(out)
}

/// `(HF name, GGUF name, expert)` for every tensor of `file`, from the architecture table.
fn hf_names(file: &GgufFile, config: &ModelConfig) -> Vec<(String, String, Option<usize>)> {
    let n_experts = config.moe.map_or(0, |m| m.n_experts);
    file.tensors
        .keys()
        .flat_map(|gguf| arch::gguf_to_hf(gguf, n_experts).into_iter().map(move |(hf, e)| (hf, gguf.clone(), e)))
        .collect()
}

fn config_from_gguf(file: &GgufFile) -> Result<ModelConfig> {
    let field = |k: &str| format!("GGUF metadata `{k}`");
    let arch = file
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .ok_or_else(|| LlmError::config(field("general.architecture"), "is missing"))?;
    if arch != "llama" {
        return Err(LlmError::config(
            field("general.architecture"),
            format!("`{arch}` is not supported; supported: llama"),
        ));
    }
    if file.tensors.contains_key("rope_freqs.weight") {
        return Err(LlmError::config(
            "GGUF tensor `rope_freqs.weight`",
            "per-frequency RoPE factors (Llama 3.1 scaling baked into GGUF) are not supported; load the HF checkpoint",
        ));
    }
    let u = |k: &str| file.get(&format!("llama.{k}")).and_then(GgufValue::as_u64).map(|v| v as usize);
    let f = |k: &str| file.get(&format!("llama.{k}")).and_then(GgufValue::as_f64);
    let need = |k: &str| u(k).ok_or_else(|| LlmError::config(field(&format!("llama.{k}")), "is missing"));
    let d_model = need("embedding_length")?;
    let n_heads = need("attention.head_count")?;
    let n_layers = need("block_count")?;
    // Every layer has tensors: a block count past the file's tensor count is a lie, caught
    // before anything is sized by it.
    if n_layers > file.tensors.len() {
        return Err(LlmError::config(
            field("llama.block_count"),
            format!("claims {n_layers} layers but the file holds {} tensors", file.tensors.len()),
        ));
    }
    let head_dim = u("attention.key_length").unwrap_or(d_model / n_heads.max(1));
    if let Some(rot) = u("rope.dimension_count") {
        if rot != head_dim {
            return Err(LlmError::config(
                field("llama.rope.dimension_count"),
                format!("partial rotary ({rot} of {head_dim} dims) is not supported"),
            ));
        }
    }
    let max_pos = u("context_length").unwrap_or(2048);
    let tokens = file.get("tokenizer.ggml.tokens").and_then(GgufValue::as_array).map(<[_]>::len);
    let embd_rows = file.tensors.get(arch::EMBED.1).and_then(|t| t.dims.get(1)).map(|&d| d as usize);
    let vocab_size = u("vocab_size").or(tokens).or(embd_rows).ok_or_else(|| {
        LlmError::config(field("llama.vocab_size"), "is missing and no token list or embedding gives it")
    })?;
    let scaling = match file.get("llama.rope.scaling.type").and_then(GgufValue::as_str) {
        None | Some("none") => RopeScaling::Default,
        Some("linear") => RopeScaling::Linear { factor: f("rope.scaling.factor").unwrap_or(1.0) },
        Some("yarn") => RopeScaling::Yarn {
            factor: f("rope.scaling.factor").unwrap_or(1.0),
            original_max_position_embeddings: u("rope.scaling.original_context_length").unwrap_or(max_pos),
            beta_fast: 32.0,
            beta_slow: 1.0,
            attention_factor: None,
            mscale: None,
            mscale_all_dim: None,
            truncate: true,
        },
        Some(other) => {
            return Err(LlmError::config(
                field("llama.rope.scaling.type"),
                format!("`{other}` is not supported; supported: none, linear, yarn"),
            ))
        }
    };
    let moe = match (u("expert_count"), u("expert_used_count")) {
        (Some(n), Some(k)) if n > 0 => Some(MoeConfig { n_experts: n, n_experts_per_tok: k }),
        _ => None,
    };
    // Stacked expert tensors are [n_experts, rows, cols]: their leading dim is the count.
    if let Some(moe) = moe {
        for (name, info) in file.tensors.iter().filter(|(n, _)| n.contains(&format!("{}.", arch::STACKED))) {
            if info.dims.last().copied() != Some(moe.n_experts as u64) {
                return Err(LlmError::config(
                    field("llama.expert_count"),
                    format!("is {} but tensor `{name}` stacks {:?} experts", moe.n_experts, info.dims.last()),
                ));
            }
        }
    }
    let token = |k: &str| file.get(&format!("tokenizer.ggml.{k}")).and_then(GgufValue::as_u64).map(|v| v as u32);
    let config = ModelConfig {
        architecture: if moe.is_some() { Architecture::Mixtral } else { Architecture::Llama },
        vocab_size,
        d_model,
        d_ff: need("feed_forward_length")?,
        n_layers,
        n_heads,
        n_kv_heads: u("attention.head_count_kv").unwrap_or(n_heads),
        head_dim,
        max_position_embeddings: max_pos,
        rms_norm_eps: f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
        rope: RopeConfig { rope_theta: f("rope.freq_base").unwrap_or(10_000.0), scaling },
        tie_word_embeddings: !file.tensors.contains_key("output.weight"),
        qkv_bias: file.tensors.contains_key(&arch::gguf_name(LinearId::Layer { layer: 0, slot: LinearSlot::Q }, "bias")),
        o_bias: file.tensors.contains_key("blk.0.attn_output.bias"),
        mlp_bias: false,
        sliding_window: vec![None; n_layers],
        moe,
        bos_token_id: token("bos_token_id"),
        eos_token_ids: token("eos_token_id").into_iter().collect(),
        pad_token_id: token("padding_token_id"),
        quantization: None,
    };
    config.validate()?;
    Ok(config)
}
