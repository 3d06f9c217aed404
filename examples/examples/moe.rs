//! frankenMoE from mergekit-moe's YAML: a Mixtral with the base model's attention and the
//! experts' MLPs, routers from prompts; prints where each expert's prompts are routed.
//!
//! ```text
//! scripts/fetch-models.sh
//! cargo run --release --example finetune -- --data examples/data/answer_format.jsonl --epochs 4 --merge --out /tmp/smollm2-tuned
//! cargo run --release --example moe -- --config examples/data/moe_smollm2.yml --out /tmp/smollm2-moe
//! cargo run --release --example chat -- --model /tmp/smollm2-moe --prompt "What is the capital of Hungary?"
//! ```

use std::path::PathBuf;

use anyhow::Context;
use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use clap::Parser;
use llm_core::weights::LoadOptions;
use llm_core::{ModelBundle, ModelInput};
use llm_train::merge::moe::{merge_moe, MoeConfig};

/// Build a Mixtral from dense models, as mergekit-moe does.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The mergekit-moe YAML configuration.
    #[arg(long)]
    config: PathBuf,
    /// Output directory (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Seed of random gates and expert noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let yaml = std::fs::read_to_string(&cli.config).with_context(|| format!("reading {}", cli.config.display()))?;
    let config = MoeConfig::from_yaml(&llm_examples::expand_paths(&yaml), &cli.config)?;
    let device = Default::default();
    let report = merge_moe::<Flex>(&config, cli.config.parent(), &cli.out, cli.seed, &device)?;
    println!("wrote {}: {} experts x {} layers, {} tensors, gate_mode {}", cli.out.display(), report.n_experts, report.n_layers, report.tensors, config.gate_mode);
    // Where the Mixtral routes each expert's positive prompts (top-1 at the last token).
    let ModelBundle { model, tokenizer, .. } = ModelBundle::<Flex>::load(&cli.out, LoadOptions::default(), &device)?;
    let bos = tokenizer.bos_token().unwrap_or("").to_string();
    for (e, expert) in config.experts.iter().enumerate() {
        for prompt in &expert.positive_prompts {
            let ids: Vec<i64> = tokenizer.encode(&format!("{bos}{prompt}"), false)?.ids.iter().map(|&i| i64::from(i)).collect();
            let n = ids.len();
            let input = Tensor::<Flex, 2, Int>::from_data(TensorData::new(ids, [1, n]), &device);
            let out = model.forward_with(ModelInput::new(input), None)?;
            let mut hits = 0;
            for r in &out.router_logits {
                let r: Vec<f32> = r.clone().into_data().convert::<f32>().into_vec().expect("f32");
                let last = &r[(n - 1) * report.n_experts..n * report.n_experts];
                let top = (0..last.len()).max_by(|&a, &b| last[a].total_cmp(&last[b])).expect("experts");
                hits += usize::from(top == e);
            }
            println!("  expert {e} ({}): {prompt:?} routed to it in {hits}/{} layers", expert.source_model, out.router_logits.len());
        }
    }
    Ok(())
}
