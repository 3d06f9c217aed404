//! RoPE scaling parameters from either spelling of `config.json`.

use serde_json::{Map, Value};

use crate::error::{LlmError, Result};

/// How rotary frequencies are scaled beyond the pretraining context
/// (transformers' `rope_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE: `inv_freq[i] = theta^(-2i/d)`.
    Default,
    /// Position interpolation: every frequency divided by `factor`.
    Linear {
        /// Division factor.
        factor: f64,
    },
    /// Dynamic NTK: the base grows with the sequence length once it exceeds
    /// `original_max_position_embeddings`.
    Dynamic {
        /// Scaling factor.
        factor: f64,
        /// Context length the model was trained with.
        original_max_position_embeddings: usize,
    },
    /// YaRN: per-frequency blend of interpolation and extrapolation, with an attention scale.
    Yarn {
        /// Context extension factor.
        factor: f64,
        /// Context length the model was trained with.
        original_max_position_embeddings: usize,
        /// Rotations above which frequencies extrapolate (default 32).
        beta_fast: f64,
        /// Rotations below which frequencies interpolate (default 1).
        beta_slow: f64,
        /// Explicit attention scale; derived from `factor` when absent.
        attention_factor: Option<f64>,
        /// DeepSeek-style `mscale`.
        mscale: Option<f64>,
        /// DeepSeek-style `mscale_all_dim`.
        mscale_all_dim: Option<f64>,
        /// Round the correction range to whole dimensions (default true).
        truncate: bool,
    },
    /// Llama 3.1's piecewise frequency scaling.
    Llama3 {
        /// Scaling factor for low frequencies.
        factor: f64,
        /// Wavelength threshold factor for low frequencies.
        low_freq_factor: f64,
        /// Wavelength threshold factor for high frequencies.
        high_freq_factor: f64,
        /// Context length the model was trained with.
        original_max_position_embeddings: usize,
    },
}

/// The `rope_type`s we implement, for error messages.
pub const SUPPORTED_ROPE_TYPES: &[&str] = &["default", "linear", "dynamic", "yarn", "llama3"];

/// Resolved RoPE settings: base and scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeConfig {
    /// Base of the frequencies (`rope_theta`).
    pub rope_theta: f64,
    /// Scaling variant.
    pub scaling: RopeScaling,
}

impl RopeConfig {
    /// Reads RoPE settings from transformers 5 `rope_parameters` or, when absent, from the
    /// 4.x/Hub pair `rope_theta` + `rope_scaling`. `prefix` names the object in errors.
    pub(crate) fn from_json(
        rope_parameters: Option<&Value>,
        rope_theta: Option<f64>,
        rope_scaling: Option<&Value>,
        max_position_embeddings: usize,
    ) -> Result<Self> {
        let (field, obj) = match (rope_parameters, rope_scaling) {
            (Some(v), _) if !v.is_null() => ("rope_parameters", as_object("rope_parameters", v)?),
            (_, Some(v)) if !v.is_null() => ("rope_scaling", as_object("rope_scaling", v)?),
            _ => ("rope_scaling", Map::new()),
        };
        let theta = match get_f64(&obj, field, "rope_theta")? {
            Some(t) => t,
            None => rope_theta.unwrap_or(10_000.0),
        };
        if !(theta.is_finite() && theta > 1.0) {
            return Err(LlmError::config(format!("{field}.rope_theta"), format!("must be > 1, got {theta}")));
        }
        // Hub files spell the variant `type` in older releases and `rope_type` in newer ones.
        let rope_type = match obj.get("rope_type").or_else(|| obj.get("type")) {
            None => "default".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(LlmError::config(format!("{field}.rope_type"), format!("expected a string, got {other}")))
            }
        };
        let factor = || require_f64(&obj, field, "factor");
        let original = || -> Result<usize> {
            Ok(get_f64(&obj, field, "original_max_position_embeddings")?
                .map(|v| v as usize)
                .unwrap_or(max_position_embeddings))
        };
        let scaling = match rope_type.as_str() {
            "default" => RopeScaling::Default,
            "linear" => RopeScaling::Linear { factor: positive(field, "factor", factor()?)? },
            "dynamic" => RopeScaling::Dynamic {
                factor: positive(field, "factor", factor()?)?,
                original_max_position_embeddings: original()?,
            },
            "yarn" => RopeScaling::Yarn {
                factor: positive(field, "factor", factor()?)?,
                original_max_position_embeddings: original()?,
                beta_fast: get_f64(&obj, field, "beta_fast")?.unwrap_or(32.0),
                beta_slow: get_f64(&obj, field, "beta_slow")?.unwrap_or(1.0),
                attention_factor: get_f64(&obj, field, "attention_factor")?,
                mscale: get_f64(&obj, field, "mscale")?,
                mscale_all_dim: get_f64(&obj, field, "mscale_all_dim")?,
                truncate: obj.get("truncate").and_then(Value::as_bool).unwrap_or(true),
            },
            "llama3" => RopeScaling::Llama3 {
                factor: positive(field, "factor", factor()?)?,
                low_freq_factor: require_f64(&obj, field, "low_freq_factor")?,
                high_freq_factor: require_f64(&obj, field, "high_freq_factor")?,
                original_max_position_embeddings: original()?,
            },
            other => {
                return Err(LlmError::config(
                    format!("{field}.rope_type"),
                    format!("`{other}` is not supported; supported: {}", SUPPORTED_ROPE_TYPES.join(", ")),
                ))
            }
        };
        if let RopeScaling::Llama3 { low_freq_factor, high_freq_factor, .. } = &scaling {
            if high_freq_factor <= low_freq_factor {
                return Err(LlmError::config(
                    format!("{field}.high_freq_factor"),
                    format!("must exceed low_freq_factor ({low_freq_factor}), got {high_freq_factor}"),
                ));
            }
        }
        Ok(Self { rope_theta: theta, scaling })
    }
}

fn as_object(field: &str, v: &Value) -> Result<Map<String, Value>> {
    v.as_object().cloned().ok_or_else(|| LlmError::config(field, format!("expected an object, got {v}")))
}

fn get_f64(obj: &Map<String, Value>, field: &str, key: &str) -> Result<Option<f64>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| LlmError::config(format!("{field}.{key}"), format!("expected a number, got {v}"))),
    }
}

fn require_f64(obj: &Map<String, Value>, field: &str, key: &str) -> Result<f64> {
    get_f64(obj, field, key)?.ok_or_else(|| LlmError::config(format!("{field}.{key}"), "is required for this rope_type"))
}

fn positive(field: &str, key: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(LlmError::config(format!("{field}.{key}"), format!("must be a positive number, got {v}")))
    }
}

impl RopeConfig {
    /// transformers 5's `rope_parameters` object for these settings.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("rope_theta".into(), self.rope_theta.into());
        let rope_type = match &self.scaling {
            RopeScaling::Default => "default",
            RopeScaling::Linear { factor } => {
                m.insert("factor".into(), (*factor).into());
                "linear"
            }
            RopeScaling::Dynamic { factor, original_max_position_embeddings } => {
                m.insert("factor".into(), (*factor).into());
                m.insert("original_max_position_embeddings".into(), (*original_max_position_embeddings).into());
                "dynamic"
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                attention_factor,
                mscale,
                mscale_all_dim,
                truncate,
            } => {
                m.insert("factor".into(), (*factor).into());
                m.insert("original_max_position_embeddings".into(), (*original_max_position_embeddings).into());
                m.insert("beta_fast".into(), (*beta_fast).into());
                m.insert("beta_slow".into(), (*beta_slow).into());
                m.insert("truncate".into(), (*truncate).into());
                for (k, v) in [("attention_factor", attention_factor), ("mscale", mscale), ("mscale_all_dim", mscale_all_dim)] {
                    if let Some(v) = v {
                        m.insert(k.into(), (*v).into());
                    }
                }
                "yarn"
            }
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                m.insert("factor".into(), (*factor).into());
                m.insert("low_freq_factor".into(), (*low_freq_factor).into());
                m.insert("high_freq_factor".into(), (*high_freq_factor).into());
                m.insert("original_max_position_embeddings".into(), (*original_max_position_embeddings).into());
                "llama3"
            }
        };
        m.insert("rope_type".into(), rope_type.into());
        Value::Object(m)
    }
}
