//! An OpenAI-compatible HTTP server (cargo feature `serve`): `/v1/chat/completions`,
//! `/v1/completions` (streamed as server-sent events or not), `/v1/embeddings`, `/v1/models`,
//! `/health`, `/metrics` (Prometheus) and a chat page at `/`.
//!
//! Requests are batched continuously ([`Engine`]): each running sequence has its own KV
//! cache, new requests join the running batch at the next step, prompts are prefilled in
//! chunks between decode steps, and a client that disconnects frees its slot.
//!
//! ```no_run
//! # fn main() -> llm_core::Result<()> {
//! use std::sync::Arc;
//! use llm_core::serve::{Engine, EngineConfig, Server, ServerOptions};
//! use llm_core::ModelBundle;
//!
//! let bundle = ModelBundle::<burn::backend::Flex>::load("model.gguf", Default::default(), &Default::default())?;
//! let tokenizer = Arc::new(bundle.tokenizer);
//! let config = EngineConfig::for_model(&bundle.model, 16);
//! let (engine, handle) = Engine::new(bundle.model, tokenizer.clone(), config);
//! let server = Server::new(handle, tokenizer, "my-model", bundle.generation.eos_token_id, ServerOptions::default());
//! // Mount `server.router()` in an axum application, or:
//! llm_core::serve::run(engine, server, "127.0.0.1:8080".parse().unwrap())?;
//! # Ok(()) }
//! ```

pub mod api;
mod engine;
mod error;
mod metrics;
mod prepare;
mod respond;
mod routes;
mod sequence;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use burn::tensor::backend::Backend;

pub use engine::{
    ChoiceSettings, Engine, EngineConfig, EngineHandle, Event, FinishReason, Job, TokenLogprob, TopLogprob,
};
pub use error::ApiError;
pub use metrics::Metrics;

use crate::chat::ToolFormat;
use crate::embed::TextEmbedder;
use crate::error::{LlmError, Result};
use crate::generate::ConstraintEngine;
use crate::tokenizer::Tokenizer;

/// Limits and access settings of the HTTP side.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Clients must send `Authorization: Bearer <key>` (compared in constant time).
    pub api_key: Option<String>,
    /// Answer cross-origin requests from any origin (off by default).
    pub cors: bool,
    /// Request bodies larger than this are refused with 413.
    pub body_limit: usize,
    /// A request still running after this is dropped (408, or an error event mid-stream).
    pub request_timeout: Duration,
    /// `max_tokens` at most (and the default when a request does not say).
    pub max_tokens: usize,
    /// `n` at most (also bounded by the engine's slots).
    pub max_n: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            api_key: None,
            cors: false,
            body_limit: 4 << 20,
            request_timeout: Duration::from_secs(600),
            max_tokens: 4096,
            max_n: 8,
        }
    }
}

/// An embedding model behind `/v1/embeddings`, one request at a time.
struct EmbedderSlot {
    id: String,
    model: Mutex<Box<dyn TextEmbedder>>,
}

pub(crate) struct Inner {
    engine: EngineHandle,
    tokenizer: Arc<Tokenizer>,
    model_id: String,
    eos: Vec<u32>,
    constraints: Option<ConstraintEngine>,
    tool_format: ToolFormat,
    options: ServerOptions,
    created: u64,
    counter: AtomicU64,
}

/// The HTTP side: shared state of the handlers; [`Server::router`] is the axum app.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
    embedder: Option<Arc<EmbedderSlot>>,
}

impl Server {
    /// A server for the engine behind `engine`, answering as model `model_id`; `eos` are the
    /// ids that end a reply (the bundle's generation config).
    pub fn new(engine: EngineHandle, tokenizer: Arc<Tokenizer>, model_id: impl Into<String>, eos: Vec<u32>, options: ServerOptions) -> Self {
        let constraints = ConstraintEngine::new(&tokenizer, engine.vocab_size, &eos)
            .map_err(|e| tracing::warn!(error = %e, "constrained output (response_format, tool_choice) is off"))
            .ok();
        let tool_format = tokenizer.chat_template().and_then(|t| ToolFormat::detect(t.source())).unwrap_or(ToolFormat::Hermes);
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let inner = Inner {
            engine,
            tokenizer,
            model_id: model_id.into(),
            eos,
            constraints,
            tool_format,
            options,
            created,
            counter: AtomicU64::new(0),
        };
        Self { inner: Arc::new(inner), embedder: None }
    }

    /// Serves `/v1/embeddings` with `model`, named `id`.
    pub fn with_embedder(mut self, id: impl Into<String>, model: Box<dyn TextEmbedder>) -> Self {
        self.embedder = Some(Arc::new(EmbedderSlot { id: id.into(), model: Mutex::new(model) }));
        self
    }

    /// The engine's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.engine.metrics
    }

    /// The axum application: every route, the body limit, the API-key check, CORS if on.
    pub fn router(&self) -> Router {
        let router = Router::new()
            .route("/", get(routes::page))
            .route("/health", get(routes::health))
            .route("/metrics", get(routes::metrics))
            .route("/v1/models", get(routes::models))
            .route("/v1/chat/completions", post(routes::chat))
            .route("/v1/completions", post(routes::completions))
            .route("/v1/embeddings", post(routes::embeddings))
            .fallback(routes::not_found)
            .layer(DefaultBodyLimit::max(self.inner.options.body_limit))
            .layer(axum::middleware::from_fn_with_state(self.clone(), routes::auth))
            .with_state(self.clone());
        if self.inner.options.cors {
            router.layer(tower_http::cors::CorsLayer::permissive())
        } else {
            router
        }
    }
}

/// Binds `addr` and serves `server`'s router on a thread of its own (a two-worker tokio
/// runtime) until the process ends; returns the bound address (port 0 picks a free one). The
/// engine must run elsewhere ([`Engine::run`] on a thread of the caller's).
pub fn spawn(server: Server, addr: SocketAddr) -> Result<SocketAddr> {
    let (runtime, listener, bound) = bind(addr)?;
    let app = server.router();
    std::thread::spawn(move || runtime.block_on(async move { axum::serve(listener, app).await }));
    Ok(bound)
}

fn serve_err(what: &str, e: std::io::Error) -> LlmError {
    LlmError::Serve { what: what.to_string(), message: e.to_string() }
}

fn bind(addr: SocketAddr) -> Result<(tokio::runtime::Runtime, tokio::net::TcpListener, SocketAddr)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| serve_err("runtime", e))?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(addr)).map_err(|e| serve_err(&format!("bind {addr}"), e))?;
    let bound = listener.local_addr().map_err(|e| serve_err(&format!("bind {addr}"), e))?;
    Ok((runtime, listener, bound))
}

/// Serves on `addr` until Ctrl-C: the HTTP side on a tokio runtime of its own, the engine on
/// this thread (so the model need not move between threads).
pub fn run<B: Backend>(engine: Engine<B>, server: Server, addr: SocketAddr) -> Result<()> {
    let (runtime, listener, bound) = bind(addr)?;
    tracing::info!(%bound, "serving the OpenAI API");
    let app = server.router();
    drop(server);
    let http = std::thread::spawn(move || {
        runtime.block_on(async move {
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        })
    });
    // Returns once the router (the last engine handle) is dropped, when the server stops.
    engine.run();
    match http.join() {
        Ok(r) => r.map_err(|e| serve_err("http", e)),
        Err(_) => Err(LlmError::Serve { what: "http".into(), message: "the HTTP thread panicked".into() }),
    }
}
