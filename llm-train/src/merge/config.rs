//! mergekit's YAML configuration (`mergekit-yaml`'s input), read as mergekit reads it: `models`
//! or `slices`, parameters given as scalars, gradients over layers or lists filtered by tensor
//! name, looked up from the most specific place to the least.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::method::Method;
use crate::error::{Result, TrainError};

/// A whole merge configuration, as mergekit's `MergeConfiguration`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeConfig {
    /// `linear`, `slerp`, `task_arithmetic`, `ties`, `dare_ties`, `dare_linear`, `breadcrumbs`,
    /// `breadcrumbs_ties`, `della`, `della_linear` or `passthrough`.
    pub merge_method: String,
    /// The model task vectors are taken against (and SLERP's first endpoint).
    #[serde(default)]
    pub base_model: Option<String>,
    /// Whole models, each with its own parameters (exclusive with `slices`).
    #[serde(default)]
    pub models: Option<Vec<ModelEntry>>,
    /// Output slices, each from layer ranges of the sources (exclusive with `models`).
    #[serde(default)]
    pub slices: Option<Vec<SliceEntry>>,
    /// Parameters for every tensor.
    #[serde(default)]
    pub parameters: Option<serde_yaml_ng::Mapping>,
    /// The dtype tensors are read in (`float32`, `float16`, `bfloat16`); we compute in f32.
    #[serde(default)]
    pub dtype: Option<String>,
    /// The dtype tensors are written in (default: `dtype`, else each tensor's input dtype).
    #[serde(default)]
    pub out_dtype: Option<String>,
    /// `base`, `union`, or a model: the output vocabulary, with embedding rows permuted to it.
    #[serde(default)]
    pub tokenizer_source: Option<String>,
    /// A chat template written to the output's `tokenizer_config.json`.
    #[serde(default)]
    pub chat_template: Option<String>,
}

/// One entry of `models`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// A local directory holding `config.json` and safetensors weights.
    pub model: String,
    /// Parameters of this model's tensors.
    #[serde(default)]
    pub parameters: Option<serde_yaml_ng::Mapping>,
}

/// One entry of `slices`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceEntry {
    /// The inputs: each the same number of layers.
    pub sources: Vec<SliceSource>,
    /// This slice's base model (default: the configuration's).
    #[serde(default)]
    pub base_model: Option<String>,
    /// Parameters for this slice's tensors.
    #[serde(default)]
    pub parameters: Option<serde_yaml_ng::Mapping>,
}

/// One source of a slice.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceSource {
    /// A local model directory.
    pub model: String,
    /// `[start, end)` layers of that model.
    pub layer_range: [usize; 2],
    /// Parameters of this source's tensors.
    #[serde(default)]
    pub parameters: Option<serde_yaml_ng::Mapping>,
}

impl MergeConfig {
    /// Parses a YAML configuration; `<name>` paths that are relative are taken from `dir`.
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Self> {
        let config: Self = serde_yaml_ng::from_str(text).map_err(|e| {
            let at = e.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
            TrainError::config(format!("{}{at}", origin.display()), e.to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a YAML file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        Self::from_yaml(&text, path)
    }

    /// The merge method; an unknown name is an error naming `merge_method`.
    pub fn method(&self) -> Result<Method> {
        Method::parse(&self.merge_method)
    }

    /// Checks the structure and every parameter name against the method, before any tensor is
    /// read.
    pub fn validate(&self) -> Result<()> {
        let method = self.method()?;
        match (&self.models, &self.slices) {
            (Some(m), None) if !m.is_empty() => {}
            (None, Some(s)) if !s.is_empty() => {}
            _ => return Err(TrainError::config("models", "exactly one of `models` and `slices` must be given, and not empty")),
        }
        let known = method.parameter_names();
        let check = |field: String, map: &Option<serde_yaml_ng::Mapping>| -> Result<()> {
            for (key, value) in map.iter().flatten() {
                let name = key.as_str().ok_or_else(|| TrainError::config(&field, "parameter names must be strings"))?;
                if !known.contains(&name) {
                    return Err(TrainError::config(
                        format!("{field}.{name}"),
                        format!("`{}` has no parameter `{name}` (it takes: {})", self.merge_method, known.join(", ")),
                    ));
                }
                Setting::parse(value).map_err(|m| TrainError::config(format!("{field}.{name}"), m))?;
            }
            Ok(())
        };
        check("parameters".into(), &self.parameters)?;
        for (i, m) in self.models.iter().flatten().enumerate() {
            check(format!("models[{i}].parameters"), &m.parameters)?;
        }
        for (i, s) in self.slices.iter().flatten().enumerate() {
            check(format!("slices[{i}].parameters"), &s.parameters)?;
            if s.sources.is_empty() {
                return Err(TrainError::config(format!("slices[{i}].sources"), "a slice needs at least one source"));
            }
            for (j, src) in s.sources.iter().enumerate() {
                check(format!("slices[{i}].sources[{j}].parameters"), &src.parameters)?;
                let [a, b] = src.layer_range;
                if a >= b {
                    return Err(TrainError::config(format!("slices[{i}].sources[{j}].layer_range"), format!("[{a}, {b}] is empty")));
                }
            }
        }
        for (field, dtype) in [("dtype", &self.dtype), ("out_dtype", &self.out_dtype)] {
            if let Some(d) = dtype {
                parse_dtype(d).map_err(|m| TrainError::config(field, m))?;
            }
        }
        Ok(())
    }

    /// Every model directory the configuration names, base first, each once.
    pub fn referenced_models(&self) -> Vec<String> {
        let mut out: Vec<String> = self.base_model.iter().cloned().collect();
        let slice_models = self.slices.iter().flatten().flat_map(|s| s.base_model.iter().cloned().chain(s.sources.iter().map(|x| x.model.clone())));
        for m in self.models.iter().flatten().map(|m| m.model.clone()).chain(slice_models) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }
}

/// A model reference resolved to a directory: absolute, or relative to the configuration's
/// directory when that exists, else to the working directory.
pub fn resolve_model(name: &str, config_dir: Option<&Path>) -> PathBuf {
    let path = PathBuf::from(name);
    match config_dir {
        Some(dir) if path.is_relative() && dir.join(&path).exists() => dir.join(path),
        _ => path,
    }
}

/// `float32` / `float16` / `bfloat16` (and torch's spellings) to a safetensors dtype.
pub fn parse_dtype(name: &str) -> std::result::Result<safetensors::Dtype, String> {
    match name.trim_start_matches("torch.") {
        "float32" | "float" | "fp32" => Ok(safetensors::Dtype::F32),
        "float16" | "half" | "fp16" => Ok(safetensors::Dtype::F16),
        "bfloat16" | "bf16" => Ok(safetensors::Dtype::BF16),
        other => Err(format!("`{other}` is not one of float32, float16, bfloat16")),
    }
}

/// A parameter's value as mergekit accepts it: a scalar, a gradient (numbers interpolated over
/// a slice's layers), or conditions tried in order, each with an optional tensor-name filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    /// A number (booleans as 0/1).
    Scalar(f64),
    /// Numbers spread evenly over the layers of a slice.
    Gradient(Vec<f64>),
    /// The first whose filter is absent, `*`, or a substring of the tensor name.
    Conditional(Vec<(Option<String>, Setting)>),
}

impl Setting {
    /// Parses one YAML value; the error says what was expected.
    pub fn parse(value: &Value) -> std::result::Result<Self, String> {
        match value {
            Value::Number(n) => n.as_f64().map(Self::Scalar).ok_or_else(|| "not a number".into()),
            Value::Bool(b) => Ok(Self::Scalar(f64::from(u8::from(*b)))),
            Value::Mapping(_) => Ok(Self::Conditional(vec![Self::condition(value)?])),
            Value::Sequence(items) if items.iter().all(|v| matches!(v, Value::Number(_))) => {
                if items.is_empty() {
                    return Err("an empty gradient".into());
                }
                Ok(Self::Gradient(items.iter().filter_map(Value::as_f64).collect()))
            }
            Value::Sequence(items) => Ok(Self::Conditional(items.iter().map(Self::condition).collect::<std::result::Result<_, _>>()?)),
            other => Err(format!("expected a number, a list of numbers or `{{filter, value}}` entries, found {other:?}")),
        }
    }

    fn condition(value: &Value) -> std::result::Result<(Option<String>, Setting), String> {
        let map = value.as_mapping().ok_or("a list that mixes numbers and other values")?;
        let mut filter = None;
        let mut inner = None;
        for (k, v) in map {
            match k.as_str() {
                Some("filter") => filter = Some(v.as_str().ok_or("`filter` must be a string")?.to_string()),
                Some("value") => inner = Some(Self::parse(v)?),
                _ => return Err(format!("unknown key {k:?} in a conditional parameter (it takes `filter` and `value`)")),
            }
        }
        let inner = inner.ok_or("a conditional parameter without `value`")?;
        if matches!(inner, Self::Conditional(_)) {
            return Err("`value` must be a number or a gradient".into());
        }
        Ok((filter, inner))
    }

    /// The value for `tensor` at fraction `t` of its slice's layers (mergekit's
    /// `evaluate_setting`); `None` when no condition matches.
    pub fn evaluate(&self, tensor: &str, t: f64) -> Option<f64> {
        match self {
            Self::Scalar(v) => Some(*v),
            Self::Gradient(g) => {
                let scaled = t * (g.len() - 1) as f64;
                let i0 = scaled as usize;
                let i1 = (i0 + 1).min(g.len() - 1);
                let frac = scaled - i0 as f64;
                Some((1.0 - frac) * g[i0] + frac * g[i1])
            }
            Self::Conditional(conds) => conds
                .iter()
                .find(|(f, _)| f.as_deref().is_none_or(|f| f == "*" || tensor.contains(f)))
                .and_then(|(_, s)| s.evaluate(tensor, t)),
        }
    }
}

/// A parameter map parsed into settings (validated already, so parsing cannot fail here).
pub(crate) fn settings(map: &Option<serde_yaml_ng::Mapping>) -> Vec<(String, Setting)> {
    map.iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), Setting::parse(v).ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(yaml: &str) -> Setting {
        Setting::parse(&serde_yaml_ng::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn gradients_and_filters_evaluate_as_mergekit_does() {
        // mergekit's README example: t over 5 anchors for self_attn, another for mlp, else 0.5.
        let t = setting("[{filter: self_attn, value: [0, 0.5, 0.3, 0.7, 1]}, {filter: mlp, value: [1, 0.5, 0.7, 0.3, 0]}, {value: 0.5}]");
        let q = "model.layers.3.self_attn.q_proj.weight";
        assert_eq!(t.evaluate(q, 0.0), Some(0.0));
        assert_eq!(t.evaluate(q, 1.0), Some(1.0));
        // t = 0.375 -> scaled 1.5 between anchors 0.5 and 0.3.
        assert!((t.evaluate(q, 0.375).unwrap() - 0.4).abs() < 1e-12);
        assert_eq!(t.evaluate("model.layers.0.mlp.up_proj.weight", 0.0), Some(1.0));
        assert_eq!(t.evaluate("model.norm.weight", 0.3), Some(0.5));
        assert_eq!(setting("{filter: mlp, value: 2}").evaluate("model.norm.weight", 0.0), None);
        assert_eq!(setting("true"), Setting::Scalar(1.0));
    }

    #[test]
    fn unknown_methods_parameters_and_keys_are_errors_naming_the_field() {
        let dir = Path::new("merge.yml");
        let bad = |yaml: &str| MergeConfig::from_yaml(yaml, dir).unwrap_err().to_string();
        assert!(bad("merge_method: frobnicate\nmodels: [{model: a}]").contains("merge_method"));
        let e = bad("merge_method: ties\nmodels: [{model: a, parameters: {weight: 1, densty: 0.5}}]");
        assert!(e.contains("models[0].parameters.densty"), "{e}");
        assert!(bad("merge_method: linear\nmodels: [{model: a}]\nmystery: 1").contains("mystery"));
        assert!(bad("merge_method: linear\nmodels: [{model: a}]\ndtype: int4").contains("dtype"));
        assert!(bad("merge_method: linear\nmodels: [{model: a, parameters: {weight: [a, 1]}}]").contains("models[0].parameters.weight"));
        assert!(bad("merge_method: linear").contains("models"));
    }
}
