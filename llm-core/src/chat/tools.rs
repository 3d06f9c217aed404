//! Tool (function) calling: tools passed to the chat template as transformers passes them,
//! calls read back from the model's reply in the format its template teaches, optionally
//! constrained to the declared tools' JSON Schemas, and results fed back as `tool` messages.
//!
//! Formats:
//! - [`ToolFormat::Hermes`]: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`
//!   (Qwen2/2.5, SmolLM2/3, Hermes; the most common).
//! - [`ToolFormat::Llama3`]: a bare `{"name": ..., "parameters": {...}}` object, optionally
//!   after `<|python_tag|>` (Llama 3.1/3.2 JSON tool calling).
//! - [`ToolFormat::Mistral`]: `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Message;
use crate::error::{LlmError, Result};
use crate::generate::Constraint;

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The name the model calls it by.
    pub name: String,
    /// What it does (the model reads this).
    #[serde(default)]
    pub description: String,
    /// Its arguments as a JSON Schema object.
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
}

fn empty_object_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// One call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments (a JSON object).
    pub arguments: Value,
}

impl Tool {
    /// Tools from OpenAI's request shape (`[{"type": "function", "function": {...}}]`) or a
    /// plain list of `{name, description, parameters}`; errors name the entry.
    pub fn list_from_json(v: &Value) -> Result<Vec<Tool>> {
        let items = v.as_array().ok_or_else(|| LlmError::config("tools", "must be a JSON array"))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let f = item.get("function").unwrap_or(item);
                let tool: Tool = serde_json::from_value(f.clone())
                    .map_err(|e| LlmError::config(format!("tools[{i}]"), e.to_string()))?;
                if tool.name.is_empty() || !tool.parameters.is_object() {
                    return Err(LlmError::config(format!("tools[{i}]"), "needs a name and an object `parameters` schema"));
                }
                Ok(tool)
            })
            .collect()
    }

    /// The `tools` value chat templates expect (transformers' `get_json_schema` shape).
    pub fn template_json(tools: &[Tool]) -> Value {
        Value::Array(
            tools
                .iter()
                .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                .collect(),
        )
    }
}

impl ToolCall {
    /// The assistant message that records these calls (`tool_calls` as HF templates read it).
    pub fn assistant_message(content: &str, calls: &[ToolCall]) -> Message {
        let tool_calls = calls
            .iter()
            .map(|c| json!({"type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
        Message { tool_calls: Some(tool_calls), ..Message::new("assistant", content) }
    }

    /// A tool's result, as the `tool` message that follows the call.
    pub fn result_message(&self, result: impl Into<String>) -> Message {
        Message { name: Some(self.name.clone()), ..Message::new("tool", result) }
    }
}

/// How a model writes its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// `<tool_call>{json}</tool_call>` blocks.
    Hermes,
    /// One JSON object with `name` and `parameters`, optionally after `<|python_tag|>`.
    Llama3,
    /// `[TOOL_CALLS]` then a JSON array of calls.
    Mistral,
}

/// A reply split into its text and its calls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedReply {
    /// The text outside the calls, trimmed.
    pub content: String,
    /// The calls, in order.
    pub calls: Vec<ToolCall>,
}

impl ToolFormat {
    /// The format a chat template teaches, read off its source; `None` when it has no tool
    /// syntax.
    pub fn detect(template_source: &str) -> Option<Self> {
        if template_source.contains("<tool_call>") {
            Some(Self::Hermes)
        } else if template_source.contains("[TOOL_CALLS]") {
            Some(Self::Mistral)
        } else if template_source.contains("<|python_tag|>") || template_source.contains("ipython") {
            Some(Self::Llama3)
        } else {
            None
        }
    }

    /// Reads the calls in `reply`; each must name one of `tools` and carry object arguments.
    pub fn parse(self, reply: &str, tools: &[Tool]) -> Result<ParsedReply> {
        let (content, raw) = match self {
            Self::Hermes => hermes_blocks(reply)?,
            Self::Llama3 => {
                let body = reply.trim_start().trim_start_matches("<|python_tag|>").trim_start();
                match body.starts_with('{').then(|| first_json(body)).flatten() {
                    Some((v, rest)) => (rest.to_string(), vec![v]),
                    None => (reply.to_string(), vec![]),
                }
            }
            Self::Mistral => match reply.find("[TOOL_CALLS]") {
                Some(at) => {
                    let (v, rest) = first_json(reply[at + "[TOOL_CALLS]".len()..].trim_start())
                        .ok_or_else(|| call_err("[TOOL_CALLS] is not followed by a JSON array".into()))?;
                    let calls = v.as_array().cloned().unwrap_or_else(|| vec![v]);
                    (format!("{}{}", &reply[..at], rest), calls)
                }
                None => (reply.to_string(), vec![]),
            },
        };
        let calls = raw.iter().map(|v| call_from(v, tools)).collect::<Result<_>>()?;
        Ok(ParsedReply { content: content.trim().to_string(), calls })
    }

    /// A constraint that makes the reply either plain text or calls (`required`: only calls) in
    /// this format, each call's arguments valid against its tool's schema; at most 8 calls per
    /// reply (Llama 3's format has one).
    pub fn constraint(self, tools: &[Tool], required: bool) -> Result<Constraint> {
        self.constraint_with(tools, required, true)
    }

    /// [`Self::constraint`]; with `parallel` false at most one call (OpenAI's
    /// `parallel_tool_calls: false`, or a `tool_choice` naming one function).
    pub fn constraint_with(self, tools: &[Tool], required: bool, parallel: bool) -> Result<Constraint> {
        if tools.is_empty() {
            return Err(LlmError::config("tools", "constraining tool calls needs at least one tool"));
        }
        let args_key = if self == Self::Llama3 { "parameters" } else { "arguments" };
        let any_call = json!({"x-guidance": {"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}, "anyOf": tools.iter().map(|t| json!({
            "type": "object", "additionalProperties": false, "required": ["name", args_key],
            "properties": {"name": {"const": t.name}, args_key: t.parameters}
        })).collect::<Vec<_>>()});
        let (calls, text) = match self {
            Self::Hermes if parallel => ("calls: call (\"\\n\" call){0,7}\ncall: \"<tool_call>\\n\" body \"\\n</tool_call>\"\n", r"/[^<](.|\n)*/"),
            Self::Hermes => ("calls: \"<tool_call>\\n\" body \"\\n</tool_call>\"\n", r"/[^<](.|\n)*/"),
            Self::Llama3 => ("calls: body\n", r"/[^{<](.|\n)*/"),
            Self::Mistral => {
                return Err(LlmError::config("tools", "constrained Mistral tool calls are not supported ([TOOL_CALLS] is a special token); parse them instead"))
            }
        };
        let start = if required { "start: calls\n" } else { "start: TEXT | calls\n" };
        Ok(Constraint::Lark(format!("{start}{calls}body: %json {any_call}\nTEXT: {text}\n")))
    }
}

fn call_err(message: String) -> LlmError {
    LlmError::Constraint { kind: "tool call".into(), message }
}

/// The text outside `<tool_call>...</tool_call>` blocks and the JSON inside them.
fn hermes_blocks(reply: &str) -> Result<(String, Vec<Value>)> {
    let (mut content, mut calls, mut rest) = (String::new(), vec![], reply);
    while let Some(open) = rest.find("<tool_call>") {
        content += &rest[..open];
        let body = &rest[open + "<tool_call>".len()..];
        let close = body.find("</tool_call>").unwrap_or(body.len());
        let v = serde_json::from_str(body[..close].trim())
            .map_err(|e| call_err(format!("<tool_call> block is not JSON: {e}")))?;
        calls.push(v);
        rest = body.get(close + "</tool_call>".len()..).unwrap_or("");
    }
    content += rest;
    Ok((content, calls))
}

/// The first JSON value at the start of `text`, and what follows it.
fn first_json(text: &str) -> Option<(Value, &str)> {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let v = stream.next()?.ok()?;
    Some((v, &text[stream.byte_offset()..]))
}

fn call_from(v: &Value, tools: &[Tool]) -> Result<ToolCall> {
    let name = v.get("name").and_then(Value::as_str).ok_or_else(|| call_err(format!("a call without a name: {v}")))?;
    if !tools.iter().any(|t| t.name == name) {
        return Err(call_err(format!("the model called `{name}`, which is not among the tools")));
    }
    let mut arguments = v.get("arguments").or_else(|| v.get("parameters")).cloned().unwrap_or_else(|| json!({}));
    // Some models write the arguments as a JSON string, as OpenAI's API carries them.
    if let Some(s) = arguments.as_str() {
        arguments = serde_json::from_str(s).map_err(|e| call_err(format!("`{name}` arguments are not JSON: {e}")))?;
    }
    if !arguments.is_object() {
        return Err(call_err(format!("`{name}` arguments are not an object: {arguments}")));
    }
    Ok(ToolCall { name: name.to_string(), arguments })
}
