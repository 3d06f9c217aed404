//! AdamW exactly as `torch.optim.AdamW` (decoupled weight decay, bias-corrected moments),
//! global-norm clipping as `torch.nn.utils.clip_grad_norm_`, and the learning-rate schedules of
//! transformers (`constant`, `linear`, `cosine`, each with linear warmup).

use std::collections::BTreeMap;

use burn::tensor::{backend::Backend, Tensor};

use crate::error::{Result, TrainError};

/// AdamW hyper-parameters; the defaults are PyTorch's (weight decay 0.01).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// `(beta1, beta2)`.
    pub betas: (f64, f64),
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { lr: 1e-3, betas: (0.9, 0.999), eps: 1e-8, weight_decay: 0.01 }
    }
}

impl AdamWConfig {
    /// Rejects values torch rejects.
    pub fn validate(&self) -> Result<()> {
        let (b1, b2) = self.betas;
        if self.lr.is_nan() || self.lr < 0.0 {
            return Err(TrainError::config("lr", format!("{} is negative", self.lr)));
        }
        if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
            return Err(TrainError::config("betas", format!("({b1}, {b2}) must lie in [0, 1)")));
        }
        if [self.eps, self.weight_decay].iter().any(|x| x.is_nan() || *x < 0.0) {
            return Err(TrainError::config("eps/weight_decay", "must be non-negative"));
        }
        Ok(())
    }
}

/// First and second moments of one parameter (flattened).
#[derive(Debug, Clone)]
pub struct Moments<B: Backend> {
    /// `exp_avg`, `[numel]`.
    pub exp_avg: Tensor<B, 1>,
    /// `exp_avg_sq`, `[numel]`.
    pub exp_avg_sq: Tensor<B, 1>,
}

/// AdamW state: the step count and the moments per parameter name.
#[derive(Debug, Clone)]
pub struct AdamW<B: Backend> {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Optimizer steps taken.
    pub step: u64,
    /// Moments by parameter name.
    pub state: BTreeMap<String, Moments<B>>,
}

impl<B: Backend> AdamW<B> {
    /// A fresh optimizer.
    pub fn new(config: AdamWConfig) -> Self {
        Self { config, step: 0, state: BTreeMap::new() }
    }

    /// Starts a step (increments the count shared by every parameter).
    pub fn begin_step(&mut self) {
        self.step += 1;
    }

    /// The updated value of parameter `name` (`param`, `grad`: `[numel]`) at learning rate `lr`,
    /// following torch's single-tensor AdamW line by line:
    /// `p *= 1 - lr·wd; m.lerp_(g, 1 - b1); v = b2·v + (1 - b2)·g²;
    /// p -= lr/(1 - b1^t) · m / (sqrt(v)/sqrt(1 - b2^t) + eps)`.
    pub fn update(&mut self, name: &str, param: Tensor<B, 1>, grad: Tensor<B, 1>, lr: f64) -> Tensor<B, 1> {
        let AdamWConfig { betas: (b1, b2), eps, weight_decay, .. } = self.config;
        let t = self.step.max(1) as i32;
        let moments = self.state.entry(name.to_string()).or_insert_with(|| Moments {
            exp_avg: grad.zeros_like(),
            exp_avg_sq: grad.zeros_like(),
        });
        let param = param * (1.0 - lr * weight_decay);
        // torch's lerp: m + (1 - b1)·(g - m)
        let m = moments.exp_avg.clone() + (grad.clone() - moments.exp_avg.clone()) * (1.0 - b1);
        let v = moments.exp_avg_sq.clone() * b2 + grad.clone() * grad * (1.0 - b2);
        let bias_correction1 = 1.0 - b1.powi(t);
        let bias_correction2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let step_size = lr / bias_correction1;
        let denom = v.clone().sqrt() / bias_correction2_sqrt + eps;
        let new = param - m.clone() / denom * step_size;
        moments.exp_avg = m;
        moments.exp_avg_sq = v;
        new
    }
}

/// `min(1, max_norm / (total + 1e-6))`: the factor `clip_grad_norm_` multiplies every gradient by.
pub fn clip_coefficient(total_norm: f64, max_norm: f64) -> f64 {
    (max_norm / (total_norm + 1e-6)).min(1.0)
}

/// Learning-rate schedule after warmup (transformers' `lr_scheduler_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// Constant after warmup.
    Constant,
    /// Linear decay to 0 at the last step.
    #[default]
    Linear,
    /// Half-cosine decay to 0 at the last step.
    Cosine,
}

impl Schedule {
    /// The factor on the peak rate for optimizer step `step` (0-based: the first step uses
    /// `step = 0`), as transformers' `get_*_schedule_with_warmup` lambdas.
    pub fn factor(self, step: u64, warmup: u64, total: u64) -> f64 {
        if step < warmup {
            return step as f64 / warmup.max(1) as f64;
        }
        let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
        match self {
            Self::Constant => 1.0,
            Self::Linear => ((total as f64 - step as f64) / (total.saturating_sub(warmup)).max(1) as f64).max(0.0),
            Self::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
        }
    }

    /// Parses `constant`, `linear` or `cosine`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "constant" => Ok(Self::Constant),
            "linear" => Ok(Self::Linear),
            "cosine" => Ok(Self::Cosine),
            other => Err(TrainError::config("schedule", format!("`{other}`; expected constant, linear or cosine"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_transformers() {
        // warmup 2 of 10 steps
        assert_eq!(Schedule::Linear.factor(0, 2, 10), 0.0);
        assert_eq!(Schedule::Linear.factor(1, 2, 10), 0.5);
        assert_eq!(Schedule::Linear.factor(2, 2, 10), 1.0);
        assert_eq!(Schedule::Linear.factor(6, 2, 10), 0.5);
        assert!((Schedule::Cosine.factor(6, 2, 10) - 0.5).abs() < 1e-12);
        assert_eq!(Schedule::Constant.factor(9, 2, 10), 1.0);
    }
}
