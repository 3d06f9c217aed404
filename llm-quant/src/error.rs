//! The crate's one error type.

use std::path::PathBuf;

/// Everything quantizing a model or writing its files can fail with.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// A setting of a quantization config is outside what the method supports.
    #[error("invalid quantization setting `{field}`: {message}")]
    Config {
        /// The config field (`bits`, `group_size`, `damp_percent`, ...).
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A tensor handed to an algorithm has the wrong size or shape.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// Which tensor.
        what: String,
        /// The expected shape or length.
        expected: String,
        /// What was given.
        got: String,
    },
    /// The calibration data cannot drive the algorithm (too short, empty, non-finite).
    #[error("calibration data: {0}")]
    Calibration(String),
    /// The Hessian stayed singular even at the largest damping tried.
    #[error("layer {layer}: Hessian is not positive definite even with damp_percent {damp}")]
    NotPositiveDefinite {
        /// The layer being quantized.
        layer: String,
        /// The last damping tried.
        damp: f64,
    },
    /// A weight or activation holds NaN or infinity.
    #[error("{what} holds a non-finite value")]
    NonFinite {
        /// Which tensor.
        what: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Serialising a checkpoint failed.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An error from the runtime crate (loading, running the model).
    #[error(transparent)]
    Core(#[from] llm_core::LlmError),
}

impl QuantError {
    /// A [`QuantError::Config`] for `field`.
    pub fn config(field: &str, message: impl Into<String>) -> Self {
        Self::Config { field: field.to_string(), message: message.into() }
    }
}

/// `Result` with [`QuantError`].
pub type Result<T, E = QuantError> = std::result::Result<T, E>;
