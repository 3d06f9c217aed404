//! The causal-LM loss: next-token negative log-likelihood over the trained positions.

use burn::tensor::activation::log_softmax;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

use crate::sft::IGNORE;

/// Scored positions of `labels` (`[rows][len]`, unshifted): flat indices `row·len + t` of the
/// logits and the target `labels[row][t + 1]` of each.
pub fn scored_positions(labels: &[Vec<i64>]) -> (Vec<i64>, Vec<i64>) {
    let (mut idx, mut tgt) = (vec![], vec![]);
    for (r, row) in labels.iter().enumerate() {
        for t in 0..row.len().saturating_sub(1) {
            if row[t + 1] != IGNORE {
                idx.push((r * row.len() + t) as i64);
                tgt.push(row[t + 1]);
            }
        }
    }
    (idx, tgt)
}

/// Per-target negative log-likelihood, in the order of [`scored_positions`].
///
/// logits: `[rows, len, vocab]`, labels `[rows][len]` -> `[n_targets]` (empty when nothing is
/// scored). Only the scored rows of the logits go through the log-softmax.
pub fn token_nll<B: Backend>(logits: Tensor<B, 3>, labels: &[Vec<i64>]) -> Option<Tensor<B, 1>> {
    let [rows, len, vocab] = logits.dims();
    let (idx, tgt) = scored_positions(labels);
    if idx.is_empty() {
        return None;
    }
    let device = logits.device();
    let n = idx.len();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [n]), &device);
    let tgt = Tensor::<B, 2, Int>::from_data(TensorData::new(tgt, [n, 1]), &device);
    let picked = logits.reshape([rows * len, vocab]).select(0, idx);
    let logp = log_softmax(picked, 1).gather(1, tgt);
    Some(logp.reshape([n]).neg())
}

/// Per-target NLL from the final hidden state: only the scored rows go through the LM head
/// (on SmolLM2 the 49152-wide head is a fifth of the forward pass; prompts are masked).
///
/// hidden: `[rows, len, d_model]`, labels `[rows][len]` -> `([1] sum, n_targets)`.
pub fn nll_sum_hidden<B: Backend>(model: &llm_core::CausalLm<B>, hidden: Tensor<B, 3>, labels: &[Vec<i64>]) -> (Tensor<B, 1>, usize) {
    let [rows, len, d] = hidden.dims();
    let device = hidden.device();
    let (idx, tgt) = scored_positions(labels);
    if idx.is_empty() {
        return (Tensor::zeros([1], &device), 0);
    }
    let n = idx.len();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [n]), &device);
    let tgt = Tensor::<B, 2, Int>::from_data(TensorData::new(tgt, [n, 1]), &device);
    let logits = model.logits(hidden.reshape([rows * len, d]).select(0, idx));
    (log_softmax(logits, 1).gather(1, tgt).sum().neg(), n)
}

/// Sum of the next-token NLL over the trained positions (`[1]`) and their count. Divide by the
/// count of the whole (accumulated) batch for trl's loss: the mean over every trained token,
/// not a mean of per-sequence means.
pub fn nll_sum<B: Backend>(logits: Tensor<B, 3>, labels: &[Vec<i64>]) -> (Tensor<B, 1>, usize) {
    let device = logits.device();
    match token_nll(logits, labels) {
        Some(nll) => {
            let n = nll.dims()[0];
            (nll.sum(), n)
        }
        None => (Tensor::zeros([1], &device), 0),
    }
}
