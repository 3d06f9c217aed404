//! Prints the top-5 logits at every position of a token sequence, as JSON: the tool to compare
//! a checkpoint with transformers.
//!
//! ```text
//! cargo run --release --example logits -- --model DIR_OR_GGUF --ids 1,17,42
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context};
use burn::tensor::{backend::Backend, DType};
use clap::Parser;
use llm_core::backend::{BackendKind, BackendTask};
use llm_examples::run_on;
use llm_core::adapter::PeftAdapter;
use llm_core::weights::{load_model, LoadOptions};
use llm_examples::{default_model, parse_backend, parse_dtype, parse_ids, top_logits_json, write_json_rows};

/// Top-k logits per position for a list of token ids.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A Hugging Face model directory or a .gguf file (default: the cached SmolLM2-135M-Instruct GGUF).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Comma-separated token ids, e.g. 1,17,42.
    #[arg(long)]
    ids: String,
    /// flex, wgpu or cuda (the last two need `--features wgpu|cuda`).
    #[arg(long, default_value = "flex", value_parser = parse_backend)]
    backend: BackendKind,
    /// Device index for GPU backends.
    #[arg(long, default_value_t = 0)]
    device: usize,
    /// Weight dtype in memory: f32, f16, bf16.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    dtype: DType,
    /// How many logits to print per position.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// A PEFT LoRA adapter directory, applied without merging.
    #[arg(long)]
    adapter: Option<PathBuf>,
}

struct Logits {
    model: PathBuf,
    ids: Vec<u32>,
    dtype: DType,
    top: usize,
    adapter: Option<PathBuf>,
}

impl BackendTask for Logits {
    type Output = anyhow::Result<serde_json::Value>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let options = LoadOptions { dtype: self.dtype, ..Default::default() };
        let mut model = load_model::<B>(&self.model, options, &device)
            .with_context(|| format!("loading {}", self.model.display()))?;
        if let Some(dir) = &self.adapter {
            let adapter = PeftAdapter::load(dir).with_context(|| format!("loading adapter {}", dir.display()))?;
            adapter.apply(&mut model).with_context(|| format!("applying adapter {}", dir.display()))?;
        }
        let vocab = model.config.vocab_size;
        if let Some(bad) = self.ids.iter().find(|&&id| id as usize >= vocab) {
            bail!("token id {bad} is outside the vocabulary (size {vocab})");
        }
        Ok(top_logits_json(&model, &self.ids, self.top))
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ids = parse_ids(&args.ids)?;
    let model = match args.model {
        Some(m) => m,
        None => default_model()?,
    };
    let task = Logits { model, ids, dtype: args.dtype, top: args.top, adapter: args.adapter };
    let out = run_on(args.backend, args.device, task)??;
    write_json_rows(&out, &mut std::io::stdout().lock())?;
    Ok(())
}
