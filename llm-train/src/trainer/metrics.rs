//! What training reports: per-step metrics, log records and the JSONL metrics file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use serde_json::json;

use super::Trainer;
use crate::error::{Result, TrainError};
use crate::params::Gradients;

/// What one optimizer step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepMetrics {
    /// Optimizer step, 1-based.
    pub step: u64,
    /// Fractional epoch after the step.
    pub epoch: f64,
    /// Token-mean loss of the step's examples (before the update).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Non-padding tokens processed.
    pub tokens: usize,
    /// Trained target tokens.
    pub target_tokens: usize,
    /// Wall time of the step.
    pub seconds: f64,
    /// The objective's own metrics (DPO rewards, ORPO log-odds), means over the step.
    pub metrics: BTreeMap<String, f64>,
}

/// Loss, gradients and metrics of one step before the update.
#[derive(Debug, Clone)]
pub struct StepOutput<B: AutodiffBackend> {
    /// The step loss.
    pub loss: f64,
    /// Gradients by parameter name, summed over micro-batches.
    pub grads: Gradients<B::InnerBackend>,
    /// Non-padding tokens.
    pub tokens: usize,
    /// Tokens carrying loss.
    pub target_tokens: usize,
    /// The objective's metrics (step means).
    pub metrics: BTreeMap<String, f64>,
}

/// A log record: a training step, an evaluation, or a checkpoint written.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    /// After every optimizer step.
    Step(StepMetrics),
    /// After an evaluation.
    Eval {
        /// Step evaluated at.
        step: u64,
        /// The objective's loss over the eval set.
        eval_loss: f64,
        /// The objective's metrics over the eval set.
        metrics: BTreeMap<String, f64>,
    },
    /// After a checkpoint is written.
    Checkpoint {
        /// Step saved.
        step: u64,
        /// Its directory.
        dir: PathBuf,
    },
}

/// The result of [`Trainer::fit`].
#[derive(Debug, Clone, Default)]
pub struct TrainReport {
    /// Every step's metrics, in order (only the steps run by this call).
    pub steps: Vec<StepMetrics>,
    /// `(step, eval_loss)` of every evaluation.
    pub evals: Vec<(u64, f64)>,
    /// Checkpoints written.
    pub checkpoints: Vec<PathBuf>,
    /// Tokens per second over the run.
    pub tokens_per_second: f64,
    /// Peak resident memory of the process during this call (Linux; see [`super::memory`]).
    pub peak_rss_bytes: Option<u64>,
}

impl<B: AutodiffBackend> Trainer<B> {
    pub(super) fn metrics_file(&self) -> Result<Option<std::fs::File>> {
        let Some(dir) = self.config.output_dir.as_ref().filter(|_| self.rank().0 == 0) else { return Ok(None) };
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let path = dir.join("metrics.jsonl");
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(|e| TrainError::io(&path, e))?;
        Ok(Some(file))
    }
}

pub(super) fn log(file: &mut Option<std::fs::File>, event: &TrainEvent) -> Result<()> {
    let Some(f) = file else { return Ok(()) };
    let v = match event {
        TrainEvent::Step(m) => {
            let mut v = json!({
                "step": m.step, "epoch": m.epoch, "loss": m.loss, "grad_norm": m.grad_norm, "learning_rate": m.lr,
                "tokens": m.tokens, "target_tokens": m.target_tokens, "seconds": m.seconds,
                "tokens_per_second": m.tokens as f64 / m.seconds.max(1e-9),
            });
            for (k, x) in &m.metrics {
                v[k] = json!(x);
            }
            v
        }
        TrainEvent::Eval { step, eval_loss, metrics } => {
            let mut v = json!({"step": step, "eval_loss": eval_loss});
            for (k, x) in metrics {
                v[format!("eval_{k}")] = json!(x);
            }
            v
        }
        TrainEvent::Checkpoint { step, dir } => json!({"step": step, "checkpoint": dir.display().to_string()}),
    };
    writeln!(f, "{v}").map_err(|e| TrainError::io("metrics.jsonl", e))
}
