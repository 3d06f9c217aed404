//! frankenMoE, as `mergekit-moe` builds it: a Mixtral whose attention, norms and embeddings are
//! the base model's and whose experts are the MLPs of several Llama/Mistral models, with router
//! weights from prompts: per layer, the base model's hidden state entering that layer for each
//! expert's positive prompts (minus its negative prompts), normalised (`gate_mode: hidden`);
//! or the prompts' mean token embedding for every layer (`cheap_embed`); or random.
//!
//! The output is written in the Mixtral layout llm-core and transformers (4 and 5) load:
//! `block_sparse_moe.experts.E.{w1,w2,w3}` and `block_sparse_moe.gate`.

use std::path::Path;

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use llm_core::model::arch::{expected_tensors, expert_of, layer_of, DENSE_MLP, EMBED, EXPERTS, EXPERT_MLP, LAYERS, ROUTER};
use llm_core::weights::{load_model, GgufFile, LoadOptions};
use llm_core::{CausalLm, ModelConfig, ModelInput, Tokenizer};
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use super::config::resolve_model;
use super::plan::InputModel;
use super::writer::{shard, shard_names, write_shard, TensorHeader};
use crate::error::{Result, TrainError};

/// `mergekit-moe`'s configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoeConfig {
    /// Attention, norms, embeddings and (for `hidden`) the gate prompts' forward pass.
    pub base_model: String,
    /// One entry per expert.
    pub experts: Vec<ExpertEntry>,
    /// `hidden` (last prompt token), `hidden_avg` (mean over the prompt), `cheap_embed`,
    /// `random` or `uniform_random`.
    #[serde(default = "default_gate_mode")]
    pub gate_mode: String,
    /// Output dtype (`float32`, `float16`, `bfloat16`; default: the base model's).
    #[serde(default)]
    pub dtype: Option<String>,
    /// Experts each token is routed to.
    #[serde(default = "default_experts_per_token")]
    pub experts_per_token: usize,
    /// Only `mixtral` (the default) is written.
    #[serde(default)]
    pub architecture: Option<String>,
}

fn default_gate_mode() -> String {
    "hidden".into()
}

fn default_experts_per_token() -> usize {
    2
}

/// One expert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpertEntry {
    /// The model whose MLPs become this expert.
    pub source_model: String,
    /// Prompts this expert should receive.
    #[serde(default)]
    pub positive_prompts: Vec<String>,
    /// Prompts it should not.
    #[serde(default)]
    pub negative_prompts: Vec<String>,
    /// Gaussian noise added to the expert's weights (seeded).
    #[serde(default)]
    pub noise_scale: Option<f64>,
    /// Scale of the expert's down projection.
    #[serde(default)]
    pub residual_scale: Option<f64>,
}

/// How gate vectors are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateMode {
    /// The hidden state at the last prompt token.
    HiddenLast,
    /// The hidden state averaged over the prompt's tokens.
    HiddenMean,
    /// The prompt's summed token embeddings, the same for every layer.
    CheapEmbed,
    /// Standard normal.
    Random,
    /// torch.nn.Linear's default initialisation.
    UniformRandom,
}

impl MoeConfig {
    /// Parses and validates a YAML configuration (mergekit's `is_bad_config` checks).
    pub fn from_yaml(text: &str, origin: &Path) -> Result<Self> {
        let c: Self = serde_yaml_ng::from_str(text).map_err(|e| TrainError::config(origin.display().to_string(), e.to_string()))?;
        c.gate_mode()?;
        if c.architecture.as_deref().is_some_and(|a| !a.eq_ignore_ascii_case("mixtral")) {
            return Err(TrainError::config("architecture", "only `mixtral` output is supported"));
        }
        if c.experts_per_token < 1 || c.experts.len() < c.experts_per_token {
            return Err(TrainError::config("experts_per_token", format!("{} needs 1 <= it <= the {} experts", c.experts_per_token, c.experts.len())));
        }
        if let Some(d) = &c.dtype {
            super::config::parse_dtype(d).map_err(|m| TrainError::config("dtype", m))?;
        }
        if !matches!(c.gate_mode()?, GateMode::Random | GateMode::UniformRandom) {
            if let Some(i) = c.experts.iter().position(|e| e.positive_prompts.is_empty()) {
                return Err(TrainError::config(format!("experts[{i}].positive_prompts"), format!("gate_mode `{}` needs prompts", c.gate_mode)));
            }
            let first = (&c.experts[0].positive_prompts, &c.experts[0].negative_prompts);
            if c.experts.len() > 1 && c.experts.iter().all(|e| (&e.positive_prompts, &e.negative_prompts) == first) {
                return Err(TrainError::config("experts", "every expert has the same prompts: the router could not tell them apart"));
            }
        }
        Ok(c)
    }

    /// The gate mode; an unknown one is an error naming `gate_mode`.
    pub fn gate_mode(&self) -> Result<GateMode> {
        Ok(match self.gate_mode.as_str() {
            "hidden" | "hidden_last" => GateMode::HiddenLast,
            "hidden_avg" => GateMode::HiddenMean,
            "cheap_embed" => GateMode::CheapEmbed,
            "random" => GateMode::Random,
            "uniform_random" => GateMode::UniformRandom,
            other => return Err(TrainError::config("gate_mode", format!("unknown `{other}` (hidden, hidden_avg, cheap_embed, random, uniform_random)"))),
        })
    }
}

/// What a frankenMoE merge wrote.
#[derive(Debug, Clone)]
pub struct MoeReport {
    /// Experts.
    pub n_experts: usize,
    /// Layers.
    pub n_layers: usize,
    /// Tensors written.
    pub tensors: usize,
    /// `[layer][expert][d_model]` router weights.
    pub gates: Vec<Vec<Vec<f32>>>,
}

/// Builds the Mixtral at `out_dir` (atomically). The base model runs on `B` for the hidden
/// gate modes; `seed` drives random gates and noise.
pub fn merge_moe<B: Backend>(config: &MoeConfig, config_dir: Option<&Path>, out_dir: &Path, seed: u64, device: &B::Device) -> Result<MoeReport> {
    let base_dir = resolve_model(&config.base_model, config_dir);
    let base = InputModel::open(&config.base_model, base_dir.clone())?;
    let experts = config.experts.iter().map(|e| InputModel::open(&e.source_model, resolve_model(&e.source_model, config_dir))).collect::<Result<Vec<_>>>()?;
    for (i, e) in experts.iter().enumerate() {
        let (a, b) = (&base.config, &e.config);
        if (a.d_model, a.d_ff, a.n_layers) != (b.d_model, b.d_ff, b.n_layers) || b.moe.is_some() {
            return Err(TrainError::config(format!("experts[{i}].source_model"), format!("{} is not a dense model of the base's shape", e.name)));
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let gates = gate_vectors::<B>(config, &base, &mut rng, device)?;
    let out_json = mixtral_config(&base.config_json, config);
    let out_config = ModelConfig::from_json(&out_json, &out_dir.join("config.json"))?;
    let specs = expected_tensors(&out_config);
    let dtype = match &config.dtype {
        Some(d) => super::config::parse_dtype(d).expect("validated"),
        None => base.weights.dtype(llm_core::model::arch::EMBED.0).unwrap_or(safetensors::Dtype::F32),
    };
    let headers: Vec<TensorHeader> = specs.iter().map(|s| TensorHeader { name: &s.name, dtype, shape: &s.shape }).collect();
    let shards = shard(&headers, 5_000_000_000);
    let names = shard_names(shards.len());
    llm_core::io::write_dir_atomic(out_dir, |dir| -> Result<()> {
        for (files, file) in shards.iter().zip(&names) {
            let list: Vec<TensorHeader> = files.iter().map(|&i| TensorHeader { name: &specs[i].name, dtype, shape: &specs[i].shape }).collect();
            write_shard(&dir.join(file), &list, |k| tensor_values(&specs[files[k]].name, &base, &experts, config, &gates, &mut rng))?;
        }
        llm_core::io::write_json(&dir.join("config.json"), &out_json)?;
        if base_dir.is_dir() {
            for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "tokenizer.model", "generation_config.json"] {
                let src = base_dir.join(name);
                if src.exists() {
                    std::fs::copy(&src, dir.join(name)).map_err(|e| TrainError::io(&src, e))?;
                }
            }
        } else if let super::plan::Weights::Gguf(g) = &base.weights {
            llm_core::Tokenizer::from_gguf(g.file())?.save_dir(dir)?;
        }
        Ok(())
    })?;
    Ok(MoeReport { n_experts: experts.len(), n_layers: out_config.n_layers, tensors: specs.len(), gates })
}

/// The base's `config.json` as a Mixtral: experts, experts per token, no sliding window.
fn mixtral_config(base: &serde_json::Value, config: &MoeConfig) -> serde_json::Value {
    let mut json = base.clone();
    if let Some(obj) = json.as_object_mut() {
        obj.insert("model_type".into(), "mixtral".into());
        obj.insert("architectures".into(), serde_json::json!(["MixtralForCausalLM"]));
        obj.insert("num_local_experts".into(), config.experts.len().into());
        obj.insert("num_experts_per_tok".into(), config.experts_per_token.into());
        obj.insert("sliding_window".into(), serde_json::Value::Null);
        for llama_only in ["mlp_bias", "pretraining_tp"] {
            obj.remove(llama_only);
        }
        if let Some(d) = &config.dtype {
            obj.insert("torch_dtype".into(), d.clone().into());
        }
    }
    json
}

/// One output tensor: the router from the gates, an expert's weight from its model's MLP
/// (noised, the down projection scaled), everything else from the base.
fn tensor_values(name: &str, base: &InputModel, experts: &[InputModel], config: &MoeConfig, gates: &[Vec<Vec<f32>>], rng: &mut impl Rng) -> Result<Vec<f32>> {
    let read = |m: &InputModel, n: &str| -> Result<Vec<f32>> {
        let data = m.weights.source().read(n)?;
        data.convert::<f32>().into_vec().map_err(|e| TrainError::Checkpoint { path: m.dir.clone(), message: format!("`{n}`: {e:?}") })
    };
    let Some(layer) = layer_of(name) else { return read(base, name) };
    if name == format!("{LAYERS}.{layer}.{}.weight", ROUTER.hf) {
        return Ok(gates[layer].concat());
    }
    let Some(e) = expert_of(name) else { return read(base, name) };
    let kind = name.rsplit('.').nth(1).unwrap_or_default();
    let slot = EXPERT_MLP.iter().find(|x| x.hf == kind).map(|x| x.slot);
    let dense = DENSE_MLP.iter().find(|x| Some(x.slot) == slot).ok_or_else(|| TrainError::config(format!("tensor `{name}`"), format!("not an expert weight of {EXPERTS}")))?;
    let expert = &config.experts[e];
    let mut v = read(&experts[e], &format!("{LAYERS}.{layer}.{}.weight", dense.hf))?;
    if let Some(s) = expert.noise_scale {
        v.iter_mut().for_each(|x| *x += (normal(rng) * s) as f32);
    }
    if let (Some(s), llm_core::model::LinearSlot::Down) = (expert.residual_scale, dense.slot) {
        v.iter_mut().for_each(|x| *x *= s as f32);
    }
    Ok(v)
}

/// `[layer][expert][d_model]` router weights.
pub fn gate_vectors<B: Backend>(config: &MoeConfig, base_model: &InputModel, rng: &mut impl Rng, device: &B::Device) -> Result<Vec<Vec<Vec<f32>>>> {
    let (base_dir, base) = (&base_model.dir, &base_model.config);
    let (n_layers, d, n_experts) = (base.n_layers, base.d_model, config.experts.len());
    let mode = config.gate_mode()?;
    let per_expert: Vec<Vec<Vec<f32>>> = match mode {
        GateMode::Random => (0..n_experts).map(|_| (0..n_layers).map(|_| (0..d).map(|_| normal(rng) as f32).collect()).collect()).collect(),
        GateMode::UniformRandom => {
            let scale = (1.0 / d as f64).sqrt();
            (0..n_experts).map(|_| (0..n_layers).map(|_| (0..d).map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * scale) as f32).collect()).collect()).collect()
        }
        _ => {
            let tokenizer = if base_dir.is_dir() { Tokenizer::from_dir(base_dir)? } else { Tokenizer::from_gguf(&GgufFile::open(base_dir)?)? };
            let states = match mode {
                GateMode::CheapEmbed => States::Embedding(base_model.weights.source().read(EMBED.0)?.convert::<f32>().into_vec().map_err(|e| {
                    TrainError::Checkpoint { path: base_dir.clone(), message: format!("`{}`: {e:?}", EMBED.0) }
                })?),
                _ => States::Model(Box::new(load_model::<B>(base_dir, LoadOptions::default(), device)?)),
            };
            let state = |prompts: &[String]| prompt_state(&states, &tokenizer, base, prompts, mode);
            let mut out = vec![];
            for e in &config.experts {
                let mut h = state(&e.positive_prompts)?;
                if !e.negative_prompts.is_empty() {
                    let neg = state(&e.negative_prompts)?;
                    h.iter_mut().zip(neg).for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, y)| *x -= y));
                }
                h.iter_mut().for_each(|v| normalize(v));
                out.push(h);
            }
            out
        }
    };
    // [expert][layer] -> [layer][expert]
    Ok((0..n_layers).map(|l| per_expert.iter().map(|e| e[l].clone()).collect()).collect())
}

/// What gate states are computed from.
enum States<B: Backend> {
    /// The base's token embedding `[vocab, d_model]` (cheap_embed).
    Embedding(Vec<f32>),
    /// The base model (hidden modes).
    Model(Box<CausalLm<B>>),
}

/// Per layer, the prompts' state (`[layer][d_model]`): hidden states averaged over prompts, or
/// the normalised sum of the prompts' token embeddings.
fn prompt_state<B: Backend>(states: &States<B>, tokenizer: &Tokenizer, c: &ModelConfig, prompts: &[String], mode: GateMode) -> Result<Vec<Vec<f32>>> {
    let (n_layers, d) = (c.n_layers, c.d_model);
    let mut sum = vec![vec![0.0f32; d]; n_layers];
    let bos = tokenizer.bos_token().unwrap_or("").to_string();
    for p in prompts {
        let ids: Vec<u32> = tokenizer.encode(&format!("{bos}{p}"), false)?.ids;
        let n = ids.len();
        if n == 0 {
            return Err(TrainError::config("positive_prompts", format!("prompt {p:?} has no tokens")));
        }
        match states {
            States::Embedding(embed) => {
                for &id in &ids {
                    let row = embed.get(id as usize * d..(id as usize + 1) * d).ok_or_else(|| TrainError::config("positive_prompts", format!("token id {id} is past the embedding")))?;
                    sum.iter_mut().for_each(|s| s.iter_mut().zip(row).for_each(|(a, &b)| *a += b));
                }
            }
            States::Model(model) => {
                let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
                let input = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), &model.device());
                let out = model.forward_with(ModelInput { output_hidden_states: true, last_logits_only: true, ..ModelInput::new(input) }, None)?;
                // hidden_states: the embeddings and the input of each later layer (transformers'
                // `hidden_states[:-1]`), then the final normed state.
                for (l, h) in out.hidden_states.into_iter().take(n_layers).enumerate() {
                    let (_, v) = llm_core::io::host_f32(h);
                    let rows: Vec<&[f32]> = v.chunks(d).collect();
                    let pick: Vec<f32> = match mode {
                        GateMode::HiddenMean => (0..d).map(|j| rows.iter().map(|r| r[j]).sum::<f32>() / n as f32).collect(),
                        _ => rows[n - 1].to_vec(),
                    };
                    sum[l].iter_mut().zip(pick).for_each(|(a, b)| *a += b);
                }
            }
        }
    }
    if mode == GateMode::CheapEmbed {
        // mergekit normalises the summed embedding of all prompts (then the positive - negative
        // difference again); it does not average over prompts.
        sum.iter_mut().for_each(|v| normalize(v));
    } else {
        let k = prompts.len() as f32;
        sum.iter_mut().for_each(|v| v.iter_mut().for_each(|x| *x /= k));
    }
    Ok(sum)
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt().max(1e-8) as f32;
    v.iter_mut().for_each(|x| *x /= norm);
}
