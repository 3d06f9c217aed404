//! Multi-turn chat with streamed output, using the model's chat template.
//!
//! ```text
//! cargo run --release --example chat -- --prompt "What is the capital of France?"
//! cargo run --release --example chat            # interactive; an empty line or Ctrl-D quits
//! cargo run --release --example chat -- --tools examples/data/tools.json --tool-choice required \
//!     --prompt "What is the weather in Paris?"   # a call, a stub result, a follow-up answer
//! ```

use std::io::{BufRead, Write};

use anyhow::Context;
use burn::tensor::backend::Backend;
use clap::Parser;
use llm_core::backend::BackendTask;
use llm_examples::run_on;
use llm_core::chat::{BuiltinTemplate, Message, Tool, ToolCall, ToolFormat};
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
    /// Tools the model may call: a JSON list in OpenAI's request shape. Each call is answered
    /// by a stub that echoes its arguments, then the model answers with the result.
    #[arg(long, value_name = "FILE")]
    tools: Option<std::path::PathBuf>,
    /// auto (text or calls, unconstrained), constrained (text or valid calls) or required
    /// (one or more valid calls).
    #[arg(long, default_value = "auto")]
    tool_choice: String,
    /// hermes, llama3 or mistral (default: read off the chat template, else hermes).
    #[arg(long)]
    tool_format: Option<String>,
}

/// The tools, their format and whether calls are constrained.
struct ToolSetup {
    tools: Vec<Tool>,
    json: serde_json::Value,
    format: ToolFormat,
    constraint: Option<llm_core::generate::Constraint>,
}

fn tool_setup(cli: &Cli, template: Option<&str>) -> anyhow::Result<Option<ToolSetup>> {
    let Some(path) = &cli.tools else { return Ok(None) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let tools = Tool::list_from_json(&serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?)?;
    let format = match cli.tool_format.as_deref() {
        Some("hermes") => ToolFormat::Hermes,
        Some("llama3") => ToolFormat::Llama3,
        Some("mistral") => ToolFormat::Mistral,
        Some(other) => anyhow::bail!("unknown --tool-format `{other}` (hermes, llama3, mistral)"),
        None => template.and_then(ToolFormat::detect).unwrap_or(ToolFormat::Hermes),
    };
    let constraint = match cli.tool_choice.as_str() {
        "auto" => None,
        "constrained" => Some(format.constraint(&tools, false)?),
        "required" => Some(format.constraint(&tools, true)?),
        other => anyhow::bail!("unknown --tool-choice `{other}` (auto, constrained, required)"),
    };
    Ok(Some(ToolSetup { json: Tool::template_json(&tools), tools, format, constraint }))
}

/// A system turn that teaches the Hermes format, for templates that ignore `tools`.
fn tools_system_prompt(setup: &ToolSetup) -> String {
    format!(
        "You can call functions. The tools are:\n<tools>\n{}\n</tools>\nTo call one, reply with <tool_call>\n{{\"name\": <name>, \"arguments\": <arguments>}}\n</tool_call>",
        setup.json.as_array().into_iter().flatten().map(|t| t.to_string()).collect::<Vec<_>>().join("\n")
    )
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
        let generator = Generator::new(&bundle.model, config.clone())?.with_tokenizer(&bundle.tokenizer);
        let template_source = bundle.tokenizer.chat_template().map(|t| t.source().to_string());
        let tools = tool_setup(&cli, template_source.as_deref())?;
        let mut messages: Vec<Message> = cli.system.iter().map(|s| Message::new("system", s.clone())).collect();
        if let Some(t) = tools.as_ref().filter(|_| template_source.as_deref().and_then(ToolFormat::detect).is_none()) {
            messages.insert(0, Message::new("system", tools_system_prompt(t)));
        }
        let render = |messages: &[Message]| -> anyhow::Result<Vec<u32>> {
            let prompt = bundle.tokenizer.apply_chat_template_with_tools(messages, true, tools.as_ref().map(|t| &t.json))?;
            Ok(bundle.tokenizer.encode(&prompt, false)?.ids)
        };
        // With tools: one reply that may call them; each call gets the stub's result.
        let call_tools = |messages: &mut Vec<Message>, t: &ToolSetup| -> anyhow::Result<()> {
            let mut gen = Generator::new(&bundle.model, config.clone())?.with_tokenizer(&bundle.tokenizer);
            if let Some(c) = &t.constraint {
                gen = gen.constrained(&bundle.tokenizer, c)?;
            }
            let out = gen.generate(&[render(messages)?])?;
            let reply = bundle.tokenizer.decode(&out.sequences[0], true)?;
            let parsed = t.format.parse(&reply, &t.tools)?;
            if parsed.calls.is_empty() {
                return Ok(());
            }
            messages.push(ToolCall::assistant_message(&parsed.content, &parsed.calls));
            for call in &parsed.calls {
                let result = serde_json::json!({"stub": true, "tool": call.name, "arguments": call.arguments}).to_string();
                eprintln!("[tool call] {}({}) -> {result}", call.name, call.arguments);
                messages.push(call.result_message(result));
            }
            Ok(())
        };
        let answer = |messages: &mut Vec<Message>, user: String| -> anyhow::Result<()> {
            messages.push(Message::new("user", user));
            if let Some(t) = &tools {
                call_tools(messages, t)?;
            }
            let ids = render(messages)?;
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
