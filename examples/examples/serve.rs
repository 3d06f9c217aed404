//! An OpenAI-compatible server: chat and text completions (streamed or not), embeddings,
//! models, health, Prometheus metrics, and a chat page at `/`. Requests are batched
//! continuously: up to `--slots` sequences decode together.
//!
//! ```text
//! cargo run --release --example serve -- --port 8080          # the cached SmolLM2 GGUF
//! cargo run --release --example serve -- --model DIR_OR_GGUF --embedding-model DIR --api-key secret
//! # then open http://127.0.0.1:8080/ or point any OpenAI client at http://127.0.0.1:8080/v1
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use burn::tensor::backend::Backend;
use clap::Parser;
use llm_core::backend::BackendTask;
use llm_core::serve::{Engine, EngineConfig, Server, ServerOptions};
use llm_examples::{run_on, ModelArgs};
use llm_rag::embed::SentenceTransformer;

/// Serve a model over the OpenAI HTTP API.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    /// A sentence-transformers directory for `/v1/embeddings` (e.g. the cached all-MiniLM-L6-v2).
    #[arg(long)]
    embedding_model: Option<PathBuf>,
    /// Address to bind (loopback by default; 0.0.0.0 exposes the server).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The model name clients use (default: the file or directory name).
    #[arg(long)]
    model_id: Option<String>,
    /// Sequences decoded together at most; later requests wait.
    #[arg(long, default_value_t = 16)]
    slots: usize,
    /// Prompt tokens prefilled per step, shared between new prompts.
    #[arg(long, default_value_t = 256)]
    prefill_chunk: usize,
    /// Positions per sequence (default: the model's trained context).
    #[arg(long)]
    context: Option<usize>,
    /// `max_tokens` at most.
    #[arg(long, default_value_t = 4096)]
    max_tokens: usize,
    /// Require `Authorization: Bearer KEY`.
    #[arg(long)]
    api_key: Option<String>,
    /// Allow cross-origin requests from any origin.
    #[arg(long)]
    cors: bool,
    /// Seconds a request may run.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Request body size limit in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    body_limit: usize,
}

struct Serve(Cli);

impl BackendTask for Serve {
    type Output = anyhow::Result<()>;

    fn run<B: Backend>(self, device: B::Device) -> Self::Output {
        let cli = self.0;
        let path = cli.model.model_path()?;
        let bundle = cli.model.load_bundle::<B>(&device)?;
        let model_id = cli.model_id.clone().unwrap_or_else(|| {
            path.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
        });
        let mut config = EngineConfig::for_model(&bundle.model, cli.slots);
        config.prefill_chunk = cli.prefill_chunk;
        if let Some(c) = cli.context {
            config.context = c;
        }
        let tokenizer = Arc::new(bundle.tokenizer);
        let (engine, handle) = Engine::new(bundle.model, tokenizer.clone(), config);
        let options = ServerOptions {
            api_key: cli.api_key.clone(),
            cors: cli.cors,
            body_limit: cli.body_limit,
            request_timeout: Duration::from_secs(cli.timeout),
            max_tokens: cli.max_tokens,
            ..ServerOptions::default()
        };
        let mut server = Server::new(handle, tokenizer, &model_id, bundle.generation.eos_token_id, options);
        if let Some(dir) = &cli.embedding_model {
            let embedder = SentenceTransformer::<B>::load(dir, &device).with_context(|| format!("loading {}", dir.display()))?;
            let id = dir.file_name().map_or_else(|| "embeddings".into(), |s| s.to_string_lossy().into_owned());
            eprintln!("embeddings: {id}");
            server = server.with_embedder(id, Box::new(embedder));
        }
        let addr: SocketAddr = format!("{}:{}", cli.host, cli.port).parse().with_context(|| format!("bad address {}:{}", cli.host, cli.port))?;
        eprintln!("serving {model_id} on http://{addr}/ ({} slots); OpenAI base URL http://{addr}/v1", cli.slots);
        llm_core::serve::run(engine, server, addr)?;
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (kind, device) = (cli.model.backend, cli.model.device);
    run_on(kind, device, Serve(cli))?
}
