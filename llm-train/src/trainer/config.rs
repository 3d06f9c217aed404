//! The trainer's settings (transformers' `TrainingArguments` names where they exist).

use std::path::PathBuf;

use crate::error::{Result, TrainError};
use crate::optim::{AdamWConfig, Schedule};

/// Training settings (transformers' `TrainingArguments` names where they exist).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// AdamW settings; `lr` is the peak rate.
    pub optimizer: AdamWConfig,
    /// Decay after warmup.
    pub schedule: Schedule,
    /// Linear warmup steps.
    pub warmup_steps: u64,
    /// Passes over the training set (ignored when `max_steps` is set).
    pub epochs: usize,
    /// Stop after this many optimizer steps.
    pub max_steps: Option<u64>,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Clip the global gradient norm to this (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
    /// Pack each micro-batch padding-free into rows of at most this many tokens.
    pub packing: Option<usize>,
    /// Evaluate every this many steps (and at the end) when an eval set is given.
    pub eval_every: Option<u64>,
    /// Write a checkpoint every this many steps (needs `output_dir`).
    pub save_every: Option<u64>,
    /// Where checkpoints (`checkpoint-<step>/`) and `metrics.jsonl` go.
    pub output_dir: Option<PathBuf>,
    /// Seeds the shuffle and dropout.
    pub seed: u64,
    /// Keep only each decoder layer's input in the forward pass and recompute the layer in the
    /// backward pass (torch's gradient checkpointing): less memory, one more forward pass.
    pub gradient_checkpointing: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: AdamWConfig::default(),
            schedule: Schedule::Linear,
            warmup_steps: 0,
            epochs: 1,
            max_steps: None,
            batch_size: 4,
            grad_accum: 1,
            max_grad_norm: Some(1.0),
            packing: None,
            eval_every: None,
            save_every: None,
            output_dir: None,
            seed: 42,
            gradient_checkpointing: false,
        }
    }
}

impl TrainConfig {
    /// Checks the settings before any work.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        if self.batch_size == 0 || self.grad_accum == 0 {
            return Err(TrainError::config("batch_size/grad_accum", "must be at least 1"));
        }
        if self.max_steps.is_none() && self.epochs == 0 {
            return Err(TrainError::config("epochs", "0 epochs and no max_steps: nothing to train"));
        }
        if self.max_grad_norm.is_some_and(|n| n.is_nan() || n <= 0.0) {
            return Err(TrainError::config("max_grad_norm", "must be positive"));
        }
        if self.packing == Some(0) {
            return Err(TrainError::config("packing", "row length must be positive"));
        }
        if self.save_every.is_some() && self.output_dir.is_none() {
            return Err(TrainError::config("save_every", "checkpoints need output_dir"));
        }
        Ok(())
    }
}
