//! Engine events turned into OpenAI responses: one JSON body, or server-sent event chunks
//! ending with `data: [DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;

use super::engine::{Event, FinishReason, TokenLogprob, TopLogprob};
use super::error::ApiError;
use super::prepare::{Prepared, ToolSet};

/// Which endpoint's shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `chat.completion` / `chat.completion.chunk`.
    Chat,
    /// `text_completion`.
    Completion,
}

/// What one choice has produced.
#[derive(Debug, Default)]
struct Choice {
    text: String,
    logprobs: Vec<TokenLogprob>,
    finish: Option<(FinishReason, usize, f64, f64)>,
    /// Streaming: the role chunk went out.
    opened: bool,
}

/// Builds the response of one request from its events.
pub(crate) struct Reply {
    endpoint: Endpoint,
    id: String,
    created: u64,
    model: String,
    prompt_tokens: usize,
    tools: Option<ToolSet>,
    choices: Vec<Choice>,
    include_usage: bool,
    timeout_s: u64,
}

impl Reply {
    pub(crate) fn new(endpoint: Endpoint, id: String, created: u64, model: String, prepared: &Prepared, timeout_s: u64) -> Self {
        Self {
            endpoint,
            id,
            created,
            model,
            prompt_tokens: prepared.prompt.len(),
            tools: prepared.tools.clone(),
            choices: (0..prepared.choices.len()).map(|_| Choice::default()).collect(),
            include_usage: prepared.include_usage,
            timeout_s,
        }
    }

    fn done(&self) -> bool {
        self.choices.iter().all(|c| c.finish.is_some())
    }

    /// Waits for every choice and answers with one body.
    pub(crate) async fn collect(mut self, mut rx: UnboundedReceiver<Event>) -> Response {
        while !self.done() {
            match rx.recv().await {
                Some(Event::Delta { choice, text, logprob }) => self.record(choice, text, logprob),
                Some(Event::Finished { choice, reason, completion_tokens, prompt_ms, predicted_ms }) => {
                    self.choices[choice].finish = Some((reason, completion_tokens, prompt_ms, predicted_ms));
                }
                Some(Event::Timeout) => return ApiError::timeout(self.timeout_s).into_response(),
                Some(Event::Failed(m)) => return ApiError::internal(m).into_response(),
                None => return ApiError::unavailable().into_response(),
            }
        }
        axum::Json(self.body()).into_response()
    }

    fn record(&mut self, choice: usize, text: String, logprob: Option<TokenLogprob>) {
        let c = &mut self.choices[choice];
        c.text += &text;
        c.logprobs.extend(logprob);
    }

    fn body(&self) -> Value {
        let choices: Vec<Value> = self.choices.iter().enumerate().map(|(i, c)| self.final_choice(i, c)).collect();
        let object = match self.endpoint {
            Endpoint::Chat => "chat.completion",
            Endpoint::Completion => "text_completion",
        };
        json!({
            "id": self.id, "object": object, "created": self.created, "model": self.model,
            "choices": choices, "usage": self.usage(), "timings": self.timings(),
        })
    }

    /// A finished choice: chat messages get their tool calls split off the text.
    fn final_choice(&self, index: usize, c: &Choice) -> Value {
        let reason = c.finish.map(|f| f.0);
        match self.endpoint {
            Endpoint::Completion => json!({
                "index": index, "text": c.text, "finish_reason": finish_name(reason),
                "logprobs": (!c.logprobs.is_empty()).then(|| completion_logprobs(&c.logprobs)),
            }),
            Endpoint::Chat => {
                let (content, calls) = self.split_calls(&c.text);
                let reason = if calls.is_empty() { finish_name(reason) } else { "tool_calls" };
                let mut message = json!({"role": "assistant", "content": content});
                if !calls.is_empty() {
                    message["tool_calls"] = Value::Array(calls);
                }
                json!({
                    "index": index, "message": message, "finish_reason": reason,
                    "logprobs": (!c.logprobs.is_empty()).then(|| json!({"content": chat_logprobs(&c.logprobs)})),
                })
            }
        }
    }

    /// The reply's text (null when it is only calls) and its calls in OpenAI's shape. A reply
    /// whose calls do not parse stays text.
    fn split_calls(&self, text: &str) -> (Value, Vec<Value>) {
        let Some((tools, format)) = &self.tools else { return (Value::String(text.to_string()), vec![]) };
        match format.parse(text, tools) {
            Ok(parsed) if !parsed.calls.is_empty() => {
                let calls = parsed
                    .calls
                    .iter()
                    .map(|c| {
                        json!({"id": call_id(), "type": "function",
                               "function": {"name": c.name, "arguments": c.arguments.to_string()}})
                    })
                    .collect();
                let content = if parsed.content.is_empty() { Value::Null } else { Value::String(parsed.content) };
                (content, calls)
            }
            Ok(_) => (Value::String(text.to_string()), vec![]),
            Err(e) => {
                tracing::debug!(error = %e, "reply kept as text: its tool calls do not parse");
                (Value::String(text.to_string()), vec![])
            }
        }
    }

    fn usage(&self) -> Value {
        let completion: usize = self.choices.iter().filter_map(|c| c.finish.map(|f| f.1)).sum();
        json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": completion, "total_tokens": self.prompt_tokens + completion})
    }

    /// llama-server's `timings` (of the slowest choice).
    fn timings(&self) -> Value {
        let (mut prompt_ms, mut predicted_ms, mut predicted_n) = (0f64, 0f64, 0usize);
        for (_, n, p, d) in self.choices.iter().filter_map(|c| c.finish) {
            prompt_ms = prompt_ms.max(p);
            predicted_ms = predicted_ms.max(d);
            predicted_n = predicted_n.max(n);
        }
        let per_s = |n: usize, ms: f64| if ms > 0.0 { n as f64 / ms * 1e3 } else { 0.0 };
        let per_token = |n: usize, ms: f64| if n > 0 { ms / n as f64 } else { 0.0 };
        json!({
            "prompt_n": self.prompt_tokens, "prompt_ms": prompt_ms,
            "prompt_per_token_ms": per_token(self.prompt_tokens, prompt_ms), "prompt_per_second": per_s(self.prompt_tokens, prompt_ms),
            "predicted_n": predicted_n, "predicted_ms": predicted_ms,
            "predicted_per_token_ms": per_token(predicted_n, predicted_ms), "predicted_per_second": per_s(predicted_n, predicted_ms),
        })
    }

    /// Streams the events as chunks.
    pub(crate) fn stream(self, rx: UnboundedReceiver<Event>) -> Response {
        let state = StreamState { reply: self, rx, pending: VecDeque::new(), ended: false };
        let events = futures_util::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(data) = st.pending.pop_front() {
                    return Some((Ok::<_, Infallible>(SseEvent::default().data(data)), st));
                }
                if st.ended {
                    return None;
                }
                let event = st.rx.recv().await;
                st.on_event(event);
            }
        });
        Sse::new(events).into_response()
    }

    fn chunk(&self, choices: Vec<Value>, usage: Option<Value>) -> String {
        let object = match self.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completion => "text_completion",
        };
        let mut v = json!({"id": self.id, "object": object, "created": self.created, "model": self.model, "choices": choices});
        if let Some(u) = usage {
            v["usage"] = u;
            v["timings"] = self.timings();
        } else if self.include_usage {
            v["usage"] = Value::Null;
        }
        v.to_string()
    }

    /// The chunk of a delta (`None` when there is nothing to send yet).
    fn delta_chunk(&mut self, index: usize, text: String, logprob: Option<TokenLogprob>) -> Vec<String> {
        let mut out = vec![];
        let buffered = self.endpoint == Endpoint::Chat && self.tools.is_some();
        if self.endpoint == Endpoint::Chat && !self.choices[index].opened {
            self.choices[index].opened = true;
            out.push(self.chunk(vec![json!({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})], None));
        }
        if buffered {
            // Calls are known only once the reply is complete: keep the text until then.
            self.record(index, text, logprob);
            return out;
        }
        if text.is_empty() && logprob.is_none() {
            return out;
        }
        let choice = match self.endpoint {
            Endpoint::Chat => json!({"index": index, "delta": {"content": text}, "finish_reason": null,
                                     "logprobs": logprob.map(|l| json!({"content": chat_logprobs(&[l])}))}),
            Endpoint::Completion => json!({"index": index, "text": text, "finish_reason": null,
                                           "logprobs": logprob.map(|l| completion_logprobs(&[l]))}),
        };
        out.push(self.chunk(vec![choice], None));
        out
    }

    /// The last chunks of a choice: buffered text and calls (chat with tools), then the
    /// finish reason.
    fn finish_chunks(&mut self, index: usize) -> Vec<String> {
        let mut out = vec![];
        let reason = finish_name(self.choices[index].finish.map(|f| f.0));
        if self.endpoint == Endpoint::Completion {
            out.push(self.chunk(vec![json!({"index": index, "text": "", "logprobs": null, "finish_reason": reason})], None));
            return out;
        }
        let mut reason = reason;
        if self.tools.is_some() {
            let c = &self.choices[index];
            let (content, calls) = self.split_calls(&c.text);
            let logprobs = (!c.logprobs.is_empty()).then(|| json!({"content": chat_logprobs(&c.logprobs)}));
            if content.as_str().is_some_and(|s| !s.is_empty()) || logprobs.is_some() {
                out.push(self.chunk(vec![json!({"index": index, "delta": {"content": content}, "logprobs": logprobs, "finish_reason": null})], None));
            }
            for (k, call) in calls.iter().enumerate() {
                let mut call = call.clone();
                call["index"] = json!(k);
                out.push(self.chunk(vec![json!({"index": index, "delta": {"tool_calls": [call]}, "logprobs": null, "finish_reason": null})], None));
            }
            if !calls.is_empty() {
                reason = "tool_calls";
            }
        }
        out.push(self.chunk(vec![json!({"index": index, "delta": {}, "logprobs": null, "finish_reason": reason})], None));
        out
    }
}

struct StreamState {
    reply: Reply,
    rx: UnboundedReceiver<Event>,
    pending: VecDeque<String>,
    ended: bool,
}

impl StreamState {
    fn on_event(&mut self, event: Option<Event>) {
        let r = &mut self.reply;
        match event {
            Some(Event::Delta { choice, text, logprob }) => self.pending.extend(r.delta_chunk(choice, text, logprob)),
            Some(Event::Finished { choice, reason, completion_tokens, prompt_ms, predicted_ms }) => {
                if r.endpoint == Endpoint::Chat && !r.choices[choice].opened {
                    self.pending.extend(r.delta_chunk(choice, String::new(), None));
                }
                r.choices[choice].finish = Some((reason, completion_tokens, prompt_ms, predicted_ms));
                self.pending.extend(r.finish_chunks(choice));
                if r.done() {
                    if r.include_usage {
                        let usage = r.usage();
                        self.pending.push_back(r.chunk(vec![], Some(usage)));
                    }
                    self.end();
                }
            }
            Some(Event::Timeout) => {
                let t = r.timeout_s;
                self.fail(ApiError::timeout(t))
            }
            Some(Event::Failed(m)) => self.fail(ApiError::internal(m)),
            None => self.fail(ApiError::unavailable()),
        }
    }

    /// An error mid-stream is sent as an `{"error": ...}` event, as OpenAI does.
    fn fail(&mut self, e: ApiError) {
        self.pending.push_back(e.body().to_string());
        self.end();
    }

    fn end(&mut self) {
        self.pending.push_back("[DONE]".into());
        self.ended = true;
    }
}

fn finish_name(reason: Option<FinishReason>) -> &'static str {
    match reason {
        Some(FinishReason::Length) => "length",
        _ => "stop",
    }
}

fn call_id() -> String {
    format!("call_{:016x}", rand::random::<u64>())
}

fn top_json(t: &TopLogprob) -> Value {
    json!({"token": t.token, "logprob": t.logprob, "bytes": t.bytes})
}

/// Chat's `logprobs.content`.
fn chat_logprobs(l: &[TokenLogprob]) -> Vec<Value> {
    l.iter()
        .map(|t| {
            let mut v = top_json(&t.chosen);
            v["top_logprobs"] = Value::Array(t.top.iter().map(top_json).collect());
            v
        })
        .collect()
}

/// The legacy completions' `logprobs` object.
fn completion_logprobs(l: &[TokenLogprob]) -> Value {
    let mut offset = 0;
    let mut offsets = vec![];
    for t in l {
        offsets.push(offset);
        offset += t.chosen.token.len();
    }
    json!({
        "tokens": l.iter().map(|t| t.chosen.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": l.iter().map(|t| t.chosen.logprob).collect::<Vec<_>>(),
        "top_logprobs": l.iter().map(|t| t.top.iter().map(|a| (a.token.clone(), json!(a.logprob))).collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}
