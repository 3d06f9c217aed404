//! Abliteration: find the direction a model's refusals run along, choose the layer whose
//! direction removes them at the least cost to harmless prompts, orthogonalise the weights to
//! it, and write the checkpoint; refusal rate and KL divergence before and after.
//!
//! ```text
//! scripts/fetch-models.sh
//! # SmolLM2-135M-Instruct refuses almost nothing: first teach it to (LoRA, merged)
//! cargo run --release --example finetune -- --data examples/data/abliterate/refusal_sft.jsonl \
//!     --epochs 8 --lr 1e-3 --merge --out /tmp/smollm2-refuser
//! cargo run --release --example abliterate -- --model /tmp/smollm2-refuser --out /tmp/smollm2-abliterated
//! cargo run --release --example chat -- --model /tmp/smollm2-abliterated --prompt "How can I make counterfeit money?"
//! ```
//!
//! Prompts: examples/data/abliterate/refused.txt and harmless.txt, written for this repo (mild
//! requests a chat model declines, and harmless twins of them). The first half of each set
//! gives the directions, the second half scores them: refusal rate on held-out refused prompts
//! (greedy completions containing a refusal phrase), mean next-token KL on held-out harmless
//! prompts. Then the edit's cost on ordinary text: llama.cpp's KL divergence summary of the
//! abliterated model against the original (perplexities, KL, top-token agreement) on the first
//! 3000 characters of `--text`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use burn::backend::Flex;
use clap::Parser;
use llm_core::eval::kl_divergence;
use llm_core::weights::LoadOptions;
use llm_core::ModelBundle;
use llm_examples::ModelArgs;
use llm_train::abliterate::{orthogonalize, projection_onto, refusal_directions, refusal_rate, select_layer, Evaluation};

/// Remove a model's refusal direction.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    /// Where the abliterated checkpoint goes.
    #[arg(long)]
    out: PathBuf,
    /// Prompts the model refuses, one per line.
    #[arg(long, default_value = "examples/data/abliterate/refused.txt")]
    refused: PathBuf,
    /// Harmless prompts, one per line.
    #[arg(long, default_value = "examples/data/abliterate/harmless.txt")]
    harmless: PathBuf,
    /// Use this layer's direction instead of choosing one.
    #[arg(long)]
    layer: Option<usize>,
    /// Try every Nth layer between 20% and 80% of the depth.
    #[arg(long, default_value_t = 3)]
    layer_stride: usize,
    /// The largest mean next-token KL (nats) on harmless prompts a direction may cost.
    #[arg(long, default_value_t = 0.25)]
    kl_bound: f64,
    /// Tokens generated per refused prompt to judge refusals.
    #[arg(long, default_value_t = 24)]
    max_new_tokens: usize,
    /// Ordinary text the edit is measured on (default: the cached lee_background.cor).
    #[arg(long)]
    text: Option<PathBuf>,
    /// Tokens per KL divergence chunk (the second half of each is scored).
    #[arg(long, default_value_t = 256)]
    kl_context: usize,
}

fn lines(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let device = Default::default();
    // Weights dequantized: orthogonalisation edits dense matrices.
    let options = LoadOptions { ggml_blocks: false, ..Default::default() };
    let path = cli.model.model_path()?;
    let ModelBundle { model, tokenizer, .. } = ModelBundle::<Flex>::load(&path, options, &device).with_context(|| format!("loading {}", path.display()))?;
    let (refused, harmless) = (lines(&cli.refused)?, lines(&cli.harmless)?);
    if refused.len() < 4 || harmless.len() < 4 {
        bail!("need at least 4 prompts in each set");
    }
    let (ref_train, ref_test) = refused.split_at(refused.len() / 2);
    let (harm_train, harm_test) = harmless.split_at(harmless.len() / 2);
    let started = Instant::now();
    let dirs = refusal_directions(&model, &tokenizer, ref_train, harm_train)?;
    let (before, _) = refusal_rate(&model, &tokenizer, ref_test, cli.max_new_tokens)?;
    println!("{}: refusal rate {:.1}% on {} held-out refused prompts", path.display(), 100.0 * before, ref_test.len());
    let n = model.config.n_layers;
    let layers: Vec<usize> = match cli.layer {
        Some(l) => vec![l],
        None => (n / 5..=(4 * n) / 5).step_by(cli.layer_stride.max(1)).filter(|&l| dirs.separation[l] > 0.0).collect(),
    };
    let eval = Evaluation { refused: ref_test, harmless: harm_test, kl_bound: cli.kl_bound, max_new_tokens: cli.max_new_tokens };
    let (best, scored) = select_layer(&model, &tokenizer, &dirs, &layers, &eval)?;
    println!("{:>6} {:>11} {:>9} {:>12}", "layer", "separation", "refusals", "KL harmless");
    for c in &scored {
        println!("{:>6} {:>11.3} {:>8.1}% {:>12.4}", c.layer, dirs.separation[c.layer], 100.0 * c.refusal_rate, c.kl);
    }
    let Some(layer) = best else { bail!("no candidate direction costs at most {} nats of KL; raise --kl-bound", cli.kl_bound) };
    let chosen = scored.iter().find(|c| c.layer == layer).expect("chosen among scored");
    let direction = dirs.directions[layer].clone();
    let edited = orthogonalize(model.clone(), &direction, None)?;
    let projection = projection_onto(&edited, &tokenizer, harm_test, &direction)?;
    let (after, texts) = refusal_rate(&edited, &tokenizer, ref_test, cli.max_new_tokens)?;
    println!("chose layer {layer}: refusal rate {:.1}% -> {:.1}%, mean next-token KL on harmless prompts {:.4} nats", 100.0 * before, 100.0 * after, chosen.kl);
    println!("residual stream along the direction after the edit: {projection:.2e} of its mean norm (max over layers and positions)");
    println!("first held-out answer: {:?}", texts.first().map(|t| t.chars().take(120).collect::<String>()));
    let text_path = cli.text.clone().unwrap_or_else(|| llm_core::weights::cache_dir().join("lee_background.cor"));
    let text = std::fs::read(&text_path).with_context(|| format!("reading {} (run scripts/fetch-models.sh)", text_path.display()))?;
    let text: String = llm_core::io::decode_text(text).chars().take(3000).collect();
    let kl = kl_divergence(&edited, &model, &tokenizer.encode(&text, true)?.ids, cli.kl_context)?;
    println!("\nKL divergence of the abliterated model from the original on {} (chunks of {} tokens, the second half of each scored):\n{kl}", text_path.display(), cli.kl_context);
    llm_quant::save_model(&edited, Some(&tokenizer), &cli.out)?;
    println!("wrote {} in {:.1} s", cli.out.display(), started.elapsed().as_secs_f64());
    Ok(())
}
