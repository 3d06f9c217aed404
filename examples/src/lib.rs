//! Shared command-line plumbing for the examples: backend choice, model paths, dtypes.

use std::path::PathBuf;

use anyhow::{bail, Context};
use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};
use llm_core::backend::BackendKind;
use llm_core::CausalLm;
use serde_json::{json, Value};

/// Where `scripts/fetch-models.sh` caches checkpoints.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("LLM_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cache/llm-rs")
    })
}

/// The default model: SmolLM2-135M-Instruct (GGUF Q4_1), fetched by `scripts/fetch-models.sh`.
pub fn default_model() -> anyhow::Result<PathBuf> {
    let path = cache_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        bail!("{} is missing; run `scripts/fetch-models.sh` (or pass --model DIR_OR_GGUF)", path.display());
    }
    Ok(path)
}

/// Parses `--backend`.
pub fn parse_backend(s: &str) -> anyhow::Result<BackendKind> {
    let kind: BackendKind = s.parse()?;
    if !kind.is_compiled() {
        bail!(
            "backend `{kind}` is not compiled into this binary; rebuild with `--features {kind}` \
             (e.g. `cargo run --release --features {kind} --example ...`)"
        );
    }
    Ok(kind)
}

/// Parses `--dtype` (f32, f16, bf16).
pub fn parse_dtype(s: &str) -> anyhow::Result<DType> {
    Ok(match s {
        "f32" => DType::F32,
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        other => bail!("unknown dtype `{other}`; choose f32, f16 or bf16"),
    })
}

/// Parses a comma-separated id list (`1,17,42`).
pub fn parse_ids(s: &str) -> anyhow::Result<Vec<u32>> {
    s.split(',')
        .map(|t| t.trim().parse::<u32>().with_context(|| format!("`{t}` is not a token id")))
        .collect()
}

/// Runs `ids` through `model` and returns, per position, `{"position", "id", "top": [[id, logit], ...]}`
/// with the `k` largest logits, largest first.
pub fn top_logits_json<B: Backend>(model: &CausalLm<B>, ids: &[u32], k: usize) -> Value {
    let vocab = model.config.vocab_size;
    let data = TensorData::new(ids.iter().map(|&i| i as i64).collect(), [1, ids.len()]);
    let logits = model.forward(Tensor::<B, 2, Int>::from_data(data, &model.device()));
    let logits: Vec<f32> = logits.into_data().iter::<f32>().collect();
    let rows = logits.chunks(vocab).enumerate().map(|(pos, row)| {
        let mut order: Vec<usize> = (0..vocab).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let top: Vec<_> = order[..k.min(vocab)].iter().map(|&i| json!([i, row[i]])).collect();
        json!({ "position": pos, "id": ids[pos], "top": top })
    });
    Value::Array(rows.collect())
}

/// Writes a JSON array with one element per line: valid JSON that also diffs line by line.
pub fn write_json_rows(value: &Value, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let rows = value.as_array().map(Vec::as_slice).unwrap_or(std::slice::from_ref(value));
    writeln!(out, "[")?;
    for (i, row) in rows.iter().enumerate() {
        let sep = if i + 1 < rows.len() { "," } else { "" };
        writeln!(out, "  {row}{sep}")?;
    }
    writeln!(out, "]")
}
