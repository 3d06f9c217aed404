//! The one LoRA configuration: peft's `adapter_config.json` read through a serde form
//! ([`AdapterConfigJson`]) into a validated [`LoraConfig`], and written back with every key
//! peft writes. llm-train attaches fresh adapters from it; [`super::PeftAdapter`] reads it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{LlmError, Result};
use crate::model::arch::{self, LinearSlot};

/// Which linear layers get an adapter (peft's `target_modules`).
#[derive(Debug, Clone, PartialEq)]
pub enum TargetModules {
    /// Module names matched as dotted suffixes of [`crate::model::LinearId::hf`] names (a
    /// projection's last segment matches it in every layer).
    Names(Vec<String>),
    /// Every linear layer except the output head (peft's `all-linear`).
    AllLinear,
    /// A regular expression that must match the whole module name (peft's string form).
    Regex(String),
}

impl TargetModules {
    /// Parses the command-line spelling: `all-linear`, a comma list of names, or `re:<regex>`.
    pub fn parse(s: &str) -> Self {
        if s == "all-linear" {
            Self::AllLinear
        } else if let Some(re) = s.strip_prefix("re:") {
            Self::Regex(re.to_string())
        } else {
            Self::Names(s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        }
    }

    /// The modules of `all` this selects (possibly none); an error only for a regular
    /// expression that does not compile.
    pub fn matching(&self, all: &[String]) -> Result<Vec<String>> {
        Ok(match self {
            Self::AllLinear => all.iter().filter(|n| *n != crate::model::arch::LM_HEAD_MODULE).cloned().collect(),
            Self::Names(names) => {
                all.iter().filter(|m| names.iter().any(|n| *m == n || m.ends_with(&format!(".{n}")))).cloned().collect()
            }
            Self::Regex(re) => {
                let full = self.regex(re)?;
                all.iter().filter(|m| full.is_match(m)).cloned().collect()
            }
        })
    }

    fn regex(&self, re: &str) -> Result<regex::Regex> {
        regex::Regex::new(&format!("^(?:{re})$"))
            .map_err(|e| LlmError::config("target_modules", format!("bad regular expression: {e}")))
    }

    /// The `target_modules` value peft writes: a list of names, `"all-linear"`, or the regex.
    pub fn to_json(&self) -> Value {
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

/// A LoRA configuration (peft's `LoraConfig`), checked by [`LoraConfig::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
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
    /// Modules trained in full alongside the adapter (peft's `modules_to_save`).
    pub modules_to_save: Vec<String>,
}

impl Default for LoraConfig {
    /// peft's defaults: r 8, alpha 8, no dropout, the query and value projections.
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 8.0,
            dropout: 0.0,
            use_rslora: false,
            targets: TargetModules::Names([LinearSlot::Q, LinearSlot::V].map(|s| arch::slot_suffix(s).to_string()).to_vec()),
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
            modules_to_save: vec![],
        }
    }
}

/// `x > 0`, false for NaN.
fn positive(x: f64) -> bool {
    x.partial_cmp(&0.0) == Some(std::cmp::Ordering::Greater)
}

impl LoraConfig {
    /// Rejects a zero rank, a non-positive alpha, a dropout outside `[0, 1)`, an empty target
    /// list and a regular expression that does not compile; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.r == 0 || self.rank_pattern.values().any(|&r| r == 0) {
            return Err(LlmError::config("r", "the rank must be at least 1"));
        }
        if !positive(self.alpha) || !self.alpha_pattern.values().all(|&a| positive(a)) {
            return Err(LlmError::config("lora_alpha", "alpha must be positive"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(LlmError::config("lora_dropout", format!("{} is not in [0, 1)", self.dropout)));
        }
        match &self.targets {
            TargetModules::Names(n) if n.is_empty() => Err(LlmError::config("target_modules", "names no module")),
            TargetModules::Regex(re) => self.targets.regex(re).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// `(r, alpha, scaling)` for the module `name` (a [`crate::model::LinearId::hf`] name).
    pub fn scaling_for(&self, name: &str) -> (usize, f64, f64) {
        let matches = |key: &str| name == key || name.ends_with(&format!(".{key}"));
        let r = self.rank_pattern.iter().find(|(k, _)| matches(k)).map_or(self.r, |(_, &r)| r);
        let alpha = self.alpha_pattern.iter().find(|(k, _)| matches(k)).map_or(self.alpha, |(_, &a)| a);
        let scaling = if self.use_rslora { alpha / (r as f64).sqrt() } else { alpha / r as f64 };
        (r, alpha, scaling)
    }

    /// Parses and validates peft's `adapter_config.json` (`path` names the file in errors).
    /// Settings this runtime does not implement (DoRA, non-LoRA PEFT types, `fan_in_fan_out`)
    /// are errors naming the field.
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let in_file = |e: LlmError| match e {
            LlmError::Config { field, message } => LlmError::Config { field: format!("{}: {field}", path.display()), message },
            other => other,
        };
        let raw = AdapterConfigJson::deserialize(v).map_err(|source| LlmError::Json { path: path.into(), source })?;
        raw.into_config().and_then(|c| c.validate().map(|()| c)).map_err(in_file)
    }

    /// `adapter_config.json` with every key peft 0.21 writes (so peft's
    /// `LoraConfig.from_pretrained` and [`Self::from_json`] read it alike).
    pub fn to_json(&self, base_model: &str) -> Value {
        json!({
            "alora_invocation_tokens": null, "alpha_pattern": self.alpha_pattern, "arrow_config": null,
            "auto_mapping": null, "base_model_name_or_path": base_model, "bias": "none", "corda_config": null,
            "ensure_weight_tying": false, "eva_config": null, "exclude_modules": null, "fan_in_fan_out": false,
            "inference_mode": true, "init_lora_weights": true, "kasa_config": null, "layer_replication": null,
            "layers_pattern": null, "layers_to_transform": null, "loftq_config": {}, "lora_alpha": self.alpha,
            "lora_bias": false, "lora_dropout": self.dropout, "lora_ga_config": null, "megatron_config": null,
            "megatron_core": "megatron.core",
            "modules_to_save": if self.modules_to_save.is_empty() { Value::Null } else { self.modules_to_save.clone().into() },
            "monteclora_config": null, "peft_type": "LORA", "peft_version": "0.21.2", "qalora_group_size": 16,
            "r": self.r, "rank_pattern": self.rank_pattern, "revision": null, "target_modules": self.targets.to_json(),
            "target_parameters": null, "task_type": "CAUSAL_LM", "trainable_token_indices": null, "use_bdlora": null,
            "use_dora": false, "use_qalora": false, "use_rslora": self.use_rslora, "velora_config": null,
        })
    }
}

/// `target_modules` / `modules_to_save` as peft writes them: a list, or one string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The keys of `adapter_config.json` this runtime reads, as peft spells them; unknown keys
/// are ignored (peft writes dozens).
#[derive(Debug, Deserialize)]
pub struct AdapterConfigJson {
    peft_type: Option<String>,
    r: Option<u64>,
    lora_alpha: Option<f64>,
    lora_dropout: Option<f64>,
    use_rslora: Option<bool>,
    use_dora: Option<bool>,
    fan_in_fan_out: Option<bool>,
    target_modules: Option<OneOrMany>,
    rank_pattern: Option<BTreeMap<String, u64>>,
    alpha_pattern: Option<BTreeMap<String, f64>>,
    modules_to_save: Option<OneOrMany>,
}

impl AdapterConfigJson {
    /// The settings as a [`LoraConfig`] (not yet validated).
    pub fn into_config(self) -> Result<LoraConfig> {
        match self.peft_type.as_deref() {
            Some("LORA") | None => {}
            Some(other) => return Err(LlmError::config("peft_type", format!("`{other}` is not supported; supported: LORA"))),
        }
        for (flag, on) in [("use_dora", self.use_dora), ("fan_in_fan_out", self.fan_in_fan_out)] {
            if on == Some(true) {
                return Err(LlmError::config(flag, "true is not supported"));
            }
        }
        let r = self.r.ok_or_else(|| LlmError::config("r", "missing or not an integer"))?;
        let targets = match self.target_modules {
            None => LoraConfig::default().targets,
            Some(OneOrMany::One(s)) if s == "all-linear" => TargetModules::AllLinear,
            Some(OneOrMany::One(s)) => TargetModules::Regex(s),
            Some(OneOrMany::Many(names)) => TargetModules::Names(names),
        };
        let modules_to_save = match self.modules_to_save {
            None => vec![],
            Some(OneOrMany::One(s)) => vec![s],
            Some(OneOrMany::Many(v)) => v,
        };
        Ok(LoraConfig {
            r: r as usize,
            alpha: self.lora_alpha.unwrap_or(8.0),
            dropout: self.lora_dropout.unwrap_or(0.0),
            use_rslora: self.use_rslora.unwrap_or(false),
            targets,
            rank_pattern: self.rank_pattern.unwrap_or_default().into_iter().map(|(k, r)| (k, r as usize)).collect(),
            alpha_pattern: self.alpha_pattern.unwrap_or_default(),
            modules_to_save,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<LoraConfig> {
        LoraConfig::from_json(&v, Path::new("adapter/adapter_config.json"))
    }

    #[test]
    fn a_zero_rank_is_an_error_naming_the_field_and_the_file() {
        let err = parse(json!({"peft_type": "LORA", "r": 0, "lora_alpha": 16})).unwrap_err();
        assert!(matches!(&err, LlmError::Config { field, .. } if field == "adapter/adapter_config.json: r"), "{err:?}");
        let err = parse(json!({"r": 4, "lora_alpha": 0})).unwrap_err();
        assert!(matches!(&err, LlmError::Config { field, .. } if field.ends_with(": lora_alpha")), "{err:?}");
        let err = parse(json!({"r": 4, "rank_pattern": {"q_proj": 0}})).unwrap_err();
        assert!(matches!(&err, LlmError::Config { field, .. } if field.ends_with(": r")), "{err:?}");
        let err = parse(json!({"r": 4, "use_dora": true})).unwrap_err();
        assert!(matches!(&err, LlmError::Config { field, .. } if field.ends_with(": use_dora")), "{err:?}");
    }

    #[test]
    fn peft_json_round_trips_through_the_one_config() {
        let c = LoraConfig {
            r: 4,
            alpha: 16.0,
            dropout: 0.05,
            use_rslora: true,
            targets: TargetModules::Names(vec!["q_proj".into(), "down_proj".into()]),
            rank_pattern: BTreeMap::from([("v_proj".into(), 2)]),
            alpha_pattern: BTreeMap::from([("v_proj".into(), 4.0)]),
            modules_to_save: vec!["lm_head".into()],
        };
        assert_eq!(parse(c.to_json("base")).unwrap(), c);
        let all = LoraConfig { targets: TargetModules::AllLinear, ..c.clone() };
        assert_eq!(parse(all.to_json("base")).unwrap(), all);
        // peft reads a single string as a full-match regular expression.
        let re = parse(json!({"r": 4, "target_modules": ".*\\.(q|v)_proj"})).unwrap();
        assert_eq!(re.targets, TargetModules::Regex(".*\\.(q|v)_proj".into()));
        assert_eq!(c.scaling_for("model.layers.0.self_attn.v_proj"), (2, 4.0, 4.0 / 2f64.sqrt()));
    }
}
