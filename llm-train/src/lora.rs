//! Attaching trainable LoRA adapters to a model, as peft's `get_peft_model` does.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use llm_core::adapter::LoraConfig;
use llm_core::nn::LoraAdapter;
use llm_core::CausalLm;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Result, TrainError};
use crate::params::{is_lora, set_trainable};

/// Which linear layers get an adapter (peft's `target_modules`).
#[derive(Debug, Clone, PartialEq)]
pub enum TargetModules {
    /// Module names matched as dotted suffixes (`q_proj` matches `model.layers.3.self_attn.q_proj`).
    Names(Vec<String>),
    /// Every linear layer except the output head (peft's `all-linear`).
    AllLinear,
    /// A regular expression that must match the whole module name (peft's string form).
    Regex(String),
}

impl TargetModules {
    /// Parses the command-line / peft spelling: `all-linear`, a comma list of names, or
    /// `re:<regex>` for a regular expression.
    pub fn parse(s: &str) -> Self {
        if s == "all-linear" {
            Self::AllLinear
        } else if let Some(re) = s.strip_prefix("re:") {
            Self::Regex(re.to_string())
        } else {
            Self::Names(s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        }
    }

    /// The modules of `all` this selects; an error listing `all` when none matches.
    pub fn select(&self, all: &[String]) -> Result<Vec<String>> {
        let chosen: Vec<String> = match self {
            Self::AllLinear => all.iter().filter(|n| *n != "lm_head").cloned().collect(),
            Self::Names(names) => all
                .iter()
                .filter(|m| names.iter().any(|n| *m == n || m.ends_with(&format!(".{n}"))))
                .cloned()
                .collect(),
            Self::Regex(re) => {
                let full = regex::Regex::new(&format!("^(?:{re})$"))
                    .map_err(|e| TrainError::config("target_modules", format!("bad regular expression: {e}")))?;
                all.iter().filter(|m| full.is_match(m)).cloned().collect()
            }
        };
        if chosen.is_empty() {
            return Err(TrainError::NoTargetMatch { pattern: self.to_string(), modules: all.to_vec() });
        }
        Ok(chosen)
    }

    /// The `target_modules` value peft writes: a list of names, `"all-linear"`, or the regex.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Names(n) => n.clone().into(),
            Self::AllLinear => "all-linear".into(),
            Self::Regex(r) => r.clone().into(),
        }
    }
}

impl std::fmt::Display for TargetModules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Names(n) => write!(f, "{n:?}"),
            Self::AllLinear => write!(f, "all-linear"),
            Self::Regex(r) => write!(f, "regex {r:?}"),
        }
    }
}

/// A LoRA configuration (peft's `LoraConfig`), validated by [`LoraSpec::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    /// Rank.
    pub r: usize,
    /// Alpha; the update is scaled by `alpha / r` (or `alpha / √r` with rsLoRA).
    pub alpha: f64,
    /// Dropout on the adapter input while training.
    pub dropout: f64,
    /// rsLoRA scaling.
    pub use_rslora: bool,
    /// Which layers.
    pub targets: TargetModules,
    /// Per-module ranks (key: dotted suffix of the module name).
    pub rank_pattern: BTreeMap<String, usize>,
    /// Per-module alphas.
    pub alpha_pattern: BTreeMap<String, f64>,
}

impl Default for LoraSpec {
    /// peft's defaults: r 8, alpha 8, no dropout, `q_proj` and `v_proj`.
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 8.0,
            dropout: 0.0,
            use_rslora: false,
            targets: TargetModules::Names(vec!["q_proj".into(), "v_proj".into()]),
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
        }
    }
}

impl LoraSpec {
    /// Rejects a zero rank, non-positive alpha and a dropout outside `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 || self.rank_pattern.values().any(|&r| r == 0) {
            return Err(TrainError::config("r", "the rank must be at least 1"));
        }
        if !positive(self.alpha) || !self.alpha_pattern.values().all(|&a| positive(a)) {
            return Err(TrainError::config("lora_alpha", "alpha must be positive"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(TrainError::config("lora_dropout", format!("{} is not in [0, 1)", self.dropout)));
        }
        Ok(())
    }

    /// The same settings as llm-core's runtime [`LoraConfig`] (what `adapter_config.json` holds).
    pub fn to_config(&self) -> LoraConfig {
        LoraConfig {
            r: self.r,
            lora_alpha: self.alpha,
            use_rslora: self.use_rslora,
            target_modules: match &self.targets {
                TargetModules::Names(n) => n.clone(),
                TargetModules::AllLinear => vec!["all-linear".into()],
                TargetModules::Regex(r) => vec![r.clone()],
            },
            rank_pattern: self.rank_pattern.clone(),
            alpha_pattern: self.alpha_pattern.clone(),
            modules_to_save: vec![],
            lora_dropout: self.dropout,
        }
    }
}

/// `x > 0`, false for NaN.
fn positive(x: f64) -> bool {
    x.partial_cmp(&0.0) == Some(std::cmp::Ordering::Greater)
}

/// Adds a fresh adapter to every layer `spec` targets, initialised as peft does (A
/// Kaiming-uniform with `a = √5`, i.e. `U(-1/√d_in, 1/√d_in)`; B zero, so the model starts
/// unchanged), freezes every other parameter, and returns the adapted module names.
///
/// `seed` fixes A's draw. Layers that already carry an adapter get a new one.
pub fn attach_lora<B: Backend>(model: CausalLm<B>, spec: &LoraSpec, seed: u64) -> Result<(CausalLm<B>, Vec<String>)> {
    spec.validate()?;
    let mut model = model;
    let all: Vec<String> = model.linears().into_iter().map(|(n, _)| n).collect();
    let chosen = spec.targets.select(&all)?;
    let config = spec.to_config();
    let (dtype, device) = (model.dtype(), model.device());
    let mut rng = StdRng::seed_from_u64(seed);
    for name in &chosen {
        let (r, _, scaling) = config.scaling_for(name);
        let linear = model.linear_mut(name).expect("selected from linears()");
        let (d_out, d_in) = linear.dims();
        let bound = 1.0 / (d_in as f64).sqrt();
        let a: Vec<f32> = (0..r * d_in).map(|_| rng.random_range(-bound..bound) as f32).collect();
        let a = Tensor::<B, 2>::from_data(TensorData::new(a, [r, d_in]), (&device, dtype));
        let b = Tensor::<B, 2>::zeros([d_out, r], (&device, dtype));
        let mut lora = LoraAdapter::new(a, b, scaling);
        lora.dropout = spec.dropout;
        linear.lora = Some(lora);
    }
    tracing::info!(modules = chosen.len(), r = spec.r, alpha = spec.alpha, "attached LoRA adapters");
    Ok((set_trainable(model, is_lora), chosen))
}
