//! What a training step minimises. The [`crate::trainer::Trainer`] owns the loop (accumulation,
//! clipping, schedule, checkpoints); an [`Objective`] turns a micro-batch of its examples into a
//! loss: SFT's token-mean NLL here, DPO and ORPO in [`crate::dpo`] and [`crate::orpo`].

use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, Tensor};
use llm_core::CausalLm;

use crate::error::{Result, TrainError};
use crate::loss::nll_sum_hidden;
use crate::sft::{SftBatch, TokenizedExample};

/// One micro-batch's share of a step.
#[derive(Debug, Clone)]
pub struct MicroLoss<B: Backend> {
    /// `[1]`, already divided by the step's normalizer: the micro-batch losses of a step add up
    /// to the step loss, and so do their gradients.
    pub loss: Tensor<B, 1>,
    /// Non-padding tokens run through the model.
    pub tokens: usize,
    /// Tokens that carry loss.
    pub target_tokens: usize,
    /// Extra metrics, each already this micro-batch's contribution to the step mean.
    pub metrics: BTreeMap<String, f64>,
}

/// A training objective over examples of type [`Objective::Example`]. `Sync`: a step's
/// passes run on a thread of the CPU pool ([`llm_core::model::on_pool`]).
pub trait Objective: Sync {
    /// What the dataset holds (shared with the thread pool a step runs on).
    type Example: Sync;

    /// What the step's micro-batch losses are divided by (trained tokens for SFT, pairs for
    /// preference losses); an error when the step has nothing to learn from.
    fn normalizer(&self, micro_batches: &[Vec<&Self::Example>]) -> Result<f64>;

    /// The loss of one micro-batch on any backend (autodiff to train, plain to evaluate).
    fn loss<B: Backend>(&self, model: &CausalLm<B>, batch: &[&Self::Example], normalizer: f64) -> Result<MicroLoss<B>>;
}

/// Supervised fine-tuning on tokenized examples: the mean NLL over every trained token of the
/// step (trl's loss), micro-batches padded or packed.
#[derive(Debug, Clone, Copy)]
pub struct Sft {
    /// Padding id.
    pub pad_id: u32,
    /// Pack each micro-batch padding-free into rows of at most this many tokens.
    pub packing: Option<usize>,
}

impl Sft {
    /// The model batch for `examples`.
    pub fn batch(&self, examples: &[&TokenizedExample]) -> SftBatch {
        match self.packing {
            Some(max_len) => SftBatch::packed(examples, max_len, self.pad_id),
            None => SftBatch::padded(examples, self.pad_id),
        }
    }
}

impl Objective for Sft {
    type Example = TokenizedExample;

    fn normalizer(&self, micro_batches: &[Vec<&TokenizedExample>]) -> Result<f64> {
        let n: usize = micro_batches.iter().flatten().map(|e| e.n_targets()).sum();
        trained_tokens(n)
    }

    fn loss<B: Backend>(&self, model: &CausalLm<B>, batch: &[&TokenizedExample], normalizer: f64) -> Result<MicroLoss<B>> {
        SftBatches.loss(model, &[&self.batch(batch)], normalizer)
    }
}

/// SFT on batches already built (padded or packed): each example is one model batch.
#[derive(Debug, Clone, Copy)]
pub struct SftBatches;

impl Objective for SftBatches {
    type Example = SftBatch;

    fn normalizer(&self, micro_batches: &[Vec<&SftBatch>]) -> Result<f64> {
        trained_tokens(micro_batches.iter().flatten().map(|b| b.n_targets()).sum())
    }

    fn loss<B: Backend>(&self, model: &CausalLm<B>, batch: &[&SftBatch], normalizer: f64) -> Result<MicroLoss<B>> {
        let device = model.device();
        let mut total: Option<Tensor<B, 1>> = None;
        let (mut tokens, mut target_tokens) = (0, 0);
        for b in batch {
            let hidden = model.forward_hidden(b.model_input::<B>(&device), None)?;
            let (sum, n) = nll_sum_hidden(model, hidden, &b.labels);
            total = Some(match total {
                Some(t) => t + sum,
                None => sum,
            });
            tokens += b.n_tokens();
            target_tokens += n;
        }
        let loss = total.unwrap_or_else(|| Tensor::zeros([1], &device)) / normalizer;
        Ok(MicroLoss { loss, tokens, target_tokens, metrics: BTreeMap::new() })
    }
}

fn trained_tokens(n: usize) -> Result<f64> {
    if n == 0 {
        return Err(TrainError::config("batch", "no trained tokens in this step (every label is masked)"));
    }
    Ok(n as f64)
}
