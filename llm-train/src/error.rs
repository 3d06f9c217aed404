//! The one error type of `llm-train`.

use std::path::PathBuf;

/// Everything that can go wrong while preparing data, attaching adapters or training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// From the model runtime (loading, tokenizing, templates).
    #[error(transparent)]
    Core(#[from] llm_core::LlmError),
    /// From quantization (QLoRA's NF4 base, saving merged checkpoints).
    #[error(transparent)]
    Quant(#[from] llm_quant::QuantError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A dataset record of the wrong shape.
    #[error("{path}:{line}: {message}")]
    Data {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A LoRA target pattern that matches no module of the model.
    #[error("target modules {pattern} match no linear layer; the model has: {}", modules.join(", "))]
    NoTargetMatch {
        /// The pattern as given.
        pattern: String,
        /// The model's linear layers.
        modules: Vec<String>,
    },
    /// An invalid setting.
    #[error("{field}: {message}")]
    Config {
        /// The setting.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The loss or the gradients stopped being finite.
    #[error("step {step}: {what} is {value} (not finite); training stopped, the last good checkpoint is {last_checkpoint:?}")]
    NonFinite {
        /// The optimizer step (1-based) that produced it.
        step: u64,
        /// `loss` or `gradient norm`.
        what: String,
        /// The value.
        value: f64,
        /// The newest checkpoint written before it, if any.
        last_checkpoint: Option<PathBuf>,
    },
    /// A data-parallel exchange failed (a peer gone, timed out, or sent the wrong length).
    #[error("data-parallel rank {rank}: {message}")]
    Collective {
        /// The rank the failure concerns.
        rank: usize,
        /// What happened.
        message: String,
    },
    /// A checkpoint or adapter that cannot be used.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config { field: field.into(), message: message.into() }
    }
}

/// `Result` with [`TrainError`].
pub type Result<T> = std::result::Result<T, TrainError>;
