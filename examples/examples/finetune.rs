//! Supervised fine-tuning: full, LoRA or QLoRA, on a JSONL dataset (chat `messages`,
//! `prompt`/`completion`, Alpaca or `text` records), with completion-only loss.
//!
//! ```text
//! scripts/fetch-models.sh
//! cargo run --release --example finetune -- --data examples/data/answer_format.jsonl \
//!     --eval examples/data/answer_format_eval.jsonl --method lora --r 8 --alpha 16 \
//!     --targets all-linear --epochs 4 --out /tmp/smollm2-lora
//! cargo run --release --example chat -- --adapter /tmp/smollm2-lora --prompt "What is the capital of Hungary?"
//! ```
//!
//! `--out DIR` receives the PEFT adapter (`adapter_config.json` + `adapter_model.safetensors`,
//! loadable by peft and by `--adapter`), or with `--merge` / `--method full` a merged Hugging
//! Face checkpoint. Checkpoints (`checkpoint-<step>/`) and `metrics.jsonl` go to `--run-dir`
//! (default `DIR-run`); `--resume DIR-run/checkpoint-N` continues a run exactly. `curves.svg`
//! beside them draws the train and eval loss, redrawn after every step.
//!
//! Data parallel: the same command once per replica with `--world-size N --rank R --master
//! HOST:PORT` (rank 0's address; on N GPUs add `--backend cuda --device R`); each replica runs
//! `--batch-size` examples of every step, so N replicas train as one process with N times the
//! batch. Rank 0 writes the metrics, checkpoints and the result; `--resume` works unchanged.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::Backend;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use llm_core::backend::BackendTask;
use llm_examples::run_on;
use llm_core::weights::LoadOptions;
use llm_core::ModelBundle;
use llm_examples::ModelArgs;
use llm_train::data::load_jsonl;
use llm_train::lora::{attach_lora, LoraSpec, TargetModules};
use llm_train::optim::{AdamWConfig, Schedule};
use llm_train::params::{param_infos, set_trainable};
use llm_train::peft::{save_adapter, save_merged};
use llm_train::qlora::{merge_qlora, quantize_base_nf4, MergeBase};
use llm_train::sft::{SftTokenizer, TokenizedExample};
use llm_train::trainer::{TrainConfig, TrainEvent, Trainer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MethodArg {
    /// Every parameter trains.
    Full,
    /// LoRA adapters on a frozen float base.
    Lora,
    /// LoRA adapters on a frozen NF4 base.
    Qlora,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MergeInto {
    /// The dequantized NF4 weights the adapter was trained against.
    Nf4,
    /// The original float weights.
    Float,
}

/// Fine-tune a model on a JSONL dataset.
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
    /// Training data (JSONL).
    #[arg(long)]
    data: PathBuf,
    /// Evaluation data (JSONL); without it `--eval-fraction` of the training data is held out.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Fraction of the training data held out for evaluation when `--eval` is not given.
    #[arg(long, default_value_t = 0.0)]
    eval_fraction: f64,
    /// full, lora or qlora.
    #[arg(long, value_enum, default_value = "lora")]
    method: MethodArg,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    r: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 16.0)]
    alpha: f64,
    /// LoRA dropout.
    #[arg(long, default_value_t = 0.05)]
    dropout: f64,
    /// `all-linear`, a comma list of module names (last segments, as peft) or `re:<regex>`.
    #[arg(long, default_value = "all-linear")]
    targets: String,
    /// Scale by alpha/√r (rsLoRA).
    #[arg(long)]
    rslora: bool,
    /// QLoRA: double-quantize the NF4 absmax values.
    #[arg(long)]
    double_quant: bool,
    /// Passes over the data.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Stop after this many optimizer steps (overrides --epochs).
    #[arg(long)]
    max_steps: Option<u64>,
    /// Examples per micro-batch.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    /// constant, linear or cosine.
    #[arg(long, default_value = "cosine")]
    schedule: String,
    /// Linear warmup steps.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Global gradient-norm clip (0 = off).
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Pack each micro-batch padding-free into rows of at most this many tokens.
    #[arg(long)]
    packing: Option<usize>,
    /// Truncate examples to this many tokens.
    #[arg(long, default_value_t = 1024)]
    max_length: usize,
    /// Evaluate every N steps (and at the end).
    #[arg(long)]
    eval_every: Option<u64>,
    /// Checkpoint every N steps.
    #[arg(long)]
    save_every: Option<u64>,
    /// Seed for the shuffle, dropout and LoRA init.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where the adapter or merged model goes.
    #[arg(long)]
    out: PathBuf,
    /// Checkpoints and metrics.jsonl (default: `<out>-run`).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue from a checkpoint directory.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Write a merged checkpoint instead of the adapter.
    #[arg(long)]
    merge: bool,
    /// QLoRA merge base.
    #[arg(long, value_enum, default_value = "nf4")]
    merge_into: MergeInto,
}

struct Task(Cli);

impl BackendTask for Task {
    type Output = anyhow::Result<()>;
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        finetune::<Autodiff<B>>(self.0, device)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    run_on(cli.model.backend, cli.model.device, Task(cli.clone()))?
}

fn tokenize(path: &Path, st: &SftTokenizer<'_>) -> anyhow::Result<Vec<TokenizedExample>> {
    let records = load_jsonl(path)?;
    st.tokenize_all(&records).with_context(|| format!("tokenizing {}", path.display()))
}

fn finetune<B: burn::tensor::backend::AutodiffBackend>(cli: Cli, device: B::Device) -> anyhow::Result<()> {
    let path = cli.model.model_path()?;
    let options = LoadOptions { dtype: cli.model.dtype, ..Default::default() };
    let bundle = ModelBundle::<B>::load(&path, options, &device).with_context(|| format!("loading {}", path.display()))?;
    let tokenizer = bundle.tokenizer;
    let st = SftTokenizer { tokenizer: &tokenizer, max_length: cli.max_length };
    let mut train = tokenize(&cli.data, &st)?;
    let eval = match &cli.eval {
        Some(p) => tokenize(p, &st)?,
        None if cli.eval_fraction > 0.0 => {
            let n = ((train.len() as f64) * cli.eval_fraction).ceil() as usize;
            if n >= train.len() {
                bail!("--eval-fraction {} leaves no training data", cli.eval_fraction);
            }
            train.split_off(train.len() - n)
        }
        None => vec![],
    };
    let pad_id = bundle.generation.pad_token_id.or(tokenizer.eos_token_id()).unwrap_or(0);

    // The float weights stay alive only when a QLoRA merge into them was asked for.
    let keep_float = cli.method == MethodArg::Qlora && cli.merge && cli.merge_into == MergeInto::Float;
    let mut float_model = Some(bundle.model);
    let spec = LoraSpec {
        r: cli.r,
        alpha: cli.alpha,
        dropout: cli.dropout,
        use_rslora: cli.rslora,
        targets: TargetModules::parse(&cli.targets),
        ..Default::default()
    };
    let model = match cli.method {
        MethodArg::Full => set_trainable(float_model.take().expect("loaded"), |_| true),
        MethodArg::Lora => attach_lora(float_model.take().expect("loaded"), &spec, cli.seed)?.0,
        MethodArg::Qlora => {
            let mut m = if keep_float { float_model.clone().expect("loaded") } else { float_model.take().expect("loaded") };
            let reports = quantize_base_nf4(&mut m, cli.double_quant)?;
            let bytes: usize = reports.iter().map(|r| r.bytes).sum();
            eprintln!("QLoRA base: {} layers in NF4, {:.1} MiB", reports.len(), bytes as f64 / (1 << 20) as f64);
            attach_lora(m, &spec, cli.seed)?.0
        }
    };
    let infos = param_infos(&model);
    let trainable: usize = infos.iter().filter(|p| p.trainable).map(|p| p.numel()).sum();
    let total: usize = infos.iter().map(|p| p.numel()).sum();
    eprintln!(
        "{:?}: {trainable} trainable parameters of {total} ({:.3}%); {} train / {} eval examples",
        cli.method,
        100.0 * trainable as f64 / total as f64,
        train.len(),
        eval.len()
    );

    let run_dir = cli.run_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}-run", cli.out.display())));
    let config = TrainConfig {
        optimizer: AdamWConfig { lr: cli.lr, weight_decay: cli.weight_decay, ..Default::default() },
        schedule: Schedule::parse(&cli.schedule)?,
        warmup_steps: cli.warmup,
        epochs: cli.epochs,
        max_steps: cli.max_steps,
        batch_size: cli.batch_size,
        grad_accum: cli.grad_accum,
        max_grad_norm: (cli.max_grad_norm > 0.0).then_some(cli.max_grad_norm),
        packing: cli.packing,
        eval_every: cli.eval_every,
        save_every: cli.save_every,
        output_dir: Some(run_dir.clone()),
        seed: cli.seed,
        gradient_checkpointing: cli.gradient_checkpointing,
    };
    let mut trainer = cli.parallel.apply(Trainer::new(model, config, pad_id)?)?;
    if let Some(dir) = &cli.resume {
        trainer.resume(dir).with_context(|| format!("resuming from {}", dir.display()))?;
        eprintln!("resumed at step {}", trainer.step());
    }
    let eval_set = (!eval.is_empty()).then_some(eval.as_slice());
    if let Some(e) = eval_set {
        eprintln!("eval loss before training: {:.4}", trainer.evaluate(e)?);
    }
    let total_steps = trainer.total_steps(train.len());
    let bar = ProgressBar::new(total_steps);
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] step {pos}/{len} {msg}").expect("valid template"));
    bar.set_position(trainer.step());
    let title = format!("{:?} fine-tuning of {}", cli.method, llm_examples::curves::file_name(&path));
    // Rank 0 writes metrics.jsonl; the other replicas have no curves to draw.
    let is_main = cli.parallel.is_main();
    let report = trainer.fit(&train, eval_set, |e| match e {
        TrainEvent::Step(m) => {
            if is_main {
                llm_examples::curves::redraw(&bar, &run_dir, &title);
            }
            bar.set_position(m.step);
            bar.set_message(format!(
                "loss {:.4} lr {:.2e} |g| {:.3} {:.0} tok/s",
                m.loss,
                m.lr,
                m.grad_norm,
                m.tokens as f64 / m.seconds
            ));
        }
        TrainEvent::Eval { step, eval_loss, .. } => {
            if is_main {
                llm_examples::curves::redraw(&bar, &run_dir, &title);
            }
            bar.println(format!("step {step}: eval loss {eval_loss:.4}"))
        }
        TrainEvent::Checkpoint { dir, .. } => bar.println(format!("checkpoint {}", dir.display())),
    })?;
    bar.finish();
    eprintln!("trained {} steps at {:.0} tokens/s", report.steps.len(), report.tokens_per_second);
    if is_main {
        eprintln!("metrics in {}, curves in {}", run_dir.join("metrics.jsonl").display(), run_dir.join("curves.svg").display());
    }

    if !cli.parallel.is_main() {
        // Every replica holds the same weights; rank 0 writes them.
        eprintln!("rank {}: done; rank 0 writes the model", cli.parallel.rank);
        return Ok(());
    }
    let trained = trainer.model.valid();
    let base_name = path.display().to_string();
    match (cli.method, cli.merge) {
        (MethodArg::Full, _) => {
            llm_quant::save_model(&trained, Some(&tokenizer), &cli.out)?;
            eprintln!("wrote the fine-tuned model to {}", cli.out.display());
        }
        (MethodArg::Lora, false) | (MethodArg::Qlora, false) => {
            save_adapter(&trained, &spec, &base_name, &cli.out)?;
            eprintln!("wrote the PEFT adapter to {}", cli.out.display());
        }
        (MethodArg::Lora, true) => {
            save_merged(&trained, Some(&tokenizer), &cli.out)?;
            eprintln!("wrote the merged model to {}", cli.out.display());
        }
        (MethodArg::Qlora, true) => {
            let original = float_model.map(|m| m.valid());
            let base = match (&original, cli.merge_into) {
                (Some(o), MergeInto::Float) => MergeBase::Original(o),
                _ => MergeBase::Dequantized,
            };
            let (merged, diffs) = merge_qlora(&trained, base)?;
            if !diffs.is_empty() {
                let worst = diffs.iter().map(|d| d.max_abs).fold(0.0, f64::max);
                let mean_rel = diffs.iter().map(|d| d.relative).sum::<f64>() / diffs.len() as f64;
                eprintln!("merged into the float base; NF4 and float bases differ by max |ΔW| {worst:.4e}, mean relative {mean_rel:.4}");
            }
            llm_quant::save_model(&merged, Some(&tokenizer), &cli.out)?;
            eprintln!("wrote the merged model to {}", cli.out.display());
        }
    }
    if let Some(peak) = report.peak_rss_bytes {
        eprintln!("peak resident memory during training: {:.0} MiB", peak as f64 / (1u64 << 20) as f64);
    }
    Ok(())
}
