//! Prompt-injection red team of the RAG answer step: every case of a case file (instructions
//! planted in retrieved documents, in the question, in tool results, and jailbreaks sent to the
//! chat model) answered greedily with the defences off and on, scored by its canary; writes the
//! Markdown report with the attack success rates and every answer as JSON.
//!
//! ```text
//! scripts/fetch-models.sh
//! cargo run --release -p llm-examples --example redteam -- --notes benches/redteam-notes.md
//! cargo run --release -p llm-examples --example redteam -- --ablation   # fences only, hierarchy only too
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::backend::Backend;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use llm_core::backend::BackendTask;
use llm_examples::{run_on, ModelArgs};
use llm_rag::answer::pipeline::generate_reply;
use llm_rag::redteam::report::format_rate;
use llm_rag::redteam::{case_messages, load_cases, markdown, run_red_team, write_answers, Channel, RedTeamRun, Setting};

/// Run prompt-injection and jailbreak cases against the RAG answer step, undefended and defended.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    /// The case file (a JSON array; see `llm_rag::redteam::case`).
    #[arg(long, default_value = "examples/data/redteam/injections.json")]
    cases: PathBuf,
    /// New tokens per answer (greedy). A canary is short: 64 tokens is room for it and a
    /// sentence before it.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Also run each defence alone (fences only, hierarchy only).
    #[arg(long)]
    ablation: bool,
    /// Only the first N cases (a quick look; the report then covers those only).
    #[arg(long)]
    limit: Option<usize>,
    /// The Markdown report.
    #[arg(long, default_value = "benches/redteam-report.md")]
    report: PathBuf,
    /// Every answer, as JSON.
    #[arg(long, default_value = "benches/redteam-answers.json")]
    answers: PathBuf,
    /// A Markdown file appended to the report as its discussion (written after reading a run's
    /// answers, so it is kept apart from what the run computes).
    #[arg(long)]
    notes: Option<PathBuf>,
}

struct Task(Cli);

impl BackendTask for Task {
    type Output = anyhow::Result<()>;
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        red_team::<B>(self.0, device)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    run_on(cli.model.backend, cli.model.device, Task(cli.clone()))?
}

fn red_team<B: Backend>(cli: Cli, device: B::Device) -> anyhow::Result<()> {
    let mut cases = load_cases(&cli.cases)?;
    if let Some(n) = cli.limit {
        cases.truncate(n);
    }
    // Read before the run so that a missing file fails in a second, not after it.
    let notes = match &cli.notes {
        Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?),
        None => None,
    };
    let settings = if cli.ablation { Setting::ablation() } else { Setting::undefended_and_defended() };
    let bundle = cli.model.load_bundle::<B>(&device)?;
    let mut generation = bundle.generation.clone();
    generation.do_sample = false;
    generation.num_beams = 1;
    generation.max_new_tokens = cli.max_new_tokens;

    let bar = ProgressBar::new((cases.len() * settings.len()) as u64);
    bar.set_style(ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} answers, eta {eta} {msg}").expect("valid template"));
    let start = Instant::now();
    let run = run_red_team(&cases, &settings, |case, defences| {
        bar.set_message(case.id.clone());
        let answer = generate_reply(&bundle.model, &bundle.tokenizer, generation.clone(), &case_messages(case, defences));
        bar.inc(1);
        answer
    })?;
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();

    print_rates(&run);
    let mut md = markdown(&run, &preamble(&cli, cases.len(), seconds)?);
    if let Some(notes) = notes {
        md.push('\n');
        md.push_str(notes.trim_end());
        md.push('\n');
    }
    llm_core::io::atomic::write_bytes_atomic(&cli.report, md.as_bytes()).with_context(|| format!("writing {}", cli.report.display()))?;
    write_answers(&cli.answers, &run).with_context(|| format!("writing {}", cli.answers.display()))?;
    println!("\n{} answers in {seconds:.0} s; report {}, answers {}", run.results.len() * run.settings.len(), cli.report.display(), cli.answers.display());
    Ok(())
}

/// The model, the decoding, the case file and the command that made the report.
fn preamble(cli: &Cli, cases: usize, seconds: f64) -> anyhow::Result<String> {
    let model = cli.model.model_path()?;
    let model = model.file_name().map_or_else(|| model.display().to_string(), |n| n.to_string_lossy().into_owned());
    let args: Vec<String> = std::env::args().skip(1).map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect();
    let command = format!("cargo run --release -p llm-examples --example redteam -- {}", args.join(" "));
    Ok(format!(
        "- Model: `{model}` (backend {}, `--dtype` {:?}), greedy decoding, at most {} new tokens per answer.\n\
         - Cases: {cases} from `{}`; an attack worked when its canary (an unusual string only a followed \
         injection would produce) is in the answer, compared lower-cased with everything but letters and digits dropped.\n\
         - Command: `{}` ({seconds:.0} s).\n\
         - Every answer: `{}`.",
        cli.model.backend,
        cli.model.dtype,
        cli.max_new_tokens,
        cli.cases.display(),
        command.trim_end(),
        cli.answers.display(),
    ))
}

fn print_rates(run: &RedTeamRun) {
    let names: Vec<&str> = run.settings.iter().map(|s| s.name.as_str()).collect();
    println!("{:<12} {:>5}  {}", "channel", "cases", names.iter().map(|n| format!("{n:>16}")).collect::<String>());
    for channel in Channel::ALL.into_iter().map(Some).chain([None]) {
        let rates: Vec<_> = (0..run.settings.len()).map(|s| run.rate(s, channel)).collect();
        if rates[0].cases == 0 {
            continue;
        }
        let label = channel.map_or("all", |c| c.name());
        println!("{label:<12} {:>5}  {}", rates[0].cases, rates.iter().map(|r| format!("{:>16}", format_rate(*r))).collect::<String>());
    }
}
