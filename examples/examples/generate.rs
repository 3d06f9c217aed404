//! Text completion with every decoding flag.
//!
//! ```text
//! cargo run --release --example generate -- --prompt "The capital of France is" --temperature 0 --json
//! cargo run --release --example generate -- --prompt "A user as JSON:" --json-schema user.schema.json
//! cargo run --release --example generate -- --prompt "Summarise: ..." --prompt-lookup 3 --timings
//! ```

use burn::tensor::backend::Backend;
use clap::Parser;
use llm_core::backend::BackendTask;
use llm_examples::run_on;
use llm_core::generate::{Drafter, Generator, Timings};
use llm_examples::{ConstraintArgs, ModelArgs, SamplingArgs, SpeculationArgs};
use serde_json::json;

/// Complete a prompt.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    constraint: ConstraintArgs,
    #[command(flatten)]
    speculation: SpeculationArgs,
    /// The text to continue.
    #[arg(long)]
    prompt: String,
    /// Print `{"text": ..., "token_ids": [...]}` (new tokens only) instead of streaming text.
    #[arg(long)]
    json: bool,
    /// Print load time, prompt and decode tokens/s to stderr (as llama.cpp does).
    #[arg(long)]
    timings: bool,
}

struct Generate(Cli);

impl BackendTask for Generate {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let cli = self.0;
        let started = std::time::Instant::now();
        let bundle = cli.model.load_bundle::<B>(&device)?;
        let load = started.elapsed();
        let config = cli.sampling.apply(bundle.generation.clone());
        let mut generator = Generator::new(&bundle.model, config)?.with_tokenizer(&bundle.tokenizer);
        if let Some(c) = cli.constraint.constraint()? {
            generator = generator.constrained(&bundle.tokenizer, &c)?;
        }
        let ids = bundle.tokenizer.encode(&cli.prompt, true)?.ids;
        if cli.speculation.enabled() {
            speculate(&cli, &bundle, &generator, &ids, load, &device)?;
        } else if generator.config().num_beams > 1 {
            let best = generator.beam_search(&[ids])?.remove(0);
            let text = bundle.tokenizer.decode(&best.sequences[0], true)?;
            if cli.json {
                println!("{}", json!({ "text": text, "token_ids": best.sequences[0], "score": best.scores[0] }));
            } else {
                println!("{}{text}", cli.prompt);
            }
        } else if cli.json {
            let out = generator.generate(&[ids])?;
            let new = &out.sequences[0];
            let text = bundle.tokenizer.decode(new, true)?;
            println!("{}", json!({ "text": text, "token_ids": new }));
            if cli.timings {
                eprint!("{}", Timings { load: Some(load), ..out.timings() }.report());
            }
        } else {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            write!(stdout, "{}", cli.prompt)?;
            let mut steps = vec![];
            for delta in generator.stream(&ids)? {
                let delta = delta?;
                steps.push(delta.elapsed);
                write!(stdout, "{}", delta.text)?;
                stdout.flush()?;
            }
            writeln!(stdout)?;
            if cli.timings {
                eprint!("{}", Timings::from_steps(Some(load), ids.len(), steps).report());
            }
        }
        Ok(())
    }
}

/// Speculative decoding with a draft model or prompt lookup; the stats go to stderr.
fn speculate<B: Backend>(
    cli: &Cli,
    bundle: &llm_core::ModelBundle<B>,
    generator: &Generator<'_, B>,
    ids: &[u32],
    load: std::time::Duration,
    device: &B::Device,
) -> anyhow::Result<()> {
    let draft_model = match &cli.speculation.draft_model {
        Some(path) => {
            let args = ModelArgs { model: Some(path.clone()), adapter: None, ..cli.model.clone() };
            Some(args.load_bundle::<B>(device)?.model)
        }
        None => None,
    };
    let drafter = match (&draft_model, cli.speculation.prompt_lookup) {
        (Some(m), _) => Drafter::Model(m),
        (None, n) => Drafter::PromptLookup { max_ngram: n.unwrap_or(3) },
    };
    let (out, stats) = generator.generate_speculative(ids, drafter, cli.speculation.config())?;
    let new = &out.sequences[0];
    let text = bundle.tokenizer.decode(new, true)?;
    if cli.json {
        println!("{}", json!({ "text": text, "token_ids": new }));
    } else {
        println!("{}{text}", cli.prompt);
    }
    eprintln!(
        "speculation: {} drafted, {} accepted ({:.1}%), {:.2} tokens per target forward; drafting {:.0} ms, verifying {:.0} ms",
        stats.drafted,
        stats.accepted,
        100.0 * stats.acceptance_rate(),
        stats.tokens_per_forward(),
        stats.draft_time.as_secs_f64() * 1e3,
        stats.verify_time.as_secs_f64() * 1e3
    );
    if cli.timings {
        eprint!("{}", Timings { load: Some(load), ..out.timings() }.report());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (backend, device) = (cli.model.backend, cli.model.device);
    run_on(backend, device, Generate(cli))?
}
