//! The one error type of `llm-rag`.

use std::path::PathBuf;

/// Everything that can go wrong loading documents, embedding, indexing or answering.
#[derive(Debug, thiserror::Error)]
pub enum RagError {
    /// From the model runtime (weights, tokenizers, generation).
    #[error(transparent)]
    Core(#[from] llm_core::LlmError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A model directory or file we cannot use; names the file and the field.
    #[error("{path}: {message}")]
    Model {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An invalid setting.
    #[error("{field}: {message}")]
    Config {
        /// The setting.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Tokenization failed.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// `tokenizer.json`.
        path: PathBuf,
        /// The tokenizers crate's message.
        message: String,
    },
}

impl RagError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Model { path: path.into(), message: message.into() }
    }
}

/// `Result` with [`RagError`].
pub type Result<T> = std::result::Result<T, RagError>;
