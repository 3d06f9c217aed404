//! LangChain's `JSONLoader` for JSON and JSON Lines files.
//!
//! A `jq_schema` ([`JsonPath`]) selects the records; an optional `content_key` (a path inside
//! each record) selects the text, otherwise the record itself is the text. With `text_content`
//! (the default, as in LangChain) the text must be a JSON string; without it other values
//! become their JSON text (`null` the empty string). Metadata: `source`, `seq_num` (1-based
//! count of records in the file, as LangChain numbers them), `line` (1-based, JSON Lines only)
//! and the fields named with [`JsonLoader::metadata`]. Errors name the file and the line or the
//! concrete path (`.messages[1].content`).

use super::json_path::{type_name, JsonPath};
use super::{into_documents, read_text, Document, Piece};
use crate::error::{RagError, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Loads records from JSON or JSON Lines files by path (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLoader {
    jq_schema: JsonPath,
    content_key: Option<JsonPath>,
    metadata: Vec<(String, JsonPath)>,
    text_content: bool,
}

impl Default for JsonLoader {
    /// The whole file (or line) as one document: `.` without `text_content`, so an object
    /// becomes its JSON text.
    fn default() -> Self {
        Self { jq_schema: JsonPath::parse(".").expect("`.` parses"), content_key: None, metadata: vec![], text_content: false }
    }
}

impl JsonLoader {
    /// Selects records with `jq_schema` (`.messages[].content`); `text_content` on.
    pub fn new(jq_schema: &str) -> Result<Self> {
        Ok(Self { jq_schema: parse("jq_schema", jq_schema)?, text_content: true, ..Self::default() })
    }

    /// Takes each record's text from `path` inside the record (`.content`); metadata paths then
    /// apply to the record too.
    pub fn content_key(mut self, path: &str) -> Result<Self> {
        self.content_key = Some(parse("content_key", path)?);
        Ok(self)
    }

    /// Copies the value at `path` into metadata `key`: a path inside the record when a
    /// `content_key` is set, otherwise inside the whole file (JSON) or line (JSON Lines). A
    /// missing or `null` value leaves the key out; a non-string value is stored as JSON text.
    pub fn metadata(mut self, key: &str, path: &str) -> Result<Self> {
        self.metadata.push((key.to_string(), parse(&format!("metadata {key:?}"), path)?));
        Ok(self)
    }

    /// Whether the text must be a JSON string (LangChain's `text_content`).
    pub fn text_content(mut self, on: bool) -> Self {
        self.text_content = on;
        self
    }

    /// A JSON file's records; ids `<path>#<index>`, `source` the path.
    pub fn load_json(&self, path: &Path) -> Result<Vec<Document>> {
        let pieces = self.json_pieces(path, &read_text(path)?)?;
        Ok(into_documents(&path.display().to_string(), pieces, true))
    }

    /// A JSON Lines file's records (blank lines skipped); ids `<path>#<index>`.
    pub fn load_jsonl(&self, path: &Path) -> Result<Vec<Document>> {
        let pieces = self.jsonl_pieces(path, &read_text(path)?)?;
        Ok(into_documents(&path.display().to_string(), pieces, true))
    }

    pub(crate) fn json_pieces(&self, path: &Path, text: &str) -> Result<Vec<Piece>> {
        let root: Value = serde_json::from_str(text).map_err(|e| RagError::Parse {
            path: path.to_path_buf(),
            at: format!("line {}, column {}", e.line(), e.column()),
            message: without_position(&e),
        })?;
        let mut pieces = vec![];
        self.records(&root, &BTreeMap::new(), &mut pieces).map_err(|(at, message)| RagError::Parse { path: path.to_path_buf(), at, message })?;
        Ok(pieces)
    }

    pub(crate) fn jsonl_pieces(&self, path: &Path, text: &str) -> Result<Vec<Piece>> {
        let mut pieces = vec![];
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let n = i + 1;
            let root: Value = serde_json::from_str(line).map_err(|e| RagError::Parse {
                path: path.to_path_buf(),
                at: format!("line {n}, column {}", e.column()),
                message: without_position(&e),
            })?;
            let base = BTreeMap::from([("line".to_string(), n.to_string())]);
            self.records(&root, &base, &mut pieces)
                .map_err(|(at, message)| RagError::Parse { path: path.to_path_buf(), at: format!("line {n}, {at}"), message })?;
        }
        Ok(pieces)
    }

    /// Appends the records of one JSON value; the error is `(concrete path, message)`.
    fn records(&self, root: &Value, base: &BTreeMap<String, String>, out: &mut Vec<Piece>) -> std::result::Result<(), (String, String)> {
        let selected = self.jq_schema.select(root).map_err(|e| (e.at, e.message))?;
        for (at, record) in selected {
            let (at, content) = match &self.content_key {
                Some(key) => one(key, record, &at)?,
                None => (at, record),
            };
            let text = self.text(content).map_err(|message| (at, message))?;
            let mut metadata = base.clone();
            let scope = if self.content_key.is_some() { record } else { root };
            for (key, path) in &self.metadata {
                match one(path, scope, "")?.1 {
                    Value::Null => {}
                    value => {
                        metadata.insert(key.clone(), as_text(value));
                    }
                }
            }
            metadata.insert("seq_num".into(), (out.len() + 1).to_string());
            out.push(Piece { text, metadata });
        }
        Ok(())
    }

    fn text(&self, content: &Value) -> std::result::Result<String, String> {
        match content {
            Value::String(s) => Ok(s.clone()),
            other if self.text_content => Err(format!("expected a string, found {} (set text_content off to keep JSON)", type_name(other))),
            Value::Null => Ok(String::new()),
            other => Ok(other.to_string()),
        }
    }
}

/// The one value `path` selects in `value`, with its concrete path; `prefix` is the concrete
/// path of `value` itself (`.items[2]`, or `""` for a document's root).
fn one<'v>(path: &JsonPath, value: &'v Value, prefix: &str) -> std::result::Result<(String, &'v Value), (String, String)> {
    let mut found = path.select(value).map_err(|e| (join(prefix, &e.at), e.message))?;
    match found.len() {
        1 => {
            let (at, v) = found.remove(0);
            Ok((join(prefix, &at), v))
        }
        n => Err((join(prefix, &path.to_string()), format!("selects {n} values, expected one"))),
    }
}

/// `.items[2]` + `.text` = `.items[2].text`; `.` is the prefix itself.
fn join(prefix: &str, at: &str) -> String {
    match (prefix, at) {
        ("", at) => at.to_string(),
        (prefix, ".") => prefix.to_string(),
        (prefix, at) => format!("{prefix}{at}"),
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn parse(field: &str, path: &str) -> Result<JsonPath> {
    JsonPath::parse(path).map_err(|message| RagError::Config { field: field.to_string(), message: format!("{path:?}: {message}") })
}

/// serde_json's message without its ` at line L column C` (the caller names the place).
fn without_position(e: &serde_json::Error) -> String {
    let message = e.to_string();
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message,
    }
}
