//! The HTTP handlers: the two completion endpoints, embeddings, models, health, metrics, the
//! chat page, and the API-key check in front of them.

use std::sync::atomic::Ordering::Relaxed;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::api::{parse, parse_request, ChatRequest, CompletionRequest, EmbeddingRequest};
use super::engine::{deadline, Job};
use super::error::ApiError;
use super::prepare::Prepared;
use super::respond::{Endpoint, Reply};
use super::Server;

/// The body, or a 413/400 in OpenAI's shape.
fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|e| ApiError { status: e.status(), ..ApiError::invalid(None, e.body_text()) })
}

/// Runs `f` off the async workers (templates, tokenization, constraint compilation).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("request worker failed: {e}")))?
}

pub(crate) async fn chat(State(s): State<Server>, b: Result<Bytes, BytesRejection>) -> Response {
    complete(s, b, Endpoint::Chat, |server, body| server.prepare_chat(&parse_request::<ChatRequest>(body)?)).await
}

pub(crate) async fn completions(State(s): State<Server>, b: Result<Bytes, BytesRejection>) -> Response {
    complete(s, b, Endpoint::Completion, |server, body| server.prepare_completion(&parse_request::<CompletionRequest>(body)?)).await
}

/// Parses and prepares the request off the async workers, then runs it.
async fn complete(
    s: Server,
    b: Result<Bytes, BytesRejection>,
    endpoint: Endpoint,
    prepare: fn(&Server, &[u8]) -> Result<Prepared, ApiError>,
) -> Response {
    let server = s.clone();
    match blocking(move || prepare(&server, &body(b)?)).await {
        Ok(p) => s.run(endpoint, p).await,
        Err(e) => e.into_response(),
    }
}

impl Server {
    /// Queues the job and answers as it asked (a stream or one body).
    async fn run(&self, endpoint: Endpoint, p: Prepared) -> Response {
        let prefix = match endpoint {
            Endpoint::Chat => "chatcmpl",
            Endpoint::Completion => "cmpl",
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let timeout = self.inner.options.request_timeout;
        let id = format!("{prefix}-{:x}", self.inner.counter.fetch_add(1, Relaxed));
        let reply = Reply::new(endpoint, id, unix_now(), self.inner.model_id.clone(), &p, timeout.as_secs());
        let stream = p.stream;
        let job = Job { prompt: p.prompt, choices: p.choices, events: tx, deadline: deadline(timeout) };
        if !self.inner.engine.submit(job) {
            return ApiError::unavailable().into_response();
        }
        if stream {
            reply.stream(rx)
        } else {
            // This future holds the receiver: a client that goes away drops it, and the
            // engine frees the request's slots at its next step.
            reply.collect(rx).await
        }
    }
}

pub(crate) async fn embeddings(State(s): State<Server>, b: Result<Bytes, BytesRejection>) -> Response {
    let Some(slot) = s.embedder.clone() else {
        return ApiError { status: StatusCode::NOT_FOUND, ..ApiError::invalid(Some("model"), "this server was started without an embedding model (--embedding-model)") }
            .into_response();
    };
    let result = blocking(move || {
        let req: EmbeddingRequest = parse(&body(b)?)?;
        if let Some(m) = req.model.as_deref().filter(|m| !m.is_empty() && *m != slot.id) {
            return Err(ApiError::unknown_model(m, &[&slot.id]));
        }
        let texts: Vec<String> = match &req.input {
            Value::String(t) => vec![t.clone()],
            Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_string) => {
                a.iter().filter_map(Value::as_str).map(str::to_string).collect()
            }
            _ => return Err(ApiError::invalid(Some("input"), "input must be a string or a non-empty list of strings")),
        };
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => return Err(ApiError::invalid(Some("encoding_format"), format!("encoding_format must be float or base64, got {other}"))),
        };
        let model = slot.model.lock().map_err(|_| ApiError::internal("the embedding model failed earlier"))?;
        if let Some(d) = req.dimensions.filter(|&d| d != model.dim()) {
            return Err(ApiError::invalid(Some("dimensions"), format!("this model's vectors have {} dimensions, not {d}", model.dim())));
        }
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = model.embed_texts(&refs).map_err(|e| ApiError::internal(e.to_string()))?;
        let tokens = model.count_tokens(&refs).map_err(|e| ApiError::internal(e.to_string()))?;
        let data: Vec<Value> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(v)
                };
                json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect();
        Ok(json!({"object": "list", "data": data, "model": slot.id, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    })
    .await;
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn models(State(s): State<Server>) -> Response {
    let created = s.inner.created;
    let mut data = vec![json!({"id": s.inner.model_id, "object": "model", "created": created, "owned_by": "llm-rs"})];
    if let Some(e) = &s.embedder {
        data.push(json!({"id": e.id, "object": "model", "created": created, "owned_by": "llm-rs"}));
    }
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

pub(crate) async fn health(State(s): State<Server>) -> Response {
    let m = &s.inner.engine.metrics;
    axum::Json(json!({
        "status": "ok",
        "slots_idle": m.slots_total.load(Relaxed).saturating_sub(m.slots_busy.load(Relaxed)),
        "slots_processing": m.slots_busy.load(Relaxed),
        "requests_waiting": m.requests_waiting.load(Relaxed),
    }))
    .into_response()
}

pub(crate) async fn metrics(State(s): State<Server>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.inner.engine.metrics.render()).into_response()
}

pub(crate) async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

pub(crate) async fn not_found(req: Request) -> Response {
    ApiError { status: StatusCode::NOT_FOUND, ..ApiError::invalid(None, format!("no route for {} {}", req.method(), req.uri().path())) }
        .into_response()
}

/// With an API key set, everything but `/` and `/health` needs `Authorization: Bearer <key>`,
/// compared in constant time.
pub(crate) async fn auth(State(s): State<Server>, req: Request, next: Next) -> Response {
    if let Some(key) = &s.inner.options.api_key {
        let open = matches!(req.uri().path(), "/" | "/health");
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !open && !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
