//! Sliding-window perplexity of a text file.
//!
//! ```text
//! cargo run --release --example perplexity -- --text fixtures/i_generate/smollm2_ppl_text.txt --context 256 --stride 128
//! ```

use std::path::PathBuf;

use anyhow::Context;
use burn::tensor::backend::Backend;
use clap::Parser;
use llm_core::backend::BackendTask;
use llm_examples::run_on;
use llm_core::eval::perplexity;
use llm_examples::ModelArgs;

/// Perplexity of a model on a text.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    /// UTF-8 text file.
    #[arg(long)]
    text: PathBuf,
    /// Window length in tokens.
    #[arg(long, default_value_t = 512)]
    context: usize,
    /// Tokens between window starts.
    #[arg(long, default_value_t = 256)]
    stride: usize,
    /// Also write the text's token ids here as a JSON array (for
    /// `scripts/llama_cpp_perplexity.py`, which runs llama.cpp on the same ids and windows).
    #[arg(long)]
    ids_out: Option<PathBuf>,
}

struct Perplexity(Cli);

impl BackendTask for Perplexity {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let cli = self.0;
        let bundle = cli.model.load_bundle::<B>(&device)?;
        let text = std::fs::read_to_string(&cli.text).with_context(|| format!("reading {}", cli.text.display()))?;
        let ids = bundle.tokenizer.encode(&text, true)?.ids;
        if let Some(path) = &cli.ids_out {
            std::fs::write(path, serde_json::to_string(&ids)?).with_context(|| format!("writing {}", path.display()))?;
        }
        let report = perplexity(&bundle.model, &ids, cli.context, cli.stride)?;
        println!("perplexity: {:.4}", report.perplexity);
        println!("scored tokens: {} (of {}, {} windows)", report.n_tokens(), ids.len(), report.windows);
        println!("transformers recipe (windows weighted by trg_len - 1): {:.4}", report.perplexity_hf_recipe);
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (backend, device) = (cli.model.backend, cli.model.device);
    run_on(backend, device, Perplexity(cli))?
}
