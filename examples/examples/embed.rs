//! Sentence embeddings with a sentence-transformers model (default all-MiniLM-L6-v2, fetched
//! by `scripts/fetch-models.sh`): one JSON array per text, in order.
//!
//! ```text
//! cargo run --release --example embed -- --text "The cat sits outside." --text "A man is playing guitar."
//! ```

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::backend::Backend;
use clap::Parser;
use llm_core::backend::{BackendKind, BackendTask};
use llm_examples::run_on;
use llm_examples::parse_backend;
use llm_rag::embed::{default_model_dir, Embedder, SentenceTransformer};

/// Embed texts and print the vectors as JSON.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// A sentence-transformers directory (default: the cached all-MiniLM-L6-v2).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A text to embed (repeatable).
    #[arg(long = "text", required = true)]
    texts: Vec<String>,
    /// flex, wgpu or cuda.
    #[arg(long, default_value = "flex", value_parser = parse_backend)]
    backend: BackendKind,
    /// Device index for GPU backends.
    #[arg(long, default_value_t = 0)]
    device: usize,
}

struct Task {
    dir: PathBuf,
    texts: Vec<String>,
}

impl BackendTask for Task {
    type Output = anyhow::Result<Vec<Vec<f32>>>;
    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let model = SentenceTransformer::<B>::load(&self.dir, &device).with_context(|| format!("loading {}", self.dir.display()))?;
        let texts: Vec<&str> = self.texts.iter().map(String::as_str).collect();
        Ok(model.embed(&texts)?)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let dir = cli.model.unwrap_or_else(default_model_dir);
    if !dir.join("config.json").exists() {
        anyhow::bail!("{} is not a model directory; run scripts/fetch-models.sh or pass --model DIR", dir.display());
    }
    let vectors = run_on(cli.backend, cli.device, Task { dir, texts: cli.texts })??;
    for v in vectors {
        println!("{}", serde_json::to_string(&v)?);
    }
    Ok(())
}
