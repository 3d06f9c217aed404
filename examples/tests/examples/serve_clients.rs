//! The server as users' tools see it: the official `openai` Python client (every endpoint,
//! streaming, structured output, a tool round trip, n, stop, seeds, logprobs, embeddings equal
//! to the `embed` example's vectors, each refused request with its status) and the chat page
//! in headless Chromium (a question typed, the streamed answer read from the DOM, a
//! screenshot). The clients come from `scripts/fetch-openai-client.sh`; Chromium and its
//! driver from Debian (`apt-get install chromium chromium-driver`).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use llm_core::backend::Flex;
use llm_core::serve::{Engine, EngineConfig, Server, ServerOptions};
use llm_core::ModelBundle;
use llm_rag::embed::{default_model_dir, Embedder, SentenceTransformer};
use llm_testkit::{repo_path, smollm2_gguf, temp_path};
use serde_json::{json, Value};

const KEY: &str = "test-key";

/// The SmolLM2 GGUF and MiniLM behind a server on a free loopback port.
fn start() -> String {
    let device = Default::default();
    let bundle = ModelBundle::<Flex>::load(smollm2_gguf(), Default::default(), &device).unwrap();
    let tokenizer = Arc::new(bundle.tokenizer);
    let mut config = EngineConfig::for_model(&bundle.model, 8);
    config.context = 2048;
    let (engine, handle) = Engine::new(bundle.model, tokenizer.clone(), config);
    std::thread::spawn(move || engine.run());
    let embedder = SentenceTransformer::<Flex>::load(default_model_dir(), &device).unwrap();
    let options = ServerOptions { api_key: Some(KEY.into()), max_tokens: 2048, ..ServerOptions::default() };
    let server = Server::new(handle, tokenizer, "SmolLM2-135M-Instruct.Q4_1", bundle.generation.eos_token_id, options)
        .with_embedder("all-MiniLM-L6-v2", Box::new(embedder));
    let addr = llm_core::serve::spawn(server, "127.0.0.1:0".parse().unwrap()).unwrap();
    format!("http://{addr}")
}

fn client_python() -> PathBuf {
    let cache = llm_core::weights::cache_dir();
    let py = cache.join("openai-venv/bin/python");
    assert!(py.exists(), "{} is missing: run scripts/fetch-openai-client.sh first", py.display());
    py
}

/// What the `embed` example prints for these texts (the same `Embedder::embed`), as the
/// JSON lines the client check compares `/v1/embeddings` with.
fn expected_embeddings() -> PathBuf {
    let texts = ["The cat sits outside.", "A man is playing guitar.", "Embeddings through the OpenAI API."];
    let model = SentenceTransformer::<Flex>::load(default_model_dir(), &Default::default()).unwrap();
    let vectors = model.embed(&texts).unwrap();
    let path = temp_path("serve-embeddings.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    for (t, v) in texts.iter().zip(vectors) {
        writeln!(f, "{}", json!({"text": t, "embedding": v})).unwrap();
    }
    path
}

fn run_script(script: &str, args: &[&str]) -> Value {
    let out = Command::new(client_python()).arg(repo_path(script)).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{script} failed");
    let last = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or("{}");
    serde_json::from_str(last).unwrap_or_else(|_| serde_json::from_str(&stdout).unwrap())
}

#[test]
fn the_openai_python_client_gets_what_it_expects() {
    let base = start();
    let embeddings = expected_embeddings();
    let report = run_script(
        "scripts/openai_client_check.py",
        &["--base-url", &base, "--embeddings", embeddings.to_str().unwrap(), "--api-key", KEY],
    );
    assert_eq!(report["failed"], 0, "{report}");
    let cases = report["cases"].as_object().unwrap();
    for must in [
        "chat", "chat_stream", "completions_stream", "json_schema", "tool_call", "tool_call_stream", "n_2",
        "stop_sequence", "seed", "logprobs", "embeddings", "error_malformed_json", "error_wrong_type",
        "error_unknown_model", "error_context_length", "error_max_tokens", "error_schema_pattern", "auth_wrong_key",
    ] {
        assert_eq!(cases.get(must).map(|c| &c["ok"]), Some(&json!(true)), "case {must} in {report}");
    }
}

#[test]
fn the_chat_page_streams_an_answer_in_headless_chromium() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists() && std::path::Path::new("/usr/bin/chromedriver").exists(),
        "headless Chromium is missing: apt-get install -y chromium chromium-driver"
    );
    let base = start();
    let shot = temp_path("chat-page.png");
    let report = run_script(
        "scripts/chat_page_check.py",
        &["--base-url", &base, "--screenshot", shot.to_str().unwrap(), "--api-key", KEY],
    );
    assert!(report["answer"].as_str().is_some_and(|a| !a.trim().is_empty()), "{report}");
    assert!(report["stats"].as_str().is_some_and(|s| s.contains("tokens/s")), "{report}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "screenshot {}", shot.display());
}
