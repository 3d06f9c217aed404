//! Merge models from a mergekit YAML configuration (linear, slerp, task_arithmetic, ties,
//! dare_ties, dare_linear, breadcrumbs, della, passthrough), streamed tensor by tensor into a
//! Hugging Face checkpoint; optionally the perplexity of every input and of the result, and
//! their KL divergence from the base model (llama.cpp's `--kl-divergence` summary for the merge).
//!
//! ```text
//! scripts/fetch-models.sh
//! cargo run --release --example finetune -- --data examples/data/answer_format.jsonl --epochs 2 --merge --out /tmp/smollm2-tuned
//! cargo run --release --example merge -- --config examples/data/merge_smollm2_slerp.yml --out /tmp/smollm2-merged --perplexity
//! cargo run --release --example chat -- --model /tmp/smollm2-merged --prompt "What is the capital of France?"
//! ```
//!
//! Models are Hugging Face directories or GGUF files (dequantized tensor by tensor); relative
//! paths resolve against the YAML's directory first, `~/` against `$HOME`, and `$LLM_CACHE` is
//! the model cache (`~/.cache/llm-rs`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::backend::Flex;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use llm_core::eval::{kl_divergence, perplexity};
use llm_core::weights::LoadOptions;
use llm_core::ModelBundle;
use llm_train::merge::{merge, MergeConfig, MergeOptions, Plan};

/// Merge models as mergekit-yaml does.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The mergekit YAML configuration.
    #[arg(long)]
    config: PathBuf,
    /// Output directory (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Seed of the random drops (DARE, DELLA).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Largest shard in bytes.
    #[arg(long, default_value_t = 5_000_000_000)]
    max_shard_bytes: u64,
    /// Do not copy the tokenizer.
    #[arg(long)]
    no_copy_tokenizer: bool,
    /// Report the perplexity of each input and of the merge on held-out text, and their KL
    /// divergence from the base model (`base_model`, else the model the output's config comes from).
    #[arg(long)]
    perplexity: bool,
    /// Text for `--perplexity` (default: the cached lee_background.cor, first 3000 characters).
    #[arg(long)]
    text: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let yaml = std::fs::read_to_string(&cli.config).with_context(|| format!("reading {}", cli.config.display()))?;
    let yaml = llm_examples::expand_paths(&yaml);
    let config = MergeConfig::from_yaml(&yaml, &cli.config)?;
    let plan = Plan::build(&config, cli.config.parent())?;
    let inputs: Vec<(String, PathBuf)> = plan.models.iter().map(|m| (m.name.clone(), m.dir.clone())).collect();
    // `base_model` comes first among the plan's models when the configuration names one.
    let base = if config.base_model.is_some() { 0 } else { plan.reference };
    let bar = ProgressBar::new(plan.tensors.len() as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} tensors {msg}")?);
    let options = MergeOptions { seed: cli.seed, max_shard_bytes: cli.max_shard_bytes, copy_tokenizer: !cli.no_copy_tokenizer };
    let report = merge(&config, plan, &yaml, &cli.out, &options, &mut |done, _, name| {
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
    })?;
    bar.finish_and_clear();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!("merge_method: {}  ->  {}", config.merge_method, cli.out.display());
    println!("  {} tensors, {} layers, {} shard(s), {:.1} MiB written in {:.2} s", report.tensors, report.n_layers, report.shards, mib(report.bytes_written), report.seconds);
    println!(
        "  tensor values held at once: {:.1} MiB peak, against {:.1} MiB for the largest layer set of all inputs ({:.2}x); peak RSS {:.1} MiB",
        mib(report.peak_tensor_bytes),
        mib(report.largest_layer_bytes),
        report.peak_tensor_bytes as f64 / report.largest_layer_bytes.max(1) as f64,
        peak_rss_mib()
    );
    if cli.perplexity {
        let text = std::fs::read(cli.text.clone().unwrap_or_else(|| llm_core::weights::cache_dir().join("lee_background.cor")))?;
        let text: String = llm_core::io::decode_text(text).chars().take(3000).collect();
        report_quality(&inputs, base, &cli.out, &text)?;
    }
    Ok(())
}

/// Perplexity over 256-token windows (stride 128) of every input and of the merge, and the KL
/// divergence of each from the base on 256-token chunks of the same tokens (the base's
/// tokenizer: a merge needs one vocabulary).
fn report_quality(inputs: &[(String, PathBuf)], base: usize, merged: &Path, text: &str) -> anyhow::Result<()> {
    let device = Default::default();
    let load = |path: &Path| ModelBundle::<Flex>::load(path, LoadOptions::default(), &device).with_context(|| format!("loading {}", path.display()));
    let reference = load(&inputs[base].1)?;
    let ids = reference.tokenizer.encode(text, true)?.ids;
    let mut merged_kl = None;
    for (k, (name, path)) in inputs.iter().cloned().chain([("merged".to_string(), merged.to_path_buf())]).enumerate() {
        let loaded = if k == base { None } else { Some(load(&path)?) };
        let model = loaded.as_ref().map_or(&reference.model, |b| &b.model);
        let ppl = perplexity(model, &ids, 256, 128)?.perplexity;
        if k == base {
            println!("  perplexity {ppl:8.3}  (the base)  {name}");
            continue;
        }
        let kl = kl_divergence(model, &reference.model, &ids, 256)?;
        println!("  perplexity {ppl:8.3}  KL from the base {:.6} ± {:.6} (same top {:5.1}%)  {name}", kl.mean_kl, kl.kl_stderr, 100.0 * kl.same_top);
        if k == inputs.len() {
            merged_kl = Some(kl);
        }
    }
    if let Some(kl) = merged_kl {
        println!("\nKL divergence of the merge from the base `{}` (chunks of 256 tokens, the second half of each scored):\n{kl}", inputs[base].0);
    }
    Ok(())
}

/// Peak resident memory of this process (Linux `VmHWM`), MiB; 0 elsewhere.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
