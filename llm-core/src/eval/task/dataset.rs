//! Local datasets as Hugging Face `datasets.load_dataset("json", data_files=...)` reads them:
//! JSON Lines, or one JSON array of objects. Each row remembers its line for error messages.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{LlmError, Result};

/// A row of a dataset (lm-eval's `doc`).
pub type Doc = Map<String, Value>;

/// One split's rows.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// The rows, in file order (files in the order given).
    pub docs: Vec<Doc>,
    /// Where each row came from: file and 1-based line (JSON Lines) or array position.
    pub origin: Vec<(PathBuf, usize)>,
}

impl Split {
    /// Reads and concatenates `files`.
    pub fn read(files: &[PathBuf]) -> Result<Self> {
        let mut split = Split::default();
        for f in files {
            let text = std::fs::read_to_string(f).map_err(|e| LlmError::io(f, e))?;
            for (line, doc) in parse_rows(f, &text)? {
                split.docs.push(doc);
                split.origin.push((f.clone(), line));
            }
        }
        Ok(split)
    }

    /// The column names (union over rows, first-seen order): lm-eval's `features`, against
    /// which a `doc_to_*` string is a column name or else a template.
    pub fn columns(&self) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for d in &self.docs {
            for k in d.keys() {
                if !out.contains(k) {
                    out.push(k.clone());
                }
            }
        }
        out
    }

    /// A typed error about row `i`'s `field`.
    pub fn row_error(&self, i: usize, field: &str, message: impl Into<String>) -> LlmError {
        let (path, line) = self.origin.get(i).cloned().unwrap_or_default();
        LlmError::task(path, Some(line), field, message)
    }
}

/// `(line, row)` pairs of a JSON Lines file or a JSON array.
fn parse_rows(path: &Path, text: &str) -> Result<Vec<(usize, Doc)>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let rows: Vec<Value> = serde_json::from_str(text).map_err(|e| LlmError::task(path, Some(e.line()), "rows", e.to_string()))?;
        // Array rows have no line of their own without a span-aware parser: the row number
        // (1-based) stands in, and the message says so.
        return rows.into_iter().enumerate().map(|(i, v)| object(path, i + 1, v)).collect();
    }
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| LlmError::task(path, Some(i + 1), "row", format!("not JSON: {e}")))?;
        out.push(object(path, i + 1, v)?);
    }
    Ok(out)
}

fn object(path: &Path, line: usize, v: Value) -> Result<(usize, Doc)> {
    match v {
        Value::Object(m) => Ok((line, m)),
        other => Err(LlmError::task(path, Some(line), "row", format!("a row must be a JSON object, got {other}"))),
    }
}
