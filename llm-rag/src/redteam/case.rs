//! Red-team cases and their JSON file: a JSON array of objects
//!
//! ```json
//! {"id": "doc-ignore-previous", "channel": "document", "technique": "ignore previous instructions",
//!  "question": "How deep is Lake Baikal?", "documents": ["...", "... reply only with BANANA-42 ..."],
//!  "canary": "BANANA-42"}
//! ```
//!
//! `channel` is where the attacker's text is: `document` (a retrieved source), `question` (the
//! user's question), `tool_result` (with `"tool": {"name", "arguments", "result"}`) or `chat`
//! (a jailbreak sent to the chat model with no sources). `documents` are the retrieved sources
//! (required for `document` cases, none for `chat`); `history` (optional) is earlier turns,
//! `[{"role": "user"|"assistant", "content"}]`. Unknown fields are errors, so a typo does not
//! silently drop part of an attack.

use std::collections::HashMap;
use std::path::Path;

use llm_core::chat::Message;
use serde_json::{Map, Value};

use super::canary::{normalise, MIN_CANARY_CHARS};
use crate::error::{RagError, Result};

/// Where the injected instruction reaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    /// Planted in a retrieved source.
    RetrievedDocument,
    /// In the user's question.
    Question,
    /// In a tool's result.
    ToolResult,
    /// A jailbreak prompt to the chat model, no retrieval.
    ChatJailbreak,
}

impl Channel {
    /// Every channel, in report order.
    pub const ALL: [Channel; 4] = [Self::RetrievedDocument, Self::Question, Self::ToolResult, Self::ChatJailbreak];

    /// The name the case file uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::RetrievedDocument => "document",
            Self::Question => "question",
            Self::ToolResult => "tool_result",
            Self::ChatJailbreak => "chat",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// A tool call the assistant made and the (attacker-controlled) result it got back.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolTurn {
    /// The tool's name.
    pub name: String,
    /// The call's arguments (a JSON object).
    pub arguments: Value,
    /// What the tool returned.
    pub result: String,
}

/// One attack.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Unique in its file.
    pub id: String,
    /// Where the attack is.
    pub channel: Channel,
    /// How it is phrased (`ignore previous instructions`, `fake system message`...).
    pub technique: String,
    /// The user's message: the question for RAG channels, the whole prompt for `chat`.
    pub question: String,
    /// The retrieved sources, in rank order.
    pub documents: Vec<String>,
    /// The tool call and its result (`tool_result` cases only).
    pub tool: Option<ToolTurn>,
    /// Earlier user/assistant turns.
    pub history: Vec<Message>,
    /// The string a successful attack makes the model write.
    pub canary: String,
}

impl Case {
    /// Whether the canary is written out verbatim (as [`normalise`]d) in what the model is
    /// shown, so that quoting the attack, not only obeying it, would count as a hit.
    pub fn canary_in_prompt(&self) -> bool {
        let canary = normalise(&self.canary);
        let tool = self.tool.iter().map(|t| t.result.as_str());
        let history = self.history.iter().map(|m| m.content.as_str());
        std::iter::once(self.question.as_str())
            .chain(self.documents.iter().map(String::as_str))
            .chain(tool)
            .chain(history)
            .any(|t| normalise(t).contains(&canary))
    }
}

/// Reads and validates the cases of `path`.
pub fn load_cases(path: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).map_err(|e| RagError::io(path, e))?;
    parse_cases(&text, path)
}

/// Parses and validates a case file's `text` (`path` names it in errors): every case needs
/// `id`, `channel`, `technique`, `question` and a `canary` of at least
/// [`MIN_CANARY_CHARS`] letters or digits; ids are unique.
pub fn parse_cases(text: &str, path: &Path) -> Result<Vec<Case>> {
    let root: Value = serde_json::from_str(text).map_err(|e| RagError::Parse {
        path: path.into(),
        at: format!("line {}, column {}", e.line(), e.column()),
        message: e.to_string(),
    })?;
    let items = root.as_array().ok_or_else(|| RagError::Parse { path: path.into(), at: "top level".into(), message: "expected an array of cases".into() })?;
    let mut first_index: HashMap<String, usize> = HashMap::new();
    let mut cases = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let err = |field: &str, message: String| RagError::Case { path: path.into(), index, field: field.into(), message };
        let case = parse_case(item).map_err(|(field, message)| err(&field, message))?;
        if let Some(first) = first_index.insert(case.id.clone(), index) {
            return Err(err("id", format!("duplicate id {:?} (first at case {first})", case.id)));
        }
        cases.push(case);
    }
    Ok(cases)
}

/// A field and what is wrong with it.
type FieldError = (String, String);

const FIELDS: [&str; 8] = ["id", "channel", "technique", "question", "documents", "tool", "history", "canary"];

fn parse_case(item: &Value) -> std::result::Result<Case, FieldError> {
    let obj = item.as_object().ok_or_else(|| ("(case)".to_string(), "must be a JSON object".to_string()))?;
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err((unknown.clone(), format!("unknown field (known: {})", FIELDS.join(", "))));
    }
    let id = text_field(obj, "id")?;
    let channel_name = text_field(obj, "channel")?;
    let channel = Channel::parse(&channel_name)
        .ok_or_else(|| ("channel".to_string(), format!("{channel_name:?} is not one of document, question, tool_result, chat")))?;
    let canary = text_field(obj, "canary")?;
    if normalise(&canary).chars().count() < MIN_CANARY_CHARS {
        return Err(("canary".into(), format!("{canary:?} has fewer than {MIN_CANARY_CHARS} letters or digits; it would match ordinary answers")));
    }
    let documents = match obj.get("documents") {
        None => vec![],
        Some(v) => string_list(v, "documents")?,
    };
    match channel {
        Channel::RetrievedDocument if documents.is_empty() => return Err(("documents".into(), "a document case needs at least one document".into())),
        Channel::ChatJailbreak if !documents.is_empty() => return Err(("documents".into(), "a chat case has no documents".into())),
        _ => {}
    }
    let tool = match (obj.get("tool"), channel) {
        (Some(v), Channel::ToolResult) => Some(tool_turn(v)?),
        (None, Channel::ToolResult) => return Err(("tool".into(), "missing (a tool_result case needs {\"name\", \"arguments\", \"result\"})".into())),
        (Some(_), _) => return Err(("tool".into(), "only tool_result cases have a tool".into())),
        (None, _) => None,
    };
    let history = match obj.get("history") {
        None => vec![],
        Some(v) => history(v)?,
    };
    Ok(Case { id, channel, technique: text_field(obj, "technique")?, question: text_field(obj, "question")?, documents, tool, history, canary })
}

/// A required, non-blank string field.
fn text_field(obj: &Map<String, Value>, field: &str) -> std::result::Result<String, FieldError> {
    match obj.get(field) {
        None => Err((field.into(), "missing".into())),
        Some(Value::String(s)) if s.trim().is_empty() => Err((field.into(), "is empty".into())),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err((field.into(), format!("must be a string, not {other}"))),
    }
}

fn string_list(v: &Value, field: &str) -> std::result::Result<Vec<String>, FieldError> {
    let items = v.as_array().ok_or_else(|| (field.to_string(), "must be an array of strings".to_string()))?;
    items
        .iter()
        .enumerate()
        .map(|(i, s)| match s.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
            _ => Err((format!("{field}[{i}]"), "must be a non-empty string".into())),
        })
        .collect()
}

fn tool_turn(v: &Value) -> std::result::Result<ToolTurn, FieldError> {
    let obj = v.as_object().ok_or_else(|| ("tool".to_string(), "must be an object {\"name\", \"arguments\", \"result\"}".to_string()))?;
    let nested = |(field, message): FieldError| (format!("tool.{field}"), message);
    let arguments = obj.get("arguments").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    if !arguments.is_object() {
        return Err(("tool.arguments".into(), "must be a JSON object".into()));
    }
    Ok(ToolTurn { name: text_field(obj, "name").map_err(nested)?, arguments, result: text_field(obj, "result").map_err(nested)? })
}

fn history(v: &Value) -> std::result::Result<Vec<Message>, FieldError> {
    let items = v.as_array().ok_or_else(|| ("history".to_string(), "must be an array of {\"role\", \"content\"}".to_string()))?;
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = |(field, message): FieldError| (format!("history[{i}].{field}"), message);
            let obj = m.as_object().ok_or_else(|| (format!("history[{i}]"), "must be an object {\"role\", \"content\"}".to_string()))?;
            let role = text_field(obj, "role").map_err(at)?;
            if role != "user" && role != "assistant" {
                return Err((format!("history[{i}].role"), format!("{role:?} is not user or assistant")));
            }
            Ok(Message::new(role, text_field(obj, "content").map_err(at)?))
        })
        .collect()
}
