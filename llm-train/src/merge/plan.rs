//! The merge plan: every output tensor with its sources (model, input tensor name), its
//! position `t` in its slice and its parameters, built from the configuration and the models'
//! `config.json` through llm-core's architecture table, and checked against every input file
//! (names, shapes) before a single value is read.

use std::path::{Path, PathBuf};

use llm_core::model::arch::{expected_tensors, layer_of, EMBED, LAYERS, LM_HEAD};
use llm_core::weights::{GgufSource, SafetensorsSource, TensorSource};
use llm_core::ModelConfig;
use safetensors::Dtype;

use super::config::{parse_dtype, resolve_model, settings, MergeConfig, Setting};
use super::method::{GlobalParams, Method, ModelParams};
use crate::error::{Result, TrainError};

/// An input model, memory-mapped: a Hugging Face directory or a GGUF file (its blocks
/// dequantized tensor by tensor, Q/K rows back in Hugging Face order).
pub struct InputModel {
    /// The name the configuration gives it.
    pub name: String,
    /// Its directory or file.
    pub dir: PathBuf,
    /// Its validated configuration.
    pub config: ModelConfig,
    /// Its `config.json` as written (for a GGUF, the one its metadata describes); the output
    /// takes the reference model's, with the layer count updated.
    pub config_json: serde_json::Value,
    /// Its tensors.
    pub weights: Weights,
}

/// Where an input's tensors come from.
pub enum Weights {
    /// `model.safetensors` or shards.
    Safetensors(SafetensorsSource),
    /// A GGUF file.
    Gguf(Box<GgufSource>),
}

impl Weights {
    /// The source as llm-core's loader sees it.
    pub fn source(&self) -> &dyn TensorSource {
        match self {
            Self::Safetensors(s) => s,
            Self::Gguf(g) => g.as_ref(),
        }
    }

    /// Stored float dtype (a GGUF's blocks merge and are written as F32 unless told otherwise).
    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        match self {
            Self::Safetensors(s) => s.dtype(name),
            Self::Gguf(_) => Some(Dtype::F32),
        }
    }
}

impl InputModel {
    /// Opens a model directory (`config.json` and safetensors) or a `.gguf` file.
    pub fn open(name: &str, dir: PathBuf) -> Result<Self> {
        if dir.is_file() && dir.extension().is_some_and(|e| e == "gguf") {
            let gguf = GgufSource::open(&dir)?;
            let config = gguf.config().clone();
            let config_json = config.to_hf_json();
            return Ok(Self { name: name.to_string(), dir, config, config_json, weights: Weights::Gguf(Box::new(gguf)) });
        }
        let config_path = dir.join("config.json");
        let config = ModelConfig::from_file(&config_path)?;
        let text = std::fs::read_to_string(&config_path).map_err(|e| TrainError::io(&config_path, e))?;
        let config_json = serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint { path: config_path.clone(), message: e.to_string() })?;
        let weights = Weights::Safetensors(SafetensorsSource::open_dir(&dir)?);
        Ok(Self { name: name.to_string(), dir, config, config_json, weights })
    }

    /// Whether this input is a GGUF file.
    pub fn is_gguf(&self) -> bool {
        matches!(self.weights, Weights::Gguf(_))
    }
}

/// One output tensor to compute.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    /// Output name.
    pub name: String,
    /// `(model index, input tensor name)` per source, in the configuration's order.
    pub sources: Vec<(usize, String)>,
    /// Position of the base model among `sources`.
    pub base: Option<usize>,
    /// Per-source parameters.
    pub params: Vec<ModelParams>,
    /// Global parameters.
    pub global: GlobalParams,
    /// Output shape (PyTorch order).
    pub shape: Vec<usize>,
    /// Output dtype.
    pub dtype: Dtype,
    /// An embedding or LM head (rows are vocabulary entries).
    pub is_embed: bool,
}

/// The plan and the models it reads.
pub struct Plan {
    /// The method.
    pub method: Method,
    /// Models in [`MergeConfig::referenced_models`] order.
    pub models: Vec<InputModel>,
    /// Tensors in output order: embedding, layers, final norm and head.
    pub tensors: Vec<PlannedTensor>,
    /// Layers of the output model.
    pub n_layers: usize,
    /// Index of the model whose `config.json` and tokenizer the output takes by default.
    pub reference: usize,
    /// The dtype inputs are rounded to before merging (mergekit loads them in `dtype`).
    pub compute_dtype: Option<Dtype>,
}

/// A slice source: model index, first layer, its own parameters.
type SliceInput = (usize, usize, Vec<(String, Setting)>);

/// A slice after `models` was turned into one.
struct Slice {
    sources: Vec<SliceInput>,
    layers: usize,
    base: Option<usize>,
    params: Vec<(String, Setting)>,
    field: String,
}

impl Plan {
    /// Opens every model and plans every tensor. `config_dir` resolves relative model paths.
    pub fn build(config: &MergeConfig, config_dir: Option<&Path>) -> Result<Self> {
        let method = config.method()?;
        let names = config.referenced_models();
        let models = names.iter().map(|n| InputModel::open(n, resolve_model(n, config_dir))).collect::<Result<Vec<_>>>()?;
        let index = |name: &str| names.iter().position(|n| n == name).expect("referenced");
        let base = config.base_model.as_deref().map(index);
        if method.needs_base() && base.is_none() && config.slices.iter().flatten().all(|s| s.base_model.is_none()) {
            return Err(TrainError::config("base_model", format!("`{}` needs a base model", method.name())));
        }
        let slices = slices(config, &models, base, &index)?;
        let global_params = settings(&config.parameters);
        let compute_dtype = config.dtype.as_deref().map(|d| parse_dtype(d).expect("validated"));
        let out_dtype = config.out_dtype.as_deref().or(config.dtype.as_deref()).map(|d| parse_dtype(d).expect("validated"));
        let reference = base.unwrap_or(slices[0].sources[0].0);
        let mut out_config = models[reference].config.clone();
        out_config.n_layers = slices.iter().map(|s| s.layers).sum();
        let ctx = Context { method, models: &models, global: &global_params, out_dtype };
        let mut tensors = vec![];
        let (first, last) = (&slices[0], &slices[slices.len() - 1]);
        let mut out_layer = 0;
        for spec in expected_tensors(&out_config).into_iter().filter(|s| layer_of(&s.name).is_none() && s.name == EMBED.0) {
            tensors.push(ctx.plan(&spec.name, first, None, 0.0)?);
        }
        for slice in &slices {
            for idx in 0..slice.layers {
                let t = if slice.layers > 1 { idx as f64 / (slice.layers - 1) as f64 } else { 1.0 };
                for spec in expected_tensors(&out_config).into_iter().filter(|s| layer_of(&s.name) == Some(out_layer)) {
                    tensors.push(ctx.plan(&spec.name, slice, Some(idx), t)?);
                }
                out_layer += 1;
            }
        }
        for spec in expected_tensors(&out_config).into_iter().filter(|s| layer_of(&s.name).is_none() && s.name != EMBED.0) {
            tensors.push(ctx.plan(&spec.name, last, None, 0.0)?);
        }
        Ok(Self { method, models, tensors, n_layers: out_layer, reference, compute_dtype })
    }
}

fn slices(config: &MergeConfig, models: &[InputModel], base: Option<usize>, index: &dyn Fn(&str) -> usize) -> Result<Vec<Slice>> {
    if let Some(entries) = &config.models {
        let mut sources: Vec<SliceInput> = entries.iter().map(|m| (index(&m.model), 0, settings(&m.parameters))).collect();
        if let Some(b) = base.filter(|b| !sources.iter().any(|s| s.0 == *b)) {
            sources.push((b, 0, vec![]));
        }
        let layers = models[sources[0].0].config.n_layers;
        if let Some(s) = sources.iter().find(|s| models[s.0].config.n_layers != layers) {
            return Err(TrainError::config(
                "models",
                format!("{} has {} layers and {} has {layers}: use `slices` to merge models of different depths", models[s.0].name, models[s.0].config.n_layers, models[sources[0].0].name),
            ));
        }
        return Ok(vec![Slice { sources, layers, base, params: vec![], field: "models".into() }]);
    }
    let mut out = vec![];
    for (i, s) in config.slices.iter().flatten().enumerate() {
        let field = format!("slices[{i}]");
        let lengths: Vec<usize> = s.sources.iter().map(|x| x.layer_range[1] - x.layer_range[0]).collect();
        if lengths.iter().any(|&l| l != lengths[0]) {
            return Err(TrainError::config(format!("{field}.sources"), format!("every source of a slice must span as many layers, found {lengths:?}")));
        }
        let mut sources = vec![];
        for (j, src) in s.sources.iter().enumerate() {
            let m = index(&src.model);
            if src.layer_range[1] > models[m].config.n_layers {
                return Err(TrainError::config(
                    format!("{field}.sources[{j}].layer_range"),
                    format!("{:?} is past the {} layers of {}", src.layer_range, models[m].config.n_layers, src.model),
                ));
            }
            sources.push((m, src.layer_range[0], settings(&src.parameters)));
        }
        let base = s.base_model.as_deref().map(index).or(base);
        out.push(Slice { sources, layers: lengths[0], base, params: settings(&s.parameters), field });
    }
    Ok(out)
}

struct Context<'a> {
    method: Method,
    models: &'a [InputModel],
    global: &'a [(String, Setting)],
    out_dtype: Option<Dtype>,
}

impl Context<'_> {
    /// Plans output tensor `name` of `slice` (layer `idx` of the slice, or a non-layer tensor).
    fn plan(&self, name: &str, slice: &Slice, idx: Option<usize>, t: f64) -> Result<PlannedTensor> {
        let mut sources = vec![];
        let mut shapes = vec![];
        for &(m, first, _) in &slice.sources {
            let input = match idx {
                Some(i) => rename_layer(name, first + i),
                None => name.to_string(),
            };
            let model = &self.models[m];
            match model.weights.source().shape(&input) {
                Some(shape) => shapes.push(shape),
                None => {
                    return Err(TrainError::Checkpoint {
                        path: model.dir.clone(),
                        message: format!("has no tensor `{input}` (needed for `{name}`): models of different architectures cannot be merged"),
                    })
                }
            }
            sources.push((m, input));
        }
        let is_embed = name == EMBED.0 || name == LM_HEAD.0;
        let shape = common_shape(name, is_embed, &shapes, &sources, self.models)?;
        let base = slice.base.and_then(|b| slice.sources.iter().position(|s| s.0 == b));
        if self.method.needs_base() && base.is_none() {
            return Err(TrainError::config(format!("{}.base_model", slice.field), format!("`{}` needs the base model among the sources of `{name}`", self.method.name())));
        }
        let mut params = vec![];
        for (k, (m, input)) in sources.iter().enumerate() {
            params.push(self.model_params(slice, *m, k, input, t, Some(k) == base)?);
        }
        let global = self.global_params(slice, name, t)?;
        let (m0, in0) = &sources[0];
        let dtype = self.out_dtype.or(self.models[*m0].weights.dtype(in0)).unwrap_or(Dtype::F32);
        Ok(PlannedTensor { name: name.to_string(), sources, base, params, global, shape, dtype, is_embed })
    }

    /// mergekit's lookup: the source's parameters, the slice's, then the configuration's.
    fn lookup(&self, slice: &Slice, source: Option<usize>, name: &str, tensor: &str, t: f64) -> Option<f64> {
        let own = source.map(|k| slice.sources[k].2.as_slice()).unwrap_or(&[]);
        [own, slice.params.as_slice(), self.global]
            .iter()
            .flat_map(|list| list.iter().filter(|(n, _)| n == name))
            .find_map(|(_, s)| s.evaluate(tensor, t))
    }

    fn model_params(&self, slice: &Slice, model: usize, k: usize, tensor: &str, t: f64, is_base: bool) -> Result<ModelParams> {
        let field = |p: &str| format!("{}.parameters.{p} ({} for `{tensor}`)", slice.field, self.models[model].name);
        let get = |p: &str| self.lookup(slice, Some(k), p, tensor, t);
        let takes = |p: &str| self.method.tensor_parameters().contains(&p);
        let weight = match get("weight") {
            Some(w) if w.is_finite() => w,
            Some(w) => return Err(TrainError::config(field("weight"), format!("{w} is not finite"))),
            None if takes("weight") && !(is_base && matches!(self.method, Method::TaskVectors(_))) => {
                return Err(TrainError::config(field("weight"), "is required"))
            }
            None => 1.0,
        };
        let density = get("density").unwrap_or(1.0);
        if takes("density") && !(density > 0.0 && density <= 1.0) {
            return Err(TrainError::config(field("density"), format!("{density} is outside (0, 1]")));
        }
        let gamma = get("gamma").unwrap_or(0.01);
        let epsilon = get("epsilon").unwrap_or(0.15);
        for (p, v) in [("gamma", gamma), ("epsilon", epsilon)] {
            if takes(p) && !(0.0..1.0).contains(&v) {
                return Err(TrainError::config(field(p), format!("{v} is outside [0, 1)")));
            }
        }
        Ok(ModelParams { weight, density, gamma, epsilon, scale: get("scale") })
    }

    fn global_params(&self, slice: &Slice, tensor: &str, t: f64) -> Result<GlobalParams> {
        let get = |p: &str| self.lookup(slice, None, p, tensor, t);
        let (normalize_default, rescale_default) = match self.method {
            Method::TaskVectors(tv) => (tv.default_normalize(), tv.default_rescale()),
            Method::Linear => (true, false),
            _ => (false, false),
        };
        let slerp_t = match (self.method, get("t")) {
            (Method::Slerp, None) => return Err(TrainError::config("parameters.t", format!("slerp needs `t` (none applies to `{tensor}`)"))),
            (Method::Slerp, Some(v)) if !(0.0..=1.0).contains(&v) => {
                return Err(TrainError::config("parameters.t", format!("{v} for `{tensor}` is outside [0, 1]")))
            }
            (_, v) => v.unwrap_or(0.0),
        };
        Ok(GlobalParams {
            t: slerp_t,
            normalize: get("normalize").map_or(normalize_default, |v| v != 0.0),
            rescale: get("rescale").map_or(rescale_default, |v| v != 0.0),
            lambda: get("lambda").unwrap_or(1.0),
        })
    }
}

/// `model.layers.N.rest` with N replaced.
fn rename_layer(name: &str, layer: usize) -> String {
    let rest = name.strip_prefix(LAYERS).and_then(|r| r.strip_prefix('.')).and_then(|r| r.split_once('.')).map_or("", |(_, rest)| rest);
    format!("{LAYERS}.{layer}.{rest}")
}

/// All sources must agree on a shape; embeddings and heads of different vocabulary sizes merge
/// on their common rows (mergekit's `rectify_embed_sizes`), unless a tokenizer source permutes
/// them (then the rows are resolved per token).
fn common_shape(name: &str, is_embed: bool, shapes: &[Vec<usize>], sources: &[(usize, String)], models: &[InputModel]) -> Result<Vec<usize>> {
    let first = &shapes[0];
    if shapes.iter().all(|s| s == first) {
        return Ok(first.clone());
    }
    if is_embed && shapes.iter().all(|s| s.len() == 2 && s[1] == first[1]) {
        let rows = shapes.iter().map(|s| s[0]).min().expect("at least one source");
        tracing::warn!(tensor = name, rows, "vocabulary sizes differ: merging the common rows");
        return Ok(vec![rows, first[1]]);
    }
    let listed: Vec<String> = sources.iter().zip(shapes).map(|((m, input), s)| format!("{}:{input} {s:?}", models[*m].name)).collect();
    Err(TrainError::config(format!("tensor `{name}`"), format!("shapes differ: {}", listed.join(", "))))
}
