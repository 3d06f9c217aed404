//! ORPO (Hong et al. 2024) as trl's `ORPOTrainer` computes it: one stage, no reference model.
//!
//! `loss = NLL(chosen) − λ · mean(logσ(log_odds))`, where the NLL covers every non-padding
//! token of the chosen sequences, prompt included (mean over tokens), and
//! `log_odds = (ℓ_c − ℓ_r) − (log(1 − e^{ℓ_c}) − log(1 − e^{ℓ_r}))` with `ℓ` the *mean*
//! per-token log-prob of each completion.

use std::collections::BTreeMap;

use burn::tensor::activation::log_sigmoid;
use burn::tensor::{backend::Backend, ElementConversion, Tensor};
use llm_core::CausalLm;

use crate::error::Result;
use crate::objective::{MicroLoss, Objective};
use crate::pref::{host, pair_count, sequence_logps, PrefBatch, TokenizedPair};

/// ORPO settings and the objective the trainer runs.
#[derive(Debug, Clone, Copy)]
pub struct Orpo {
    /// λ (trl's `beta`).
    pub lambda: f64,
    /// Padding id.
    pub pad_id: u32,
}

impl Objective for Orpo {
    type Example = TokenizedPair;

    fn normalizer(&self, micro_batches: &[Vec<&TokenizedPair>]) -> Result<f64> {
        pair_count(micro_batches)
    }

    /// The micro-batch's ORPO loss (its NLL a mean over its own chosen tokens, as trl), weighted
    /// by its share of the step's pairs.
    fn loss<B: Backend>(&self, model: &CausalLm<B>, pairs: &[&TokenizedPair], normalizer: f64) -> Result<MicroLoss<B>> {
        let batch = PrefBatch::new(pairs, self.pad_id);
        let n = pairs.len();
        let device = model.device();
        let s = sequence_logps(model, &batch)?;
        let lengths: Vec<f32> = s.lengths.iter().map(|&l| l.max(1) as f32).collect();
        let lengths = Tensor::<B, 1>::from_data(burn::tensor::TensorData::new(lengths, [2 * n]), (&device, s.sum.dtype()));
        // Mean completion log-probs (trl computes the odds in the model's float type too).
        let mean = s.sum.clone() / lengths;
        let (lc, lr) = (mean.clone().narrow(0, 0, n), mean.clone().narrow(0, n, n));
        let log1m = |l: Tensor<B, 1>| l.exp().neg().log1p();
        let log_odds = (lc.clone() - lr.clone()) - (log1m(lc.clone()) - log1m(lr.clone()));
        let ratio = log_sigmoid(log_odds.clone());
        let nll = s.chosen_nll_sum.clone() / s.chosen_tokens.max(1) as f64;
        let share = n as f64 / normalizer;
        let loss = (nll - ratio.clone().mean() * self.lambda) * share;

        let mut metrics = BTreeMap::new();
        let means = host(mean.detach());
        let odds = host(log_odds.detach());
        let ratios = host(ratio.detach());
        let w = 1.0 / normalizer;
        let (rc, rr): (Vec<f64>, Vec<f64>) = (means[..n].iter().map(|x| x * self.lambda).collect(), means[n..].iter().map(|x| x * self.lambda).collect());
        let mut add = |k: &str, v: f64| {
            metrics.insert(k.to_string(), v);
        };
        add("rewards/chosen", rc.iter().sum::<f64>() * w);
        add("rewards/rejected", rr.iter().sum::<f64>() * w);
        add("rewards/accuracies", rc.iter().zip(&rr).filter(|(c, r)| c > r).count() as f64 * w);
        add("rewards/margins", rc.iter().zip(&rr).map(|(c, r)| c - r).sum::<f64>() * w);
        add("logps/chosen", means[..n].iter().sum::<f64>() * w);
        add("logps/rejected", means[n..].iter().sum::<f64>() * w);
        // Mean logit over completion tokens, as trl's DPO logs it (trl's ORPO averages every
        // position of the padded rows, padding included, which depends on the padding).
        add("logits/chosen", s.mean_logits.0 * share);
        add("logits/rejected", s.mean_logits.1 * share);
        add("nll_loss", s.chosen_nll_sum.detach().into_scalar().elem::<f64>() / s.chosen_tokens.max(1) as f64 * share);
        add("log_odds_ratio", ratios.iter().sum::<f64>() * w);
        add("log_odds_chosen", odds.iter().sum::<f64>() * w);
        Ok(MicroLoss { loss, tokens: batch.n_tokens(), target_tokens: s.chosen_tokens, metrics })
    }
}

/// Per-sequence policy log-probs (chosen..., rejected...), the loss and the metrics of a batch,
/// without gradients: what `align --method orpo --eval-only` prints. ORPO has no reference
/// model, so the pairs need no precomputed reference log-probs.
pub fn evaluate_pairs<B: Backend>(orpo: &Orpo, model: &CausalLm<B>, pairs: &[&TokenizedPair]) -> Result<(f64, Vec<f64>, BTreeMap<String, f64>)> {
    let m = orpo.loss(model, pairs, pairs.len() as f64)?;
    let logps = host(sequence_logps(model, &PrefBatch::new(pairs, orpo.pad_id))?.sum);
    Ok((m.loss.into_scalar().elem::<f64>(), logps, m.metrics))
}
