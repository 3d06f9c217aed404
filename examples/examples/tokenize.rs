//! Token ids of a text, or the rendering of a conversation with the chat template.
//!
//! ```text
//! cargo run --release --example tokenize -- --tokenizer fixtures/b_tokenizer/bytelevel_bpe512 --text "Hello world"
//! cargo run --release --example tokenize -- --tokenizer MODEL.gguf --chat conversation.json
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Parser;
use llm_core::chat::Message;
use llm_core::weights::GgufFile;
use llm_core::Tokenizer;
use serde_json::json;

/// Tokenize text or render a chat.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// A model directory, a tokenizer.json, or a .gguf file (default: the cached SmolLM2 GGUF).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Text to encode.
    #[arg(long)]
    text: Option<String>,
    /// A JSON list of `{"role", "content"}` messages to render with the chat template.
    #[arg(long)]
    chat: Option<PathBuf>,
    /// Apply the post-processor's special tokens (e.g. BOS) to --text.
    #[arg(long)]
    add_special_tokens: bool,
    /// Leave the assistant turn closed when rendering --chat.
    #[arg(long)]
    no_generation_prompt: bool,
}

fn load(path: &Path) -> anyhow::Result<Tokenizer> {
    Ok(if path.is_dir() {
        Tokenizer::from_dir(path)?
    } else if path.extension().is_some_and(|e| e == "gguf") {
        Tokenizer::from_gguf(&GgufFile::open(path)?)?
    } else {
        Tokenizer::from_file(path)?
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let path = match cli.tokenizer {
        Some(p) => p,
        None => llm_examples::default_model()?,
    };
    let tok = load(&path).with_context(|| format!("loading {}", path.display()))?;
    match (cli.text, cli.chat) {
        (Some(text), None) => {
            let enc = tok.encode(&text, cli.add_special_tokens)?;
            println!("{}", json!({ "ids": enc.ids, "tokens": enc.tokens }));
        }
        (None, Some(chat)) => {
            let raw = std::fs::read_to_string(&chat).with_context(|| format!("reading {}", chat.display()))?;
            let messages: Vec<Message> = serde_json::from_str(&raw).with_context(|| format!("{} is not a message list", chat.display()))?;
            let rendered = tok.apply_chat_template(&messages, !cli.no_generation_prompt)?;
            let ids = tok.encode(&rendered, false)?.ids;
            println!("{}", json!({ "rendered": rendered, "ids": ids }));
        }
        _ => bail!("give exactly one of --text or --chat"),
    }
    Ok(())
}
