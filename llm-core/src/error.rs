//! The crate-wide error type.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, loading or running a model.
///
/// Variants carry the file, tensor or field at fault so the message alone says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// A file could not be opened, mapped or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A JSON file (config, index) is not valid JSON or does not have the expected shape.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_json::Error,
    },

    /// A config field has a value we do not support or that is invalid.
    #[error("config field `{field}`: {message}")]
    Config {
        /// The field, in `config.json` spelling (e.g. `rope_parameters.rope_type`).
        field: String,
        /// What is wrong and, where useful, what is supported.
        message: String,
    },

    /// A safetensors file is malformed (bad header, offsets past the end, unknown dtype).
    #[error("{path}: corrupt safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser found.
        message: String,
    },

    /// A GGUF file is malformed, truncated or claims more than it holds.
    #[error("{path}: corrupt GGUF file at byte {offset}: {message}")]
    Gguf {
        /// The file.
        path: PathBuf,
        /// Byte offset where reading failed.
        offset: u64,
        /// What was wrong.
        message: String,
    },

    /// A tensor has a storage type we cannot read.
    #[error("{path}: tensor `{tensor}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype as the file names it.
        dtype: String,
    },

    /// The checkpoint's tensors do not match the model the config describes.
    /// Every problem is listed, not just the first.
    #[error("{source_name}: checkpoint does not match the config:{}", format_mismatch(missing, unexpected, mis_shaped))]
    WeightMismatch {
        /// The directory or file the weights came from.
        source_name: String,
        /// Tensors the model needs that the checkpoint lacks.
        missing: Vec<String>,
        /// Tensors in the checkpoint the model does not use.
        unexpected: Vec<String>,
        /// `(name, expected shape, found shape)`.
        mis_shaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    },

    /// A quantized weight's parts are inconsistent (sizes, code widths, group indices).
    #[error("quantized tensor `{tensor}`: {message}")]
    Quant {
        /// The tensor (or layer) at fault.
        tensor: String,
        /// What does not fit.
        message: String,
    },

    /// A tensor given to a model function has the wrong shape.
    #[error("shape mismatch for {what}: expected {expected}, got {got:?}")]
    Shape {
        /// The argument.
        what: String,
        /// What was expected, in words.
        expected: String,
        /// The shape received.
        got: Vec<usize>,
    },

    /// The KV cache has no room for the tokens being appended.
    #[error("KV cache full: {len} positions used of {capacity}, cannot append {extra}")]
    CacheFull {
        /// Positions already stored.
        len: usize,
        /// Preallocated positions.
        capacity: usize,
        /// Positions requested.
        extra: usize,
    },

    /// A tokenizer file is not valid, or encoding/decoding failed.
    #[error("tokenizer {source_name}: {message}")]
    Tokenizer {
        /// The file (or GGUF) the tokenizer came from.
        source_name: String,
        /// What went wrong.
        message: String,
    },

    /// A chat template failed to compile or render (including `raise_exception`).
    #[error("chat template {name}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Template {
        /// The template's file or label.
        name: String,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// The renderer's message.
        message: String,
    },

    /// A prompt does not fit the KV cache the caller allowed (`GenerationConfig::max_context`).
    #[error("prompt of {tokens} tokens does not fit the KV cache of {context} positions (GenerationConfig::max_context)")]
    ContextOverflow {
        /// Prompt length.
        tokens: usize,
        /// The cache's positions.
        context: usize,
    },

    /// A generation constraint (JSON Schema, regex, grammar) does not compile, or the engine
    /// failed while following it.
    #[error("{kind} constraint: {message}")]
    Constraint {
        /// `json_schema`, `regex`, `lark grammar`, `gbnf grammar`...
        kind: String,
        /// The engine's message, naming the construct.
        message: String,
    },

    /// The HTTP server could not start or stopped on an error (bind, runtime).
    #[error("server {what}: {message}")]
    Serve {
        /// What failed (`bind 127.0.0.1:8080`, `runtime`).
        what: String,
        /// Why.
        message: String,
    },

    /// An evaluation task (lm-eval YAML, BIG-bench `task.json`, a dataset row, a red-team or
    /// judge file) is malformed: the file, the line where known, and the field at fault.
    #[error("{path}{}: field `{field}`: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Task {
        /// The task, dataset or case file.
        path: PathBuf,
        /// 1-based line of the field or row, when known.
        line: Option<usize>,
        /// The field (`doc_to_choice`, `metric_list[1].metric`, a dataset column...).
        field: String,
        /// What is wrong.
        message: String,
    },

    /// A backend was requested that this build does not include, or has no device.
    #[error("backend `{name}` is not available: {message}")]
    Backend {
        /// The backend's name.
        name: String,
        /// Why (e.g. which Cargo feature enables it).
        message: String,
    },
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, LlmError>;

fn format_mismatch(
    missing: &[String],
    unexpected: &[String],
    mis_shaped: &[(String, Vec<usize>, Vec<usize>)],
) -> String {
    let mut out = String::new();
    if !missing.is_empty() {
        out += &format!("\n  missing ({}): {}", missing.len(), missing.join(", "));
    }
    if !unexpected.is_empty() {
        out += &format!("\n  unexpected ({}): {}", unexpected.len(), unexpected.join(", "));
    }
    for (name, want, got) in mis_shaped {
        out += &format!("\n  wrong shape: {name}: expected {want:?}, found {got:?}");
    }
    out
}

impl LlmError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config { field: field.into(), message: message.into() }
    }

    /// A [`LlmError::Task`] error.
    pub fn task(path: impl Into<PathBuf>, line: Option<usize>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Task { path: path.into(), line, field: field.into(), message: message.into() }
    }
}
