//! Multi-turn chat with streamed output, using the model's chat template.
//!
//! ```text
//! cargo run --release --example chat -- --prompt "What is the capital of France?"
//! cargo run --release --example chat            # interactive; an empty line or Ctrl-D quits
//! ```

use std::io::{BufRead, Write};

use anyhow::Context;
use burn::tensor::backend::Backend;
use clap::Parser;
use llm_core::backend::BackendTask;
use llm_examples::run_on;
use llm_core::chat::{BuiltinTemplate, Message};
use llm_core::generate::{Generator, Timings};
use llm_examples::{ModelArgs, SamplingArgs};

/// Chat with a model on the command line.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Answer this one message and exit.
    #[arg(long)]
    prompt: Option<String>,
    /// A system message to start the conversation with.
    #[arg(long)]
    system: Option<String>,
    /// Template for models without one: chatml, llama3, mistral, alpaca, zephyr.
    #[arg(long)]
    template: Option<String>,
    /// Print load time, prompt and decode tokens/s after each answer (as llama.cpp does).
    #[arg(long, alias = "stats")]
    timings: bool,
}

struct Chat(Cli);

impl BackendTask for Chat {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let cli = self.0;
        let started = std::time::Instant::now();
        let mut bundle = cli.model.load_bundle::<B>(&device)?;
        let load = started.elapsed();
        if let Some(name) = &cli.template {
            let t = BuiltinTemplate::from_name(name).with_context(|| format!("unknown template `{name}`"))?;
            bundle.tokenizer.set_chat_template(t.compile()?);
        }
        let config = cli.sampling.apply(bundle.generation.clone());
        let generator = Generator::new(&bundle.model, config)?.with_tokenizer(&bundle.tokenizer);
        let mut messages: Vec<Message> = cli.system.iter().map(|s| Message::new("system", s.clone())).collect();
        let answer = |messages: &mut Vec<Message>, user: String| -> anyhow::Result<()> {
            messages.push(Message::new("user", user));
            let prompt = bundle.tokenizer.apply_chat_template(messages, true)?;
            let ids = bundle.tokenizer.encode(&prompt, false)?.ids;
            let (mut reply, mut steps) = (String::new(), vec![]);
            let mut out = std::io::stdout().lock();
            for delta in generator.stream(&ids)? {
                let delta = delta?;
                steps.push(delta.elapsed);
                if delta.stop != Some(llm_core::generate::StopReason::Eos) || !delta.text.is_empty() {
                    write!(out, "{}", delta.text)?;
                    out.flush()?;
                }
                reply += &delta.text;
            }
            writeln!(out)?;
            if cli.timings {
                eprint!("{}", Timings::from_steps(Some(load), ids.len(), steps).report());
            }
            messages.push(Message::new("assistant", reply.trim().to_string()));
            Ok(())
        };
        if let Some(p) = cli.prompt.clone() {
            return answer(&mut messages, p);
        }
        let stdin = std::io::stdin();
        loop {
            eprint!("> ");
            let mut line = String::new();
            if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
                return Ok(());
            }
            answer(&mut messages, line.trim().to_string())?;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (backend, device) = (cli.model.backend, cli.model.device);
    run_on(backend, device, Chat(cli))?
}
