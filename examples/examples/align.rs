//! Preference alignment: DPO or ORPO on `prompt`/`chosen`/`rejected` JSONL, with LoRA (fresh,
//! or continuing an SFT adapter) or full fine-tuning.
//!
//! ```text
//! scripts/fetch-models.sh
//! cargo run --release --example align -- --data examples/data/polite_prefs.jsonl --method dpo \
//!     --beta 0.1 --max-steps 60 --out /tmp/smollm2-dpo
//! cargo run --release --example align -- --data examples/data/polite_prefs.jsonl --eval-only
//! ```
//!
//! The reference log-probs (DPO) come from `--ref-model`, or else from the policy as it is
//! before training (the base model, or the base with `--adapter`), computed once up front and
//! cached in `--ref-cache FILE` when given. `--eval-only` prints the loss, every pair's
//! log-probs and the metrics as JSON without changing any weight.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use llm_core::adapter::PeftAdapter;
use llm_core::backend::BackendTask;
use llm_examples::run_on;
use llm_core::weights::{load_model, LoadOptions};
use llm_core::{CausalLm, ModelBundle};
use llm_examples::ModelArgs;
use llm_train::dpo::{evaluate_pairs, precompute_reference, Dpo, DpoLoss, ReferenceSource};
use llm_train::lora::{attach_lora, LoraSpec, TargetModules};
use llm_train::optim::{AdamWConfig, Schedule};
use llm_train::orpo::Orpo;
use llm_train::params::{is_lora, set_trainable};
use llm_train::peft::save_adapter;
use llm_train::pref::{load_preferences, PrefTokenizer, TokenizedPair};
use llm_train::trainer::{TrainConfig, TrainEvent, Trainer};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MethodArg {
    /// Direct Preference Optimization (needs a reference).
    Dpo,
    /// Odds-Ratio Preference Optimization (no reference).
    Orpo,
}

/// Align a model with preference pairs.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    parallel: llm_examples::parallel::ParallelArgs,
    /// Keep only each decoder layer's input and recompute the layer in the backward pass
    /// (less memory, one more forward pass per step).
    #[arg(long)]
    gradient_checkpointing: bool,
    /// Preference data (JSONL: prompt, chosen, rejected).
    #[arg(long)]
    data: PathBuf,
    /// dpo or orpo.
    #[arg(long, value_enum, default_value = "dpo")]
    method: MethodArg,
    /// DPO β / ORPO λ.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// DPO loss: sigmoid, robust, hinge or ipo.
    #[arg(long, default_value = "sigmoid")]
    loss: String,
    /// Label smoothing for sigmoid / robust.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f64,
    /// Reference model (default: the policy before training).
    #[arg(long)]
    ref_model: Option<PathBuf>,
    /// Cache the reference log-probs in this JSON file (reused when it matches the data).
    #[arg(long)]
    ref_cache: Option<PathBuf>,
    /// Print loss, per-sequence log-probs and metrics as JSON; change nothing.
    #[arg(long)]
    eval_only: bool,
    /// Train every parameter instead of LoRA.
    #[arg(long)]
    full: bool,
    /// QLoRA: hold the frozen base in NF4 (double-quantized); the reference is that base too.
    #[arg(long, conflicts_with = "full")]
    qlora: bool,
    /// LoRA rank (new adapters).
    #[arg(long, default_value_t = 8)]
    r: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 16.0)]
    alpha: f64,
    /// LoRA targets: `all-linear`, names, or `re:<regex>`.
    #[arg(long, default_value = "all-linear")]
    targets: String,
    /// Passes over the data.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Pairs per micro-batch.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Micro-batches per step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-5)]
    lr: f64,
    /// constant, linear or cosine.
    #[arg(long, default_value = "linear")]
    schedule: String,
    /// Warmup steps.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Prompt + completion at most this many tokens.
    #[arg(long, default_value_t = 512)]
    max_length: usize,
    /// Prompt at most this many tokens (its end is kept).
    #[arg(long)]
    max_prompt_length: Option<usize>,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where the adapter (or full model) goes.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Checkpoints and metrics.jsonl (default `<out>-run`).
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

struct Task(Cli);

impl BackendTask for Task {
    type Output = anyhow::Result<()>;
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        align::<Autodiff<B>>(self.0, device)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    run_on(cli.model.backend, cli.model.device, Task(cli.clone()))?
}

fn align<B: AutodiffBackend>(cli: Cli, device: B::Device) -> anyhow::Result<()> {
    let path = cli.model.model_path()?;
    let options = LoadOptions { dtype: cli.model.dtype, ..Default::default() };
    let bundle = ModelBundle::<B>::load(&path, options, &device).with_context(|| format!("loading {}", path.display()))?;
    let tokenizer = bundle.tokenizer;
    let pad_id = bundle.generation.pad_token_id.or(tokenizer.eos_token_id()).unwrap_or(0);
    let data = load_preferences(&cli.data)?;
    let pt = PrefTokenizer { tokenizer: &tokenizer, max_length: Some(cli.max_length), max_prompt_length: cli.max_prompt_length, max_completion_length: None };
    let (mut pairs, truncated) = pt.tokenize_all(&data)?;
    eprintln!(
        "{} pairs; truncated: {} prompts, {} sequences (max_length {}, max_prompt_length {:?})",
        pairs.len(),
        truncated.prompts,
        truncated.sequences,
        cli.max_length,
        cli.max_prompt_length
    );

    let mut model = bundle.model;
    let mut spec = LoraSpec { r: cli.r, alpha: cli.alpha, targets: TargetModules::parse(&cli.targets), ..Default::default() };
    if cli.qlora {
        let reports = llm_train::qlora::quantize_base_nf4(&mut model, true)?;
        eprintln!("QLoRA base: {} layers in NF4", reports.len());
    }
    if let Some(dir) = &cli.model.adapter {
        // Applied here rather than by load_bundle: the adapter keeps training.
        let adapter = PeftAdapter::load(dir).with_context(|| format!("loading adapter {}", dir.display()))?;
        adapter.apply(&mut model)?;
        // The same config type: rank, alpha, dropout and targets carry over as the file says.
        spec = adapter.config.clone();
    }

    if cli.method == MethodArg::Dpo {
        let reference = match &cli.ref_model {
            Some(r) => load_model::<B::InnerBackend>(r, options, &device).with_context(|| format!("loading {}", r.display()))?,
            None => model.valid(),
        };
        reference_logps(&reference, &mut pairs, &cli, pad_id)?;
    }
    let model = if cli.full {
        set_trainable(model, |_| true)
    } else if cli.model.adapter.is_some() {
        set_trainable(model, is_lora)
    } else {
        attach_lora(model, &spec, cli.seed)?.0
    };
    let dpo = Dpo { beta: cli.beta, loss: DpoLoss::parse(&cli.loss, cli.label_smoothing)?, reference: ReferenceSource::Precomputed, pad_id };
    dpo.validate()?;
    let orpo = Orpo { lambda: cli.beta, pad_id };

    if cli.eval_only {
        return eval_only(&cli, &model.valid(), &dpo, &orpo, &pairs);
    }
    let Some(out) = cli.out.clone() else { bail!("--out DIR is required unless --eval-only") };
    let run_dir = cli.run_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}-run", out.display())));
    let config = TrainConfig {
        optimizer: AdamWConfig { lr: cli.lr, weight_decay: 0.0, ..Default::default() },
        schedule: Schedule::parse(&cli.schedule)?,
        warmup_steps: cli.warmup,
        epochs: cli.epochs,
        max_steps: cli.max_steps,
        batch_size: cli.batch_size,
        grad_accum: cli.grad_accum,
        output_dir: Some(run_dir.clone()),
        seed: cli.seed,
        gradient_checkpointing: cli.gradient_checkpointing,
        ..Default::default()
    };
    let mut trainer = cli.parallel.apply(Trainer::new(model, config, pad_id)?)?;
    let bar = ProgressBar::new(trainer.total_steps(pairs.len()));
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] step {pos}/{len} {msg}").expect("valid template"));
    let title = format!("{:?} of {}", cli.method, llm_examples::curves::file_name(&path));
    // Rank 0 writes metrics.jsonl; the other replicas have no curves to draw.
    let is_main = cli.parallel.is_main();
    let on_event = |e: &TrainEvent| {
        if matches!(e, TrainEvent::Step(_) | TrainEvent::Eval { .. }) {
            if is_main {
                llm_examples::curves::redraw(&bar, &run_dir, &title);
            }
        }
        if let TrainEvent::Step(m) = e {
            bar.set_position(m.step);
            let get = |k: &str| m.metrics.get(k).copied().unwrap_or(f64::NAN);
            bar.set_message(format!(
                "loss {:.4} acc {:.2} margin {:.3} {:.0} tok/s",
                m.loss,
                get("rewards/accuracies"),
                get("rewards/margins"),
                m.tokens as f64 / m.seconds
            ));
        }
    };
    let report = match cli.method {
        MethodArg::Dpo => trainer.fit_with(&dpo, &pairs, None, on_event)?,
        MethodArg::Orpo => trainer.fit_with(&orpo, &pairs, None, on_event)?,
    };
    bar.finish();
    eprintln!("{} steps at {:.0} tokens/s", report.steps.len(), report.tokens_per_second);
    if is_main {
        let (metrics, curves) = (run_dir.join("metrics.jsonl"), run_dir.join("curves.svg"));
        eprintln!("metrics in {}, curves (loss, reward margin and accuracy) in {}", metrics.display(), curves.display());
    }
    if !cli.parallel.is_main() {
        // Every replica holds the same weights; rank 0 writes them.
        eprintln!("rank {}: done; rank 0 writes the model", cli.parallel.rank);
        return Ok(());
    }
    let trained = trainer.model.valid();
    if cli.full {
        llm_quant::save_model(&trained, Some(&tokenizer), &out)?;
    } else {
        save_adapter(&trained, &spec, &path.display().to_string(), &out)?;
    }
    eprintln!("wrote {}", out.display());
    if let Some(peak) = report.peak_rss_bytes {
        eprintln!("peak resident memory during training: {:.0} MiB", peak as f64 / (1u64 << 20) as f64);
    }
    Ok(())
}

/// Fills the pairs' reference log-probs from `reference`, through `--ref-cache` when given.
fn reference_logps<R: Backend>(reference: &CausalLm<R>, pairs: &mut [TokenizedPair], cli: &Cli, pad_id: u32) -> anyhow::Result<()> {
    let key: Vec<_> = pairs.iter().map(|p| json!([p.prompt, p.chosen, p.rejected])).collect();
    let key = format!("{:016x}", llm_core::io::fnv1a(serde_json::to_string(&key)?.as_bytes()));
    if let Some(cache) = cli.ref_cache.as_deref().filter(|c| c.exists()) {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(cache)?)?;
        if v["data_hash"] == key.as_str() {
            let logps = v["logps"].as_array().context("ref cache: logps")?;
            for (p, l) in pairs.iter_mut().zip(logps) {
                p.reference = Some((l[0].as_f64().context("ref cache")?, l[1].as_f64().context("ref cache")?));
            }
            eprintln!("reference log-probs from {}", cache.display());
            return Ok(());
        }
        eprintln!("{} was made for other data; recomputing", cache.display());
    }
    precompute_reference(reference, pairs, cli.batch_size, pad_id)?;
    if let Some(cache) = &cli.ref_cache {
        let logps: Vec<_> = pairs.iter().map(|p| json!([p.reference.unwrap().0, p.reference.unwrap().1])).collect();
        write_atomically(cache, &serde_json::to_string(&json!({"data_hash": key, "logps": logps}))?)?;
    }
    Ok(())
}

fn eval_only<R: Backend>(cli: &Cli, model: &CausalLm<R>, dpo: &Dpo, orpo: &Orpo, pairs: &[TokenizedPair]) -> anyhow::Result<()> {
    let refs: Vec<&TokenizedPair> = pairs.iter().collect();
    let mut rows = vec![];
    let (mut loss, mut metrics) = (0.0, std::collections::BTreeMap::<String, f64>::new());
    for chunk in refs.chunks(cli.batch_size) {
        let (l, logps, m) = match cli.method {
            MethodArg::Dpo => evaluate_pairs(dpo, model, chunk)?,
            MethodArg::Orpo => llm_train::orpo::evaluate_pairs(orpo, model, chunk)?,
        };
        let w = chunk.len() as f64 / pairs.len() as f64;
        loss += l * w;
        for (k, v) in m {
            *metrics.entry(k).or_default() += v * w;
        }
        let n = chunk.len();
        for (i, p) in chunk.iter().enumerate() {
            rows.push(json!({"chosen_logps": logps[i], "rejected_logps": logps[n + i], "reference": p.reference}));
        }
    }
    println!("{}", serde_json::to_string_pretty(&json!({"method": format!("{:?}", cli.method), "loss": loss, "metrics": metrics, "pairs": rows}))?);
    Ok(())
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    llm_core::io::atomic::write_bytes_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}
