//! Model merging from mergekit's YAML: linear, SLERP, task arithmetic, TIES, DARE (linear and
//! TIES), DELLA, Model Breadcrumbs and passthrough frankenmerges, with mergekit's parameter
//! gradients and filters and its `tokenizer_source` vocabulary resolution.
//!
//! It lives in llm-train beside the other writers of checkpoints (merged LoRA, trainer
//! checkpoints): it needs llm-core's architecture table and loaders, nothing of Burn.
//!
//! Merging streams: inputs are memory-mapped, each output tensor is merged from one tensor of
//! each input and written straight into its shard, so memory stays near one tensor per input
//! model ([`MergeReport::peak_tensor_bytes`]), never whole models.
//!
//! ```no_run
//! use llm_train::merge::{merge_file, MergeOptions};
//! let report = merge_file("merge.yml", "out/merged", &MergeOptions::default())?;
//! println!("{} tensors, {} bytes", report.tensors, report.bytes_written);
//! # Ok::<(), llm_train::TrainError>(())
//! ```

pub mod config;
pub mod method;
pub mod moe;
pub mod plan;
pub mod sparsify;
pub mod vocab;
pub mod writer;

use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;

pub use config::{MergeConfig, Setting};
pub use method::{GlobalParams, Method, ModelParams, TaskVectors};
pub use plan::{InputModel, Plan, PlannedTensor, Weights};

use crate::error::{Result, TrainError};
use writer::{round_to, shard, shard_names, write_shard, TensorHeader};

/// How a merge runs.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// Seed of the random drops (DARE, DELLA).
    pub seed: u64,
    /// Largest shard, bytes (mergekit's default is 5 GB).
    pub max_shard_bytes: u64,
    /// Copy the tokenizer files of the tokenizer source (or the base model) to the output.
    pub copy_tokenizer: bool,
}

impl Default for MergeOptions {
    fn default() -> Self {
        Self { seed: 0, max_shard_bytes: 5_000_000_000, copy_tokenizer: true }
    }
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeReport {
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data written.
    pub bytes_written: u64,
    /// Shard files.
    pub shards: usize,
    /// Layers of the output model.
    pub n_layers: usize,
    /// The most bytes of tensor values held at once (one tensor of each input plus the output,
    /// in f32).
    pub peak_tensor_bytes: u64,
    /// For comparison: f32 bytes of the largest layer (or the embedding) across all input
    /// models, what a layer-at-a-time merge would hold.
    pub largest_layer_bytes: u64,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Reads a YAML file and merges to `out_dir` (relative model paths resolve against the YAML's
/// directory first).
pub fn merge_file(yaml: impl AsRef<Path>, out_dir: impl AsRef<Path>, options: &MergeOptions) -> Result<MergeReport> {
    let yaml = yaml.as_ref();
    let text = std::fs::read_to_string(yaml).map_err(|e| TrainError::io(yaml, e))?;
    let config = MergeConfig::from_yaml(&text, yaml)?;
    let plan = Plan::build(&config, yaml.parent())?;
    merge(&config, plan, &text, out_dir.as_ref(), options, &mut |_, _, _| {})
}

/// Runs a planned merge, writing a Hugging Face checkpoint directory to `out_dir` atomically
/// (`config.json`, safetensors shards and their index, the tokenizer, `mergekit_config.yml`).
/// `progress(done, total, tensor)` is called after each tensor.
pub fn merge(
    config: &MergeConfig,
    mut plan: Plan,
    yaml: &str,
    out_dir: &Path,
    options: &MergeOptions,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<MergeReport> {
    let start = Instant::now();
    let vocab = vocab::OutputVocab::build(config, &plan)?;
    if let Some(v) = &vocab {
        v.retarget(&mut plan);
    }
    let headers: Vec<TensorHeader> = plan.tensors.iter().map(|t| TensorHeader { name: &t.name, dtype: t.dtype, shape: &t.shape }).collect();
    let shards = shard(&headers, options.max_shard_bytes);
    let names = shard_names(shards.len());
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let mut peak = 0u64;
    let (mut done, total) = (0, plan.tensors.len());
    let bytes_written: u64 = headers.iter().map(TensorHeader::bytes).sum();
    llm_core::io::write_dir_atomic(out_dir, |dir| -> Result<()> {
        for (files, name) in shards.iter().zip(&names) {
            let list: Vec<TensorHeader> = files.iter().map(|&i| TensorHeader { name: &plan.tensors[i].name, dtype: plan.tensors[i].dtype, shape: &plan.tensors[i].shape }).collect();
            write_shard(&dir.join(name), &list, |k| {
                let (values, held) = merge_tensor(&plan, &plan.tensors[files[k]], vocab.as_ref(), &mut rng)?;
                peak = peak.max(held);
                done += 1;
                progress(done, total, &plan.tensors[files[k]].name);
                Ok(values)
            })?;
            tracing::info!(shard = %name, tensors = files.len(), "merged");
        }
        if shards.len() > 1 {
            write_index(dir, &plan, &shards, &names, bytes_written)?;
        }
        write_config(dir, config, &plan, vocab.as_ref())?;
        if options.copy_tokenizer {
            vocab::write_tokenizer(dir, config, &plan, vocab.as_ref())?;
        }
        std::fs::write(dir.join("mergekit_config.yml"), yaml).map_err(|e| TrainError::io(dir.join("mergekit_config.yml"), e))
    })?;
    Ok(MergeReport {
        tensors: plan.tensors.len(),
        bytes_written,
        shards: shards.len(),
        n_layers: plan.n_layers,
        peak_tensor_bytes: peak,
        largest_layer_bytes: largest_layer_bytes(&plan),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Merges one planned tensor: reads each source (rounded to the compute dtype, rows permuted to
/// the output vocabulary or cut to the common ones), merges, checks the result is finite.
/// Returns the values and the bytes held while doing it.
pub fn merge_tensor(plan: &Plan, t: &PlannedTensor, vocab: Option<&vocab::OutputVocab>, rng: &mut rand::rngs::StdRng) -> Result<(Vec<f32>, u64)> {
    let mut inputs = Vec::with_capacity(t.sources.len());
    for (m, input) in &t.sources {
        let model = &plan.models[*m];
        let data = model.weights.source().read(input)?;
        let mut values: Vec<f32> = data
            .convert::<f32>()
            .into_vec()
            .map_err(|e| TrainError::Checkpoint { path: model.dir.clone(), message: format!("`{input}`: {e:?}") })?;
        if let Some(d) = plan.compute_dtype {
            round_to(&mut values, d);
        }
        inputs.push(values);
    }
    let cols = t.shape.last().copied().unwrap_or(1);
    let inputs = match vocab.filter(|_| t.is_embed) {
        Some(v) => v.resolve(t, &inputs, cols),
        None => {
            // Common rows of embeddings whose vocabularies differ (the plan's shape).
            let n: usize = t.shape.iter().product();
            inputs.into_iter().map(|mut v| {
                v.truncate(n);
                v
            }).collect()
        }
    };
    let held_in: u64 = inputs.iter().map(|v| 4 * v.len() as u64).sum();
    let values = merge_values(plan, t, &inputs, cols, rng)?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(TrainError::config(format!("tensor `{}`", t.name), format!("the merge produced {} at index {i} (check the inputs and weights)", values[i])));
    }
    let held = held_in + 4 * values.len() as u64;
    Ok((values, held))
}

fn merge_values(plan: &Plan, t: &PlannedTensor, inputs: &[Vec<f32>], cols: usize, rng: &mut rand::rngs::StdRng) -> Result<Vec<f32>> {
    let tensor_inputs = method::TensorInputs { values: inputs.iter().map(Vec::as_slice).collect(), params: t.params.clone(), base: t.base, cols };
    plan.method.merge(&tensor_inputs, &t.global, rng).map_err(|m| TrainError::config(format!("tensor `{}`", t.name), m))
}

fn write_index(dir: &Path, plan: &Plan, shards: &[Vec<usize>], names: &[String], total: u64) -> Result<()> {
    let mut map = serde_json::Map::new();
    for (files, name) in shards.iter().zip(names) {
        for &i in files {
            map.insert(plan.tensors[i].name.clone(), name.clone().into());
        }
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": map});
    Ok(llm_core::io::write_json(&dir.join("model.safetensors.index.json"), &index)?)
}

/// The reference model's `config.json` with the output's layer count, vocabulary and dtype.
fn write_config(dir: &Path, config: &MergeConfig, plan: &Plan, vocab: Option<&vocab::OutputVocab>) -> Result<()> {
    let mut json = plan.models[plan.reference].config_json.clone();
    if let Some(obj) = json.as_object_mut() {
        obj.insert("num_hidden_layers".into(), plan.n_layers.into());
        if let Some(v) = vocab {
            obj.insert("vocab_size".into(), v.len().into());
        }
        if let Some(d) = config.out_dtype.as_deref().or(config.dtype.as_deref()) {
            let key = if obj.contains_key("dtype") { "dtype" } else { "torch_dtype" };
            obj.insert(key.into(), d.trim_start_matches("torch.").into());
        }
    }
    llm_core::io::write_json(&dir.join("config.json"), &json)?;
    let generation = plan.models[plan.reference].dir.join("generation_config.json");
    if generation.exists() {
        std::fs::copy(&generation, dir.join("generation_config.json")).map_err(|e| TrainError::io(&generation, e))?;
    }
    Ok(())
}

/// f32 bytes of the largest layer (or non-layer tensor group) summed over the input models.
fn largest_layer_bytes(plan: &Plan) -> u64 {
    let mut groups: std::collections::BTreeMap<Option<usize>, u64> = Default::default();
    for model in &plan.models {
        for name in model.weights.source().tensor_names() {
            let elems: usize = model.weights.source().shape(&name).unwrap_or_default().iter().product();
            *groups.entry(llm_core::model::arch::layer_of(&name)).or_default() += 4 * elems as u64;
        }
    }
    groups.values().copied().max().unwrap_or(0)
}
