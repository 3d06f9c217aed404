//! Direct Preference Optimization (Rafailov et al. 2023) as trl's `DPOTrainer` computes it.
//!
//! With `π` the policy's and `ρ` the reference's summed completion log-probs,
//! `z = (π_c − π_r) − (ρ_c − ρ_r)` and, per pair:
//!
//! | loss | formula |
//! |---|---|
//! | `sigmoid` | `−(1−ε)·logσ(βz) − ε·logσ(−βz)` (ε: label smoothing) |
//! | `robust` | `(−(1−ε)·logσ(βz) + ε·logσ(−βz)) / (1 − 2ε)` |
//! | `hinge` | `relu(1 − βz)` |
//! | `ipo` | `(z − 1/(2β))²` with log-probs averaged over completion tokens |
//!
//! Rewards are `β(π − ρ)`; the step loss is the mean over pairs.

use std::collections::BTreeMap;

use burn::tensor::activation::{log_sigmoid, relu};
use burn::tensor::{backend::Backend, ElementConversion, Tensor, TensorData};
use llm_core::adapter::set_adapters_enabled;
use llm_core::CausalLm;

use crate::error::{Result, TrainError};
use crate::objective::{MicroLoss, Objective};
use crate::pref::{host, pair_count, sequence_logps, PrefBatch, TokenizedPair};

/// The DPO loss variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DpoLoss {
    /// Bradley-Terry with optional label smoothing (cDPO).
    Sigmoid {
        /// ε in `[0, 0.5)`.
        label_smoothing: f64,
    },
    /// Robust DPO (Chowdhury et al. 2024).
    Robust {
        /// ε in `[0, 0.5)`.
        label_smoothing: f64,
    },
    /// SLiC's hinge.
    Hinge,
    /// IPO (Azar et al. 2023).
    Ipo,
}

impl DpoLoss {
    /// Parses trl's `loss_type` names (`sigmoid`, `robust`, `hinge`, `ipo`).
    pub fn parse(s: &str, label_smoothing: f64) -> Result<Self> {
        match s {
            "sigmoid" => Ok(Self::Sigmoid { label_smoothing }),
            "robust" => Ok(Self::Robust { label_smoothing }),
            "hinge" => Ok(Self::Hinge),
            "ipo" => Ok(Self::Ipo),
            other => Err(TrainError::config("loss_type", format!("`{other}`; expected sigmoid, robust, hinge or ipo"))),
        }
    }
}

/// Where the reference log-probs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceSource {
    /// [`TokenizedPair::reference`], filled up front by [`precompute_reference`].
    Precomputed,
    /// The policy itself with its LoRA adapters switched off (trl's default for a PEFT policy
    /// without a `ref_model`), computed per batch.
    DisabledAdapters,
}

/// DPO settings and the objective the trainer runs.
#[derive(Debug, Clone, Copy)]
pub struct Dpo {
    /// β, the KL strength.
    pub beta: f64,
    /// Loss variant.
    pub loss: DpoLoss,
    /// Reference log-probs.
    pub reference: ReferenceSource,
    /// Padding id.
    pub pad_id: u32,
}

impl Dpo {
    /// Rejects a non-positive β and label smoothing outside `[0, 0.5)`.
    pub fn validate(&self) -> Result<()> {
        if self.beta.is_nan() || self.beta <= 0.0 {
            return Err(TrainError::config("beta", "must be positive"));
        }
        if let DpoLoss::Sigmoid { label_smoothing: e } | DpoLoss::Robust { label_smoothing: e } = self.loss {
            if !(0.0..0.5).contains(&e) {
                return Err(TrainError::config("label_smoothing", format!("{e} is not in [0, 0.5)")));
            }
        }
        Ok(())
    }

    /// Per-pair losses from policy and reference log-probs (`[n]` each; chosen/rejected).
    pub fn pair_losses<B: Backend>(&self, z: Tensor<B, 1>) -> Tensor<B, 1> {
        let beta = self.beta;
        match self.loss {
            DpoLoss::Sigmoid { label_smoothing: e } => {
                log_sigmoid(z.clone() * beta).neg() * (1.0 - e) - log_sigmoid(z.neg() * beta) * e
            }
            DpoLoss::Robust { label_smoothing: e } => {
                (log_sigmoid(z.clone() * beta).neg() * (1.0 - e) + log_sigmoid(z.neg() * beta) * e) / (1.0 - 2.0 * e)
            }
            DpoLoss::Hinge => relu((z * beta).neg() + 1.0),
            DpoLoss::Ipo => (z - 1.0 / (2.0 * beta)).powi_scalar(2),
        }
    }
}

/// Reference log-probs `(chosen, rejected)` of every pair with `reference` (any backend, no
/// gradients), stored into the pairs: trl's `precompute_ref_log_probs`.
pub fn precompute_reference<R: Backend>(reference: &CausalLm<R>, pairs: &mut [TokenizedPair], batch_size: usize, pad_id: u32) -> Result<()> {
    for chunk in pairs.chunks_mut(batch_size.max(1)) {
        let batch = PrefBatch::new(&chunk.iter().collect::<Vec<_>>(), pad_id);
        let logps = host(sequence_logps(reference, &batch)?.sum);
        let n = chunk.len();
        for (i, p) in chunk.iter_mut().enumerate() {
            p.reference = Some((logps[i], logps[n + i]));
        }
    }
    Ok(())
}

impl Objective for Dpo {
    type Example = TokenizedPair;

    fn normalizer(&self, micro_batches: &[Vec<&TokenizedPair>]) -> Result<f64> {
        pair_count(micro_batches)
    }

    fn loss<B: Backend>(&self, model: &CausalLm<B>, pairs: &[&TokenizedPair], normalizer: f64) -> Result<MicroLoss<B>> {
        let batch = PrefBatch::new(pairs, self.pad_id);
        let n = pairs.len();
        let device = model.device();
        let policy = sequence_logps(model, &batch)?;
        let reference: Vec<f64> = match self.reference {
            ReferenceSource::Precomputed => {
                let refs = pairs
                    .iter()
                    .map(|p| p.reference.ok_or_else(|| TrainError::config("reference", "pairs lack precomputed reference log-probs")))
                    .collect::<Result<Vec<_>>>()?;
                refs.iter().map(|r| r.0).chain(refs.iter().map(|r| r.1)).collect()
            }
            ReferenceSource::DisabledAdapters => {
                let mut base = model.clone();
                set_adapters_enabled(&mut base, false);
                // A detached pass: nothing to recompute (and the tape's layers are the policy's).
                base.checkpoint = None;
                host(sequence_logps(&base, &batch)?.sum.detach())
            }
        };
        // IPO compares per-token means.
        let per_token = self.loss == DpoLoss::Ipo;
        let scale: Vec<f64> = policy.lengths.iter().map(|&l| if per_token { 1.0 / l.max(1) as f64 } else { 1.0 }).collect();
        let dtype = policy.sum.dtype();
        let scale_t = Tensor::<B, 1>::from_data(TensorData::new(scale.iter().map(|&x| x as f32).collect::<Vec<_>>(), [2 * n]), (&device, dtype));
        let pi = policy.sum.clone() * scale_t;
        let rho: Vec<f64> = reference.iter().zip(&scale).map(|(r, s)| r * s).collect();
        let rho_t = Tensor::<B, 1>::from_data(TensorData::new(rho.iter().map(|&x| x as f32).collect::<Vec<_>>(), [2 * n]), (&device, dtype));
        let (pi_c, pi_r) = (pi.clone().narrow(0, 0, n), pi.clone().narrow(0, n, n));
        let (rho_c, rho_r) = (rho_t.clone().narrow(0, 0, n), rho_t.narrow(0, n, n));
        let z = (pi_c.clone() - pi_r.clone()) - (rho_c.clone() - rho_r.clone());
        let losses = self.pair_losses(z);
        let loss = losses.sum() / normalizer;

        let w = 1.0 / normalizer;
        let chosen_rewards = host(((pi_c - rho_c) * self.beta).detach());
        let rejected_rewards = host(((pi_r - rho_r) * self.beta).detach());
        let logps = host(policy.sum.detach());
        let mut metrics = BTreeMap::new();
        let mut add = |k: &str, v: f64| {
            metrics.insert(k.to_string(), v);
        };
        add("rewards/chosen", chosen_rewards.iter().sum::<f64>() * w);
        add("rewards/rejected", rejected_rewards.iter().sum::<f64>() * w);
        add("rewards/accuracies", chosen_rewards.iter().zip(&rejected_rewards).filter(|(c, r)| c > r).count() as f64 * w);
        add("rewards/margins", chosen_rewards.iter().zip(&rejected_rewards).map(|(c, r)| c - r).sum::<f64>() * w);
        add("logps/chosen", logps[..n].iter().sum::<f64>() * w);
        add("logps/rejected", logps[n..].iter().sum::<f64>() * w);
        add("logits/chosen", policy.mean_logits.0 * n as f64 * w);
        add("logits/rejected", policy.mean_logits.1 * n as f64 * w);
        let target_tokens = policy.lengths.iter().sum();
        Ok(MicroLoss { loss, tokens: batch.n_tokens(), target_tokens, metrics })
    }
}

/// Per-sequence policy log-probs (chosen..., rejected...) and the loss of a batch, without
/// gradients: what `align --eval-only` prints.
pub fn evaluate_pairs<B: Backend>(dpo: &Dpo, model: &CausalLm<B>, pairs: &[&TokenizedPair]) -> Result<(f64, Vec<f64>, BTreeMap<String, f64>)> {
    let m = dpo.loss(model, pairs, pairs.len() as f64)?;
    let logps = host(sequence_logps(model, &PrefBatch::new(pairs, dpo.pad_id))?.sum);
    Ok((m.loss.into_scalar().elem::<f64>(), logps, m.metrics))
}
