//! SFT datasets from JSONL in the shapes the ecosystem uses, each line one record:
//!
//! | shape | record | trained tokens |
//! |---|---|---|
//! | chat | `{"messages": [{"role", "content"}, ...]}` | every assistant turn |
//! | prompt/completion | `{"prompt": ..., "completion": ...}` (strings or message lists) | the completion |
//! | Alpaca | `{"instruction", "input"?, "output"}` | the output (as an assistant turn) |
//! | text | `{"text": "..."}` | everything |

use std::path::Path;

use llm_core::chat::Message;
use serde_json::Value;

use crate::error::{Result, TrainError};

/// Prompt or completion: plain text, or chat messages rendered by the model's template.
#[derive(Debug, Clone, PartialEq)]
pub enum Turns {
    /// Raw text.
    Text(String),
    /// Messages.
    Chat(Vec<Message>),
}

/// One training record.
#[derive(Debug, Clone, PartialEq)]
pub enum SftExample {
    /// A conversation; every assistant message is trained.
    Messages(Vec<Message>),
    /// The prompt is context, the completion is trained.
    PromptCompletion {
        /// Context (masked from the loss).
        prompt: Turns,
        /// Target.
        completion: Turns,
    },
    /// Plain text, all trained.
    Text(String),
}

impl SftExample {
    /// Parses one record; the message says which shape was expected.
    pub fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let obj = v.as_object().ok_or("a record must be a JSON object")?;
        if let Some(m) = obj.get("messages") {
            let msgs = messages(m).map_err(|e| format!("`messages`: {e}"))?;
            if !msgs.iter().any(|m| m.role == "assistant") {
                return Err("`messages` has no assistant turn to train on".into());
            }
            return Ok(Self::Messages(msgs));
        }
        if let (Some(p), Some(c)) = (obj.get("prompt"), obj.get("completion")) {
            let prompt = turns(p).map_err(|e| format!("`prompt`: {e}"))?;
            let completion = turns(c).map_err(|e| format!("`completion`: {e}"))?;
            if matches!(prompt, Turns::Text(_)) != matches!(completion, Turns::Text(_)) {
                return Err("`prompt` and `completion` must both be text or both be message lists".into());
            }
            return Ok(Self::PromptCompletion { prompt, completion });
        }
        if let (Some(i), Some(o)) = (obj.get("instruction"), obj.get("output")) {
            let (i, o) = (string(i, "instruction")?, string(o, "output")?);
            let input = match obj.get("input") {
                None | Some(Value::Null) => String::new(),
                Some(x) => string(x, "input")?,
            };
            let user = if input.trim().is_empty() { i } else { format!("{i}\n\n{input}") };
            return Ok(Self::PromptCompletion {
                prompt: Turns::Chat(vec![Message::new("user", user)]),
                completion: Turns::Chat(vec![Message::new("assistant", o)]),
            });
        }
        if let Some(t) = obj.get("text") {
            return Ok(Self::Text(string(t, "text")?));
        }
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        Err(format!(
            "unknown record shape with keys {keys:?}; expected `messages`, `prompt`+`completion`, `instruction`+`output` or `text`"
        ))
    }
}

fn string(v: &Value, key: &str) -> std::result::Result<String, String> {
    v.as_str().map(str::to_string).ok_or_else(|| format!("`{key}` must be a string"))
}

/// A list of `{role, content}` objects; the message says what is wrong.
pub(crate) fn messages(v: &Value) -> std::result::Result<Vec<Message>, String> {
    let arr = v.as_array().ok_or("must be a list of {role, content} objects")?;
    if arr.is_empty() {
        return Err("is empty".into());
    }
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(Value::as_str).ok_or(format!("message {i} has no string `role`"))?;
            let content = m.get("content").and_then(Value::as_str).ok_or(format!("message {i} has no string `content`"))?;
            Ok(Message::new(role, content))
        })
        .collect()
}

fn turns(v: &Value) -> std::result::Result<Turns, String> {
    match v {
        Value::String(s) => Ok(Turns::Text(s.clone())),
        Value::Array(_) => Ok(Turns::Chat(messages(v)?)),
        _ => Err("must be a string or a list of messages".into()),
    }
}

/// Reads a JSONL file (blank lines skipped); a bad line is an error naming its number.
pub fn load_jsonl(path: impl AsRef<Path>) -> Result<Vec<SftExample>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    parse_jsonl(&text, path)
}

/// [`load_jsonl`] on text already read; `path` is only used in errors.
pub fn parse_jsonl(text: &str, path: &Path) -> Result<Vec<SftExample>> {
    parse_records(text, path, SftExample::from_json)
}

/// One record per non-blank line, each parsed by `parse`; a line that is not JSON or that
/// `parse` rejects is an error with its 1-based number; no records at all is an error too.
pub(crate) fn parse_records<T>(
    text: &str,
    path: &Path,
    parse: impl Fn(&Value) -> std::result::Result<T, String>,
) -> Result<Vec<T>> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| TrainError::Data { path: path.to_path_buf(), line: i + 1, message };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        out.push(parse(&v).map_err(bad)?);
    }
    if out.is_empty() {
        return Err(TrainError::Data { path: path.to_path_buf(), line: 0, message: "no records".into() });
    }
    Ok(out)
}
