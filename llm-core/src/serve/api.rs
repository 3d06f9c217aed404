//! OpenAI's request bodies, parsed with the parameter a type error is in named, and checked
//! up front (ranges, limits) with errors that name the parameter.

use serde::Deserialize;
use serde_json::Value;

use super::error::ApiError;

/// `stop`: one string or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Up to four.
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the request's `usage`.
    #[serde(default)]
    pub include_usage: bool,
}

/// Sampling parameters both completion endpoints take. `top_k`, `min_p` and
/// `repetition_penalty` are extensions (vLLM and llama-server accept them too).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Sampling {
    /// Model name (optional: the served model).
    pub model: Option<String>,
    /// 0 to 2; 0 is greedy. Default 1.
    pub temperature: Option<f32>,
    /// Nucleus mass in (0, 1]. Default 1.
    pub top_p: Option<f32>,
    /// Keep the k most likely (0: off, the default).
    pub top_k: Option<usize>,
    /// Drop tokens below `min_p` times the most likely.
    pub min_p: Option<f32>,
    /// transformers' repetition penalty (1: off).
    pub repetition_penalty: Option<f32>,
    /// -2 to 2.
    pub frequency_penalty: Option<f32>,
    /// -2 to 2.
    pub presence_penalty: Option<f32>,
    /// New tokens at most (legacy name).
    pub max_tokens: Option<usize>,
    /// New tokens at most.
    pub max_completion_tokens: Option<usize>,
    /// Up to 4 stop strings.
    pub stop: Option<Stop>,
    /// Sampling seed (choice i uses seed + i).
    pub seed: Option<u64>,
    /// Choices to generate.
    pub n: Option<usize>,
    /// Stream server-sent events.
    pub stream: Option<bool>,
    /// Streaming options.
    pub stream_options: Option<StreamOptions>,
}

/// A chat message as the API sends it: content as text or a list of parts.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant`, `tool`.
    pub role: String,
    /// Text, a list of `{"type": "text", "text": ...}` parts, or null (an assistant turn of
    /// tool calls).
    #[serde(default)]
    pub content: Option<Value>,
    /// An assistant turn's calls.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCallIn>>,
    /// A `tool` message's call id.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// A participant or tool name.
    #[serde(default)]
    pub name: Option<String>,
}

/// A call in an assistant message of the request.
#[derive(Debug, Clone, Deserialize)]
pub struct ToolCallIn {
    /// The call's id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name and JSON-encoded arguments.
    pub function: FunctionIn,
}

/// `{"name", "arguments"}` with arguments as a JSON string.
#[derive(Debug, Clone, Deserialize)]
pub struct FunctionIn {
    /// Tool name.
    pub name: String,
    /// Arguments, JSON-encoded.
    #[serde(default)]
    pub arguments: String,
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Plain text (no constraint).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// `{"name", "schema", "strict"}`.
        json_schema: JsonSchemaFormat,
    },
}

/// The `json_schema` of a `response_format`.
#[derive(Debug, Clone, Deserialize)]
pub struct JsonSchemaFormat {
    /// The schema's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The JSON Schema.
    #[serde(default)]
    pub schema: Option<Value>,
}

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling and output parameters (read from the same body by [`parse_request`]).
    #[serde(skip)]
    pub sampling: Sampling,
    /// Tools in OpenAI's shape.
    pub tools: Option<Value>,
    /// `none`, `auto`, `required` or `{"type": "function", "function": {"name"}}`.
    pub tool_choice: Option<Value>,
    /// Output format.
    pub response_format: Option<ResponseFormat>,
    /// Allow several calls in one reply (default true).
    pub parallel_tool_calls: Option<bool>,
    /// Return log-probabilities.
    pub logprobs: Option<bool>,
    /// Alternatives per token (0 to 20), with `logprobs`.
    pub top_logprobs: Option<usize>,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    /// The prompt: a string or a list of one string.
    pub prompt: Value,
    /// Sampling and output parameters (read from the same body by [`parse_request`]).
    #[serde(skip)]
    pub sampling: Sampling,
    /// Alternatives per token (0 to 5) with their log-probabilities.
    pub logprobs: Option<usize>,
    /// Repeat the prompt in the output (only `false` is supported).
    pub echo: Option<bool>,
    /// Text after the completion (not supported).
    pub suffix: Option<String>,
    /// Output format (an extension, as on the chat endpoint).
    pub response_format: Option<ResponseFormat>,
}

/// `POST /v1/embeddings`.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbeddingRequest {
    /// A string or a list of strings.
    pub input: Value,
    /// Model name.
    pub model: Option<String>,
    /// `float` (the default) or `base64` (little-endian f32, what the openai client asks for).
    pub encoding_format: Option<String>,
    /// Output width (not supported unless equal to the model's).
    pub dimensions: Option<usize>,
}

/// A request body with the sampling parameters both completion endpoints share.
pub trait WithSampling: serde::de::DeserializeOwned {
    /// Where the shared parameters go.
    fn sampling_mut(&mut self) -> &mut Sampling;
}

impl WithSampling for ChatRequest {
    fn sampling_mut(&mut self) -> &mut Sampling {
        &mut self.sampling
    }
}

impl WithSampling for CompletionRequest {
    fn sampling_mut(&mut self) -> &mut Sampling {
        &mut self.sampling
    }
}

/// Parses a completion request: the endpoint's own fields and the shared sampling ones, each
/// type error naming its field (`max_tokens: invalid type: string ...`).
pub fn parse_request<T: WithSampling>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = parse(body)?;
    let mut req: T = parse_value(value.clone())?;
    *req.sampling_mut() = parse_value(value)?;
    Ok(req)
}

/// Parses a body; a syntax error is a 400 without a parameter.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(None, format!("The request body is not valid JSON: {e}")))?;
    parse_value(value)
}

fn parse_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let param = (path != ".").then_some(path.as_str());
        let where_ = param.map(|p| format!(" at `{p}`")).unwrap_or_default();
        ApiError::invalid(param, format!("Invalid request{where_}: {}", e.inner()))
    })
}

impl ChatMessage {
    /// The content as text: a string, or the `text` parts of a list joined; null is empty.
    pub fn text(&self, index: usize) -> Result<String, ApiError> {
        let param = || format!("messages[{index}].content");
        match &self.content {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Array(parts)) => parts
                .iter()
                .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => Ok(t.to_string()),
                    (kind, _) => Err(ApiError::invalid(
                        Some(&param()),
                        format!("content part of type {kind:?} is not supported (text only)"),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|t| t.join("")),
            Some(_) => Err(ApiError::invalid(Some(&param()), "content must be a string or a list of text parts")),
        }
    }
}

impl Stop {
    /// The stop strings (at most 4, as OpenAI allows).
    pub fn strings(&self) -> Result<Vec<String>, ApiError> {
        let v = match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        };
        if v.len() > 4 {
            return Err(ApiError::invalid(Some("stop"), format!("at most 4 stop sequences, got {}", v.len())));
        }
        Ok(v)
    }
}

/// `value` within `range`, or a 400 naming `param`.
pub fn check_range(param: &str, value: Option<f32>, lo: f32, hi: f32) -> Result<(), ApiError> {
    match value {
        Some(v) if !(lo..=hi).contains(&v) => {
            Err(ApiError::invalid(Some(param), format!("{param} must be between {lo} and {hi}, got {v}")))
        }
        _ => Ok(()),
    }
}
