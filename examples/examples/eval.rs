//! Benchmark tasks in lm-eval's YAML format, run and scored as lm-eval does; optionally a
//! second model beside the first: its scores, its KL divergence from the first on each task's
//! prompts, and how often the two give the same answer.
//!
//! ```text
//! scripts/fetch-models.sh
//! cargo run --release --example eval -- --tasks capitals_mc,arith_mc,science_mc,capitals_gen,rolling_text
//! cargo run --release --example eval -- --tasks science_mc --num-fewshot 2 --apply-chat-template --fewshot-as-multiturn
//! cargo run --release --example eval -- --tasks capitals_mc --compare /tmp/smollm2-merged
//! cargo run --release --example eval -- --tasks fixtures/bigbench/novel_concepts/task.json
//! ```
//!
//! Writes to `--out` (default `target/eval/<model stem>[-vs-<other stem>]/`): `results.json`
//! (each task's aggregated metrics, and the comparison), `samples.jsonl` (one line per model,
//! task and document: its requests, answers and scores), `report.md` (the tables and a chart
//! per task) and `<task>.svg` (the task's metrics as bars with ±stderr whiskers, the two models
//! side by side under `--compare`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use burn::tensor::backend::Backend;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use llm_core::backend::BackendTask;
use llm_core::eval::harness::{DocResult, MetricValue, Response};
use llm_core::eval::lm::LocalLm;
use llm_core::eval::task::{load_tasks, ChatFormat, PromptOptions, Task};
use llm_core::eval::{evaluate_task, kl_on_sequences, results_table, KlReport, TaskResult};
use llm_core::io::atomic::write_bytes_atomic;
use llm_core::ModelBundle;
use llm_examples::chart::{metric_bars_svg, Bar, Panel};
use llm_examples::{run_on, ModelArgs};
use serde_json::json;

/// Run lm-eval tasks on a local model.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    /// Tasks to run, comma-separated (default: every task in `--tasks-dir`): task names of
    /// `--tasks-dir`, or paths to BIG-bench `task.json` files (run as lm-eval's
    /// `bigbench_<name>_multiple_choice`).
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// The folder of task YAML files.
    #[arg(long, default_value = "examples/data/eval/tasks")]
    tasks_dir: PathBuf,
    /// Documents per task at most (the first ones).
    #[arg(long)]
    limit: Option<usize>,
    /// Few-shot examples per prompt (default: each task's `num_fewshot`, else 0).
    #[arg(long)]
    num_fewshot: Option<usize>,
    /// The few-shot sampler's seed (lm-eval's `--fewshot_random_seed`).
    #[arg(long, default_value_t = 1234)]
    fewshot_seed: u64,
    /// Requests scored per forward pass (scores do not depend on it: padding is on the right).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Tokens per forward pass (default: the model's `max_position_embeddings`).
    #[arg(long)]
    max_length: Option<usize>,
    /// Render prompts through the tokenizer's chat template.
    #[arg(long)]
    apply_chat_template: bool,
    /// Few-shot examples as alternating user/assistant turns (with `--apply-chat-template`).
    #[arg(long)]
    fewshot_as_multiturn: bool,
    /// A system instruction put before each task's description.
    #[arg(long)]
    system_instruction: Option<String>,
    /// GGUF block weights dequantized exactly to f32 at load, instead of run by the quantized
    /// kernels.
    #[arg(long)]
    exact: bool,
    /// A second model (directory or .gguf, the same vocabulary) to run beside the first.
    #[arg(long, value_name = "OTHER_MODEL")]
    compare: Option<PathBuf>,
    /// Output folder (default `target/eval/<model stem>`, `-vs-<other stem>` with `--compare`).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Prompts longer than this are cut to their last tokens for the KL divergence: the full
/// forward it takes holds a `[tokens, vocab]` matrix of log-probabilities per model.
const KL_MAX_TOKENS: usize = 1024;

/// One model's results.
struct ModelRun {
    name: String,
    results: Vec<TaskResult>,
}

/// How the compared model differs from the first on one task.
#[derive(Debug)]
struct Comparison {
    task: String,
    /// `KL(P_model || P_other)` over every next-token position of the task's prompts.
    kl: KlReport,
    /// Fraction of documents where both pick the same choice (multiple choice) or generate the
    /// same text; `None` for perplexity tasks, which have no answer.
    agreement: Option<f64>,
}

struct Eval(Cli);

impl BackendTask for Eval {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let cli = self.0;
        if cli.fewshot_as_multiturn && !cli.apply_chat_template {
            bail!("--fewshot-as-multiturn needs --apply-chat-template (as lm-eval's)");
        }
        let tasks = read_tasks(&cli.tasks_dir, &cli.tasks)?;
        let options = PromptOptions {
            num_fewshot: cli.num_fewshot,
            fewshot_seed: cli.fewshot_seed,
            chat: cli.apply_chat_template.then_some(ChatFormat { fewshot_as_multiturn: cli.fewshot_as_multiturn }),
            system_instruction: cli.system_instruction.clone(),
            limit: cli.limit,
        };
        let path = cli.model.model_path()?;
        let mut names = vec![stem(&path)];
        if let Some(other) = &cli.compare {
            let name = stem(other);
            names.push(if name == names[0] { format!("{name} (compared)") } else { name });
        }
        let bar = progress(tasks.len() * (names.len() + usize::from(cli.compare.is_some())));
        let load = |model: &ModelArgs| -> anyhow::Result<ModelBundle<B>> {
            let options = llm_core::weights::LoadOptions { ggml_blocks: !cli.exact, ..model.load_options() };
            model.load_bundle_with(options, &device)
        };
        let first = load(&cli.model)?;
        let lm = local_lm(&cli, &first, &names[0])?;
        let mut runs = vec![run_tasks(&lm, &tasks, &options, &first, &bar)?];
        let mut comparisons = vec![];
        if let Some(other) = &cli.compare {
            let second = load(&ModelArgs { model: Some(other.clone()), adapter: None, ..cli.model.clone() })?;
            runs.push(run_tasks(&local_lm(&cli, &second, &names[1])?, &tasks, &options, &second, &bar)?);
            for (a, b) in runs[0].results.iter().zip(&runs[1].results) {
                bar.set_message(format!("KL divergence on {} prompts", a.task));
                let prompts = prompt_sequences(&lm, a)?;
                let kl = kl_on_sequences(&second.model, &first.model, &prompts).with_context(|| format!("KL divergence on {}", a.task))?;
                comparisons.push(Comparison { task: a.task.clone(), kl, agreement: agreement(a, b) });
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        for run in &runs {
            println!("{}\n{}", run.name, results_table(&run.results));
        }
        if !comparisons.is_empty() {
            println!("{} against {}\n{}", names[1], names[0], comparison_table(&runs, &comparisons));
        }
        let out = cli.out.clone().unwrap_or_else(|| PathBuf::from("target/eval").join(names.iter().map(|n| n.replace(' ', "_")).collect::<Vec<_>>().join("-vs-")));
        write_outputs(&out, &cli, &runs, &comparisons)?;
        println!("wrote {}", out.display());
        Ok(())
    }
}

/// The name reports give a model: its file stem, or its folder's name.
fn stem(path: &Path) -> String {
    let name = if path.is_dir() { path.file_name() } else { path.file_stem() };
    name.map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().to_string())
}

fn progress(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}").expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn local_lm<'a, B: Backend>(cli: &Cli, bundle: &'a ModelBundle<B>, name: &str) -> anyhow::Result<LocalLm<'a, B>> {
    let mut lm = LocalLm::new(&bundle.model, &bundle.tokenizer)?.with_batch_size(cli.batch_size).with_name(name);
    if let Some(n) = cli.max_length {
        lm = lm.with_max_length(n);
    }
    Ok(lm)
}

/// Every task evaluated with `lm`, a line per task on the progress bar.
fn run_tasks<B: Backend>(lm: &LocalLm<'_, B>, tasks: &[Task], options: &PromptOptions, bundle: &ModelBundle<B>, bar: &ProgressBar) -> anyhow::Result<ModelRun> {
    use llm_core::eval::lm::LanguageModel;
    let mut results = vec![];
    for task in tasks {
        bar.set_message(format!("{}: {}", lm.name(), task.name()));
        let started = Instant::now();
        let r = evaluate_task(lm, task, options, Some(&bundle.tokenizer)).with_context(|| format!("evaluating {} on {}", lm.name(), task.name()))?;
        // suspend: the line shows whether or not stderr is a terminal (println would drop it).
        bar.suspend(|| eprintln!("{}: {} ({} documents) in {:.1} s", lm.name(), r.task, documents(&r).count(), started.elapsed().as_secs_f64()));
        bar.inc(1);
        results.push(r);
    }
    Ok(ModelRun { name: lm.name(), results })
}

/// One record per document: a generation task with several `filter_list` pipelines has one
/// per document and pipeline, the same requests and answers; the first pipeline's are kept.
fn documents(result: &TaskResult) -> impl Iterator<Item = &DocResult> {
    let first = result.docs.first().map(|d| d.filter.clone());
    result.docs.iter().filter(move |d| Some(&d.filter) == first.as_ref())
}

/// A metric's label: its name, and the filter pipeline unless it is lm-eval's default `none`.
fn metric_label(m: &MetricValue) -> String {
    if m.filter == "none" {
        m.metric.clone()
    } else {
        format!("{},{}", m.metric, m.filter)
    }
}

/// Each document's prompt as the model sees it: the context of its requests (the choices of
/// a multiple-choice document share it), or for a perplexity task the scored text after the
/// prefix token, as its first rolling window conditions it.
fn prompt_sequences<B: Backend>(lm: &LocalLm<'_, B>, result: &TaskResult) -> anyhow::Result<Vec<Vec<u32>>> {
    let mut out = vec![];
    for r in documents(result).filter_map(|d| d.requests.first()) {
        let ids = match r.response {
            Response::Rolling { .. } => [vec![lm.prefix_token()], lm.encode(&r.continuation)?].concat(),
            _ => lm.encode(&r.context)?,
        };
        out.push(ids[ids.len().saturating_sub(KL_MAX_TOKENS)..].to_vec());
    }
    Ok(out)
}

/// What a document's answer was: the chosen choice, or the generated text.
#[derive(PartialEq)]
enum Answer {
    Choice(usize),
    Text(String),
}

fn answer(doc: &DocResult) -> Option<Answer> {
    let mut lls = vec![];
    for r in &doc.requests {
        match &r.response {
            Response::Text { text } => return Some(Answer::Text(text.clone())),
            Response::Loglikelihood { logprob, .. } => lls.push(*logprob),
            Response::Rolling { .. } => return None,
        }
    }
    // The first largest, as the harness's (numpy's) argmax picks it.
    let best = lls.iter().enumerate().fold(None, |best: Option<(usize, f64)>, (i, &l)| match best {
        Some((_, b)) if b >= l => best,
        _ => Some((i, l)),
    });
    best.filter(|_| lls.len() > 1).map(|(i, _)| Answer::Choice(i))
}

/// Fraction of documents with an answer where the two answers are the same.
fn agreement(a: &TaskResult, b: &TaskResult) -> Option<f64> {
    let pairs: Vec<bool> = documents(a).zip(documents(b)).filter_map(|(x, y)| Some(answer(x)? == answer(y)?)).collect();
    (!pairs.is_empty()).then(|| pairs.iter().filter(|&&same| same).count() as f64 / pairs.len() as f64)
}

/// The two models' metrics side by side, with the KL divergence and agreement per task.
fn comparison_table(runs: &[ModelRun], comparisons: &[Comparison]) -> String {
    let fmt = |v: f64, se: Option<f64>| match se.filter(|s| s.is_finite()) {
        Some(s) => format!("{v:.4} ± {s:.4}"),
        None => format!("{v:.4}"),
    };
    let header = ["Tasks", "Metric", runs[0].name.as_str(), runs[1].name.as_str(), "Mean KLD", "Same top", "Agreement"];
    let mut rows = vec![];
    for ((a, b), c) in runs[0].results.iter().zip(&runs[1].results).zip(comparisons) {
        for (k, (ma, mb)) in a.metrics.iter().zip(&b.metrics).enumerate() {
            let first = k == 0;
            let task_cell = |s: String| if first { s } else { String::new() };
            rows.push([
                task_cell(a.task.clone()),
                metric_label(ma),
                fmt(ma.value, ma.stderr),
                fmt(mb.value, mb.stderr),
                task_cell(format!("{:.4} ± {:.4}", c.kl.mean_kl, c.kl.kl_stderr)),
                task_cell(format!("{:.1} %", 100.0 * c.kl.same_top)),
                task_cell(c.agreement.map_or("N/A".into(), |x| format!("{:.1} %", 100.0 * x))),
            ]);
        }
    }
    markdown_table(&header, &rows)
}

fn markdown_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N).map(|c| rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count(), 3]).max().unwrap_or(3)).collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(s, &w)| format!("{s}{}", " ".repeat(w - s.chars().count()))).collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(&header.map(str::to_string));
    out += &line(&widths.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>());
    for r in rows {
        out += &line(r);
    }
    out
}

/// `results.json`, `samples.jsonl`, a chart per task and `report.md`, each written atomically.
fn write_outputs(out: &Path, cli: &Cli, runs: &[ModelRun], comparisons: &[Comparison]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let write = |name: &str, bytes: &[u8]| write_bytes_atomic(&out.join(name), bytes).with_context(|| format!("writing {}", out.join(name).display()));
    // Aggregates only: the documents go to samples.jsonl.
    let summary = |r: &TaskResult| -> anyhow::Result<serde_json::Value> {
        let mut v = serde_json::to_value(r)?;
        v.as_object_mut().map(|o| o.remove("docs"));
        Ok(v)
    };
    let models = runs.iter().map(|run| Ok(json!({ "name": run.name, "results": run.results.iter().map(summary).collect::<anyhow::Result<Vec<_>>>()? })));
    let results = json!({
        "config": {
            "model": cli.model.model_path()?, "compare": cli.compare, "tasks_dir": cli.tasks_dir, "limit": cli.limit,
            "num_fewshot": cli.num_fewshot, "fewshot_seed": cli.fewshot_seed, "batch_size": cli.batch_size,
            "apply_chat_template": cli.apply_chat_template, "fewshot_as_multiturn": cli.fewshot_as_multiturn,
            "system_instruction": cli.system_instruction, "exact": cli.exact,
        },
        "models": models.collect::<anyhow::Result<Vec<_>>>()?,
        "comparison": comparisons.iter().map(|c| json!({ "task": c.task, "kl": c.kl, "agreement": c.agreement })).collect::<Vec<_>>(),
    });
    write("results.json", serde_json::to_string_pretty(&results)?.as_bytes())?;
    let mut samples = String::new();
    for run in runs {
        for r in &run.results {
            for d in &r.docs {
                samples += &json!({ "model": run.name, "task": r.task, "doc": d }).to_string();
                samples.push('\n');
            }
        }
    }
    write("samples.jsonl", samples.as_bytes())?;
    let mut report = format!("# Evaluation: {}\n\n", runs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(" against "));
    for run in runs {
        report += &format!("## {}\n\n{}\n", run.name, results_table(&run.results));
    }
    if !comparisons.is_empty() {
        report += &format!("## {} against {}\n\nKL divergence on each task's prompts (nats per token, `KL(P_{} || P_{})`); agreement: documents where both chose the same answer.\n\n{}\n", runs[1].name, runs[0].name, runs[0].name, runs[1].name, comparison_table(runs, comparisons));
    }
    report += "## Charts\n\n";
    for (k, r) in runs[0].results.iter().enumerate() {
        let panels: Vec<Panel> = r
            .metrics
            .iter()
            .enumerate()
            .map(|(m, metric)| Panel {
                metric: metric_label(metric),
                higher_is_better: metric.higher_is_better,
                bars: runs.iter().map(|run| &run.results[k].metrics[m]).zip(runs).map(|(v, run)| Bar { series: run.name.clone(), value: v.value, stderr: v.stderr }).collect(),
            })
            .collect();
        let file = format!("{}.svg", r.task);
        write(&file, metric_bars_svg(&panels, &format!("{} ({}-shot, {} documents)", r.task, r.num_fewshot, documents(r).count()))?.as_bytes())?;
        report += &format!("![{}]({file})\n\n", r.task);
    }
    write("report.md", report.as_bytes())?;
    Ok(())
}

/// The YAML tasks named from `dir` (all of them when no task is named) and the BIG-bench
/// `task.json` files named by path, in the order given.
fn read_tasks(dir: &Path, names: &[String]) -> anyhow::Result<Vec<Task>> {
    let is_bigbench = |n: &String| n.ends_with(".json");
    let yaml: Vec<String> = names.iter().filter(|n| !is_bigbench(n)).cloned().collect();
    let mut yaml_tasks = if yaml.is_empty() && !names.is_empty() {
        vec![]
    } else {
        load_tasks(dir, &yaml).with_context(|| format!("loading tasks from {}", dir.display()))?
    };
    if names.is_empty() {
        return Ok(yaml_tasks);
    }
    let mut tasks = vec![];
    for n in names {
        if is_bigbench(n) {
            tasks.push(Task::from_bigbench(n).with_context(|| format!("loading BIG-bench task {n}"))?);
        } else if let Some(at) = yaml_tasks.iter().position(|t| t.name() == n) {
            tasks.push(yaml_tasks.remove(at));
        }
    }
    Ok(tasks)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (backend, device) = (cli.model.backend, cli.model.device);
    run_on(backend, device, Eval(cli))?
}
