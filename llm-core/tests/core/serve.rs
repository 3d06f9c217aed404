//! The OpenAI-compatible server on SmolLM2 (Q4_1 GGUF), driven through its axum router:
//! replies equal the plain generator's, concurrent requests share forward passes and still
//! get what they get alone, streams reassemble to the same text, every refused request gets
//! its status and OpenAI's error body, and a client that goes away frees its slot.
#![cfg(feature = "serve")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::StreamExt;
use llm_core::chat::Message;
use llm_core::generate::{GenerationConfig, Generator};
use llm_core::serve::{Engine, EngineConfig, Server, ServerOptions};
use llm_core::{ModelBundle, Tokenizer};
use llm_testkit::*;
use serde_json::{json, Value};
use tower::ServiceExt;

const MODEL: &str = "smollm2";

struct Fixture {
    server: Server,
    tokenizer: Arc<Tokenizer>,
    bundle_generation: GenerationConfig,
}

fn start(options: ServerOptions, slots: usize) -> Fixture {
    let bundle = ModelBundle::<TestBackend>::load(smollm2_gguf(), Default::default(), &Default::default()).unwrap();
    let tokenizer = Arc::new(bundle.tokenizer);
    let mut config = EngineConfig::for_model(&bundle.model, slots);
    config.context = 2048;
    let (engine, handle) = Engine::new(bundle.model, tokenizer.clone(), config);
    std::thread::spawn(move || engine.run());
    let server = Server::new(handle, tokenizer.clone(), MODEL, bundle.generation.eos_token_id.clone(), options);
    Fixture { server, tokenizer, bundle_generation: bundle.generation }
}

fn small_options() -> ServerOptions {
    ServerOptions { max_tokens: 512, body_limit: 64 << 10, ..ServerOptions::default() }
}

async fn call(f: &Fixture, path: &str, body: Value) -> (StatusCode, Value) {
    call_raw(f, path, body.to_string(), None).await
}

async fn call_raw(f: &Fixture, path: &str, body: String, key: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::post(path).header("content-type", "application/json");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = f.server.router().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The `data:` payloads of a server-sent event stream.
async fn sse(f: &Fixture, path: &str, body: Value) -> Vec<String> {
    let req = Request::post(path).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
    let resp = f.server.router().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: ").map(str::to_string))
        .collect()
}

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

fn content(v: &Value, i: usize) -> String {
    v["choices"][i]["message"]["content"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_chat_equals_the_generator() {
    let f = start(small_options(), 4);
    let question = "What is the capital of France?";
    let (status, v) = call(&f, "/v1/chat/completions", json!({"model": MODEL, "messages": user(question), "temperature": 0, "max_tokens": 24})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let prompt = f.tokenizer.apply_chat_template(&[Message::new("user", question)], true).unwrap();
    let ids = f.tokenizer.encode(&prompt, false).unwrap().ids;
    let bundle = ModelBundle::<TestBackend>::load(smollm2_gguf(), Default::default(), &Default::default()).unwrap();
    let config = GenerationConfig { max_new_tokens: 24, ..f.bundle_generation.clone() };
    let out = Generator::new(&bundle.model, GenerationConfig { do_sample: false, ..config }).unwrap().generate(std::slice::from_ref(&ids)).unwrap();
    let want = f.tokenizer.decode(&out.sequences[0], true).unwrap();
    assert_eq!(content(&v, 0), want);
    assert_eq!(v["usage"]["prompt_tokens"], json!(ids.len()));
    assert_eq!(v["usage"]["completion_tokens"], json!(out.sequences[0].len()));
    assert_eq!(v["object"], "chat.completion");
    assert!(v["timings"]["predicted_per_second"].as_f64().unwrap() > 0.0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_steps_and_get_what_they_get_alone() {
    let f = Arc::new(start(small_options(), 8));
    let prompts = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "The three primary colors are", "Water boils at"];
    let body = |p: &str| json!({"prompt": p, "temperature": 0, "max_tokens": 20});
    let mut alone = vec![];
    for p in prompts {
        let (s, v) = call(&f, "/v1/completions", body(p)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        alone.push(v["choices"][0]["text"].as_str().unwrap().to_string());
    }
    let steps_before = f.server.metrics().steps_total.load(std::sync::atomic::Ordering::Relaxed);
    let tasks: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (f, b) = (f.clone(), body(p));
            tokio::spawn(async move { call(&f, "/v1/completions", b).await })
        })
        .collect();
    let mut tokens = 0;
    for (t, want) in tasks.into_iter().zip(&alone) {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["choices"][0]["text"].as_str().unwrap(), want, "batched output differs from the request alone");
        tokens += v["usage"]["completion_tokens"].as_u64().unwrap();
    }
    let steps = f.server.metrics().steps_total.load(std::sync::atomic::Ordering::Relaxed) - steps_before;
    // Alone, each token is a step; batched, requests decode in the same steps.
    assert!(steps * 2 < tokens, "{steps} steps for {tokens} tokens: requests were not batched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_reassemble_to_the_reply_with_usage_last() {
    let f = start(small_options(), 4);
    let req = json!({"messages": user("Name three fruits."), "temperature": 0, "max_tokens": 30});
    let (_, whole) = call(&f, "/v1/chat/completions", req.clone()).await;
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let events = sse(&f, "/v1/chat/completions", streamed).await;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, content(&whole, 0));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], whole["usage"]);
    let reasons: Vec<&Value> = chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|r| !r.is_null()).collect();
    assert_eq!(reasons, vec![&whole["choices"][0]["finish_reason"]]);

    let events = sse(&f, "/v1/completions", json!({"prompt": "Once upon a time", "temperature": 0, "max_tokens": 12, "stream": true})).await;
    let (_, whole) = call(&f, "/v1/completions", json!({"prompt": "Once upon a time", "temperature": 0, "max_tokens": 12})).await;
    let text: String = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap()["choices"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, whole["choices"][0]["text"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_n_seeds_logprobs_and_schemas() {
    let f = start(small_options(), 4);
    // The stop string and what follows it are cut.
    let count = json!({"prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "temperature": 0, "max_tokens": 20});
    let (_, free) = call(&f, "/v1/completions", count.clone()).await;
    let free = free["choices"][0]["text"].as_str().unwrap().to_string();
    assert!(free.contains("10"), "{free}");
    let mut stopped = count.clone();
    stopped["stop"] = json!(["10"]);
    let (_, v) = call(&f, "/v1/completions", stopped).await;
    assert_eq!(v["choices"][0]["text"].as_str().unwrap(), &free[..free.find("10").unwrap()]);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    // n choices with seeds seed, seed+1: reproducible, and different from each other.
    let sampled = json!({"messages": user("Write a word."), "temperature": 1.0, "max_tokens": 16, "n": 2, "seed": 7});
    let (s, a) = call(&f, "/v1/chat/completions", sampled.clone()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (_, b) = call(&f, "/v1/chat/completions", sampled).await;
    assert_eq!(a["choices"].as_array().unwrap().len(), 2);
    assert_eq!((content(&a, 0), content(&a, 1)), (content(&b, 0), content(&b, 1)));
    assert_eq!(a["choices"][1]["index"], 1);

    // Log-probabilities are the model's: the chosen greedy token is the most likely.
    let (_, v) = call(&f, "/v1/chat/completions", json!({"messages": user("Hi"), "temperature": 0, "max_tokens": 4, "logprobs": true, "top_logprobs": 3})).await;
    let entries = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(entries.len(), v["usage"]["completion_tokens"].as_u64().unwrap() as usize);
    for e in entries {
        let top = e["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0]["logprob"], e["logprob"], "{e}");
        assert!(e["logprob"].as_f64().unwrap() <= 0.0);
    }

    // JSON Schema output parses and matches.
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"], "additionalProperties": false});
    let req = json!({"messages": user("Give me a person as JSON."), "max_tokens": 64, "seed": 1,
                     "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}});
    let (s, v) = call(&f, "/v1/chat/completions", req).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let person: Value = serde_json::from_str(&content(&v, 0)).unwrap();
    assert!(person["name"].is_string() && person["age"].is_i64(), "{person}");
    assert_eq!(person.as_object().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_come_back_in_openai_shape() {
    let f = start(small_options(), 4);
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    // A named function gets one call (SmolLM2 left free repeats calls until max_tokens).
    let named = json!({"type": "function", "function": {"name": "get_weather"}});
    let req = json!({"messages": user("What is the weather in Paris?"), "tools": tools, "tool_choice": named, "max_tokens": 64, "temperature": 0});
    let (s, v) = call(&f, "/v1/chat/completions", req.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let call0 = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call0["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call0["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].is_string(), "{args}");
    // Streamed: the same call as deltas.
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    let events = sse(&f, "/v1/chat/completions", streamed).await;
    let calls: Vec<Value> = events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0).cloned())
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["function"], call0["function"]);
    // `required` without parallel calls: one call too.
    let mut single = req.clone();
    single["tool_choice"] = json!("required");
    single["parallel_tool_calls"] = json!(false);
    let (_, v) = call(&f, "/v1/chat/completions", single).await;
    assert_eq!(v["choices"][0]["message"]["tool_calls"].as_array().map(Vec::len), Some(1), "{v}");
    // The result goes back as a tool message; the answer is text.
    let mut messages = user("What is the weather in Paris?").as_array().unwrap().clone();
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call0]}));
    messages.push(json!({"role": "tool", "tool_call_id": call0["id"], "content": "{\"temperature_c\": 18}"}));
    let (s, v) = call(&f, "/v1/chat/completions", json!({"messages": messages, "tools": tools, "max_tokens": 32, "temperature": 0})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!content(&v, 0).is_empty(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_get_their_status_and_openai_error_body() {
    let f = start(ServerOptions { api_key: Some("sekret".into()), ..small_options() }, 4);
    let chat = "/v1/chat/completions";
    let key = Some("sekret");
    let ok = json!({"messages": user("Hi"), "max_tokens": 2}).to_string();
    let huge = "word ".repeat(3000);
    // (case, body, key, status, param, code)
    type Case<'a> = (&'a str, String, Option<&'a str>, StatusCode, Option<&'a str>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        ("malformed JSON", "{\"messages\": [".into(), key, StatusCode::BAD_REQUEST, None, None),
        ("wrong type", json!({"messages": user("Hi"), "max_tokens": "many"}).to_string(), key, StatusCode::BAD_REQUEST, Some("max_tokens"), None),
        ("unknown model", json!({"model": "gpt-9", "messages": user("Hi")}).to_string(), key, StatusCode::NOT_FOUND, Some("model"), Some("model_not_found")),
        ("prompt over the context", json!({"messages": user(&huge)}).to_string(), key, StatusCode::BAD_REQUEST, Some("messages"), Some("context_length_exceeded")),
        ("max_tokens over the limit", json!({"messages": user("Hi"), "max_tokens": 100000}).to_string(), key, StatusCode::BAD_REQUEST, Some("max_tokens"), None),
        ("uncompilable schema", json!({"messages": user("Hi"), "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "(unclosed"}}}}}}).to_string(), key, StatusCode::BAD_REQUEST, Some("response_format"), None),
        ("temperature out of range", json!({"messages": user("Hi"), "temperature": 5}).to_string(), key, StatusCode::BAD_REQUEST, Some("temperature"), None),
        ("n over the slots", json!({"messages": user("Hi"), "n": 50}).to_string(), key, StatusCode::BAD_REQUEST, Some("n"), None),
        ("no API key", ok.clone(), None, StatusCode::UNAUTHORIZED, None, Some("invalid_api_key")),
        ("wrong API key", ok.clone(), Some("sekreT"), StatusCode::UNAUTHORIZED, None, Some("invalid_api_key")),
        ("body over the limit", json!({"messages": user(&"x".repeat(70 << 10))}).to_string(), key, StatusCode::PAYLOAD_TOO_LARGE, None, None),
    ];
    for (name, body, k, status, param, code) in cases {
        let (s, v) = call_raw(&f, chat, body, k).await;
        assert_eq!(s, status, "{name}: {v}");
        let e = &v["error"];
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()) && e["type"].is_string(), "{name}: {v}");
        if let Some(p) = param {
            assert_eq!(e["param"], p, "{name}: {v}");
        }
        if let Some(c) = code {
            assert_eq!(e["code"], c, "{name}: {v}");
        }
    }
    let (s, v) = call_raw(&f, chat, ok, key).await;
    assert_eq!(s, StatusCode::OK, "right key: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_frees_its_slot() {
    let f = start(small_options(), 4);
    let body = json!({"prompt": "Once upon a time", "max_tokens": 500, "stream": true, "temperature": 1.0});
    let mut streams = vec![];
    for _ in 0..3 {
        let req = Request::post("/v1/completions").header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
        let resp = f.server.router().oneshot(req).await.unwrap();
        let mut data = resp.into_body().into_data_stream();
        for _ in 0..3 {
            data.next().await.unwrap().unwrap();
        }
        streams.push(data);
    }
    let busy = || f.server.metrics().slots_busy.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(busy(), 3);
    drop(streams);
    let start = Instant::now();
    while busy() != 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "{} slots still busy", busy());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(f.server.metrics().requests_cancelled_total.load(std::sync::atomic::Ordering::Relaxed), 3);
}
