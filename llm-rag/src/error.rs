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
    /// A vector store file that is not one (bad magic, checksum mismatch, short vectors).
    #[error("{path}: not a valid store: {message}")]
    CorruptStore {
        /// The store file.
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
    /// A document file we could not parse (HTML, JSON, JSONL); names where in the file.
    #[error("{path}: {at}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where: `line 3, column 7`, or a JSON path such as `.items[2].text`.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// A PDF we cannot take text from (corrupt, encrypted, no text layer, the parser panicked).
    #[error("{path}: {problem}")]
    Pdf {
        /// The file.
        path: PathBuf,
        /// Why.
        problem: crate::load::PdfProblem,
    },
    /// A file over a loader's size limit.
    #[error("{path}: {bytes} bytes is over the limit of {limit}")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// A file type no loader reads.
    #[error("{path}: no loader for extension {extension:?}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Its extension, lower-cased (`""` when it has none).
        extension: String,
    },
    /// A text file (by its extension) holding binary data.
    #[error("{path}: binary data (a NUL byte at offset {offset}) in a text file")]
    Binary {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first NUL.
        offset: usize,
    },
    /// A vector database server could not be reached, refused a request, or answered with
    /// something we cannot read; names the server and the operation.
    #[error("{url}: {operation}: {message}")]
    Server {
        /// The server's base URL.
        url: String,
        /// What we asked (`upsert into collection docs`, `query`...).
        operation: String,
        /// The server's own error (`InvalidArgumentError: ...`) or the transport failure.
        message: String,
    },
    /// A red-team case file entry we cannot use (a missing or empty field, an unknown channel,
    /// a duplicate id); names the file, the case (from 0) and the field.
    #[error("{path}: case {index}: {field}: {message}")]
    Case {
        /// The case file.
        path: PathBuf,
        /// The case's position in the file's array, from 0.
        index: usize,
        /// The field (`canary`, `tool.result`...).
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
