//! Abliteration (Arditi et al., "Refusal in Language Models Is Mediated by a Single
//! Direction"): the refusal direction of each layer is the difference of the mean residual
//! stream of prompts the model refuses and of harmless ones, at the last post-instruction
//! position (the token before the answer); the layer is chosen by measured effect (refusal rate
//! on held-out refused prompts, KL divergence of next-token distributions on harmless ones);
//! every matrix that writes to the residual stream is then orthogonalised to it, so no layer
//! can write the direction again.
//!
//! `W ← W − w_l · r rᵀ W` for attention outputs and MLP down projections (`[d_model, ·]`, each
//! expert's too), `E ← E − (E r) rᵀ` for the embedding rows; `w_l` is 1 unless per-layer
//! weights are given. [`ablated`] does it in memory, the inference-time ablation used to score
//! candidates, which computes what the edited checkpoint computes.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use llm_core::chat::Message;
use llm_core::generate::{GenerationConfig, Generator};
use llm_core::io::host_f32;
use llm_core::model::arch::{layer_of, EMBED};
use llm_core::{CausalLm, ModelInput, Tokenizer};

use crate::error::{Result, TrainError};
use crate::params::{read_params, write_params};

/// Substrings that mark a refusal (the list of Arditi et al. and the abliteration tools).
pub const REFUSAL_MARKERS: [&str; 16] = [
    "I'm sorry",
    "I am sorry",
    "I apologize",
    "As an AI",
    "As a language model",
    "As an assistant",
    "I cannot",
    "I can't",
    "I can not",
    "I am unable",
    "I'm unable",
    "I am not able",
    "I'm not able",
    "I will not",
    "I won't",
    "not appropriate",
];

/// Whether a completion is a refusal.
pub fn is_refusal(text: &str) -> bool {
    let t = text.replace('’', "'");
    REFUSAL_MARKERS.iter().any(|m| t.contains(m))
}

/// Per-layer refusal directions.
#[derive(Debug, Clone)]
pub struct RefusalDirections {
    /// `[layer][d_model]`, unit length: mean(refused) − mean(harmless) of the residual stream
    /// entering each layer, at the last prompt position. All zeros where the separation is 0
    /// (layer 0: its input there is the template's last token, the same for every prompt).
    pub directions: Vec<Vec<f32>>,
    /// The length of each difference before normalising.
    pub separation: Vec<f32>,
}

/// Token ids of `prompt` as a user turn with the generation prompt.
pub fn chat_ids(tokenizer: &Tokenizer, prompt: &str) -> Result<Vec<u32>> {
    let text = tokenizer.apply_chat_template(&[Message::new("user", prompt)], true)?;
    Ok(tokenizer.encode(&text, false)?.ids)
}

/// Mean residual stream `[layer][d_model]` entering each layer at the last position of each
/// chat-formatted prompt.
pub fn mean_activations<B: Backend>(model: &CausalLm<B>, tokenizer: &Tokenizer, prompts: &[String]) -> Result<Vec<Vec<f64>>> {
    let (n_layers, d) = (model.config.n_layers, model.config.d_model);
    if prompts.is_empty() {
        return Err(TrainError::config("prompts", "no prompts to take activations from"));
    }
    let mut sum = vec![vec![0.0f64; d]; n_layers];
    for p in prompts {
        for (l, v) in last_position_states(model, &chat_ids(tokenizer, p)?)?.into_iter().enumerate() {
            sum[l].iter_mut().zip(v).for_each(|(a, b)| *a += f64::from(b));
        }
    }
    let k = prompts.len() as f64;
    sum.iter_mut().for_each(|v| v.iter_mut().for_each(|x| *x /= k));
    Ok(sum)
}

/// The hidden state entering each layer at the last of `ids`: `[layer][d_model]`.
fn last_position_states<B: Backend>(model: &CausalLm<B>, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
    let (n_layers, d, n) = (model.config.n_layers, model.config.d_model, ids.len());
    let input = Tensor::<B, 2, Int>::from_data(TensorData::new(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [1, n]), &model.device());
    let out = model.forward_with(ModelInput { output_hidden_states: true, last_logits_only: true, ..ModelInput::new(input) }, None)?;
    Ok(out
        .hidden_states
        .into_iter()
        .take(n_layers)
        .map(|h| {
            let (_, v) = host_f32(h);
            v[(n - 1) * d..n * d].to_vec()
        })
        .collect())
}

/// Refusal directions from prompts the model refuses and harmless ones.
pub fn refusal_directions<B: Backend>(model: &CausalLm<B>, tokenizer: &Tokenizer, refused: &[String], harmless: &[String]) -> Result<RefusalDirections> {
    let a = mean_activations(model, tokenizer, refused)?;
    let b = mean_activations(model, tokenizer, harmless)?;
    let mut directions = vec![];
    let mut separation = vec![];
    for (x, y) in a.iter().zip(&b) {
        let diff: Vec<f64> = x.iter().zip(y).map(|(p, q)| p - q).collect();
        let norm = diff.iter().map(|v| v * v).sum::<f64>().sqrt();
        separation.push(norm as f32);
        directions.push(diff.iter().map(|v| (v / norm.max(1e-12)) as f32).collect());
    }
    Ok(RefusalDirections { directions, separation })
}

/// Whether a parameter writes to the residual stream: `Some(layer)` for attention outputs and
/// MLP down projections (every expert's), `Some(usize::MAX)` for the embedding.
fn writer_layer(name: &str) -> Option<usize> {
    if name == EMBED.0 {
        return Some(usize::MAX);
    }
    let stem = name.strip_suffix(".weight").or_else(|| name.strip_suffix(".bias"))?;
    let writes = stem.ends_with("self_attn.o_proj") || stem.ends_with("mlp.down_proj") || (stem.contains(".experts.") && stem.ends_with(".w2"));
    writes.then(|| layer_of(name)).flatten()
}

/// Orthogonalises every residual-stream writer of `model` to `direction` (unit, `[d_model]`),
/// scaled per layer by `layer_weights` (default 1). The weights must be dense floats (load a
/// GGUF with `ggml_blocks: false`).
pub fn orthogonalize<B: Backend>(model: CausalLm<B>, direction: &[f32], layer_weights: Option<&[f32]>) -> Result<CausalLm<B>> {
    let d = model.config.d_model;
    if direction.len() != d {
        return Err(TrainError::config("direction", format!("has {} entries, the model's d_model is {d}", direction.len())));
    }
    if let Some(w) = layer_weights.filter(|w| w.len() != model.config.n_layers) {
        return Err(TrainError::config("layer_weights", format!("{} weights for {} layers", w.len(), model.config.n_layers)));
    }
    let mut params = read_params(&model, |n| writer_layer(n).is_some());
    let expected = 1 + model.config.n_layers * 2;
    if params.keys().filter(|n| n.ends_with(".weight")).count() < expected {
        return Err(TrainError::config("model", format!("found {} of the {expected} residual writers as float parameters: load quantized weights dequantized", params.len())));
    }
    let r: Vec<f64> = direction.iter().map(|&v| f64::from(v)).collect();
    for (name, (shape, values)) in params.iter_mut() {
        let layer = writer_layer(name).expect("selected");
        let w = if layer == usize::MAX { 1.0 } else { layer_weights.map_or(1.0, |ws| f64::from(ws[layer])) };
        if name == EMBED.0 || name.ends_with(".bias") {
            // E: [vocab, d_model] (a bias: one row); each row loses its component along r.
            for row in values.chunks_mut(d) {
                let dot: f64 = row.iter().zip(&r).map(|(&x, &y)| f64::from(x) * y).sum();
                row.iter_mut().zip(&r).for_each(|(x, &y)| *x = (f64::from(*x) - w * dot * y) as f32);
            }
        } else {
            // W: [d_model, d_in]; W ← W − w·r (rᵀ W), column by column.
            let cols = shape[1];
            let mut proj = vec![0.0f64; cols];
            for (i, row) in values.chunks(cols).enumerate() {
                proj.iter_mut().zip(row).for_each(|(p, &x)| *p += r[i] * f64::from(x));
            }
            for (i, row) in values.chunks_mut(cols).enumerate() {
                row.iter_mut().zip(&proj).for_each(|(x, &p)| *x = (f64::from(*x) - w * r[i] * p) as f32);
            }
        }
    }
    Ok(write_params(model, &params))
}

/// The inference-time ablation: a copy of `model` whose residual writers cannot write
/// `direction` (what the orthogonalised checkpoint computes).
pub fn ablated<B: Backend>(model: &CausalLm<B>, direction: &[f32]) -> Result<CausalLm<B>> {
    orthogonalize(model.clone(), direction, None)
}

/// The fraction of `prompts` whose greedy completion (`max_new_tokens`) is a refusal, and the
/// completions.
pub fn refusal_rate<B: Backend>(model: &CausalLm<B>, tokenizer: &Tokenizer, prompts: &[String], max_new_tokens: usize) -> Result<(f64, Vec<String>)> {
    let config = GenerationConfig { max_new_tokens, do_sample: false, eos_token_id: tokenizer.eos_token_id().into_iter().collect(), ..Default::default() };
    let generator = Generator::new(model, config)?.with_tokenizer(tokenizer);
    let mut texts = vec![];
    for p in prompts {
        let out = generator.generate(&[chat_ids(tokenizer, p)?])?;
        texts.push(tokenizer.decode(&out.sequences[0], true)?);
    }
    let refused = texts.iter().filter(|t| is_refusal(t)).count();
    Ok((refused as f64 / prompts.len().max(1) as f64, texts))
}

/// Mean KL(base ‖ edited) of the next-token distributions at the last position of each
/// chat-formatted prompt, in nats.
pub fn next_token_kl<B: Backend>(base: &CausalLm<B>, edited: &CausalLm<B>, tokenizer: &Tokenizer, prompts: &[String]) -> Result<f64> {
    let mut total = 0.0;
    for p in prompts {
        let ids = chat_ids(tokenizer, p)?;
        let (lp, lq) = (last_log_probs(base, &ids)?, last_log_probs(edited, &ids)?);
        total += lp.iter().zip(&lq).map(|(a, b)| a.exp() * (a - b)).sum::<f64>();
    }
    Ok(total / prompts.len().max(1) as f64)
}

fn last_log_probs<B: Backend>(model: &CausalLm<B>, ids: &[u32]) -> Result<Vec<f64>> {
    let n = ids.len();
    let input = Tensor::<B, 2, Int>::from_data(TensorData::new(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [1, n]), &model.device());
    let out = model.forward_with(ModelInput { last_logits_only: true, ..ModelInput::new(input) }, None)?;
    let (_, logits) = host_f32(out.logits);
    let last = &logits[logits.len() - model.config.vocab_size..];
    let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max + last.iter().map(|&v| (f64::from(v) - max).exp()).sum::<f64>().ln();
    Ok(last.iter().map(|&v| f64::from(v) - lse).collect())
}

/// One scored candidate direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The layer whose direction it is.
    pub layer: usize,
    /// Refusal rate on the held-out refused prompts with it ablated.
    pub refusal_rate: f64,
    /// Mean next-token KL on the harmless prompts, nats.
    pub kl: f64,
}

/// How candidate directions are scored.
#[derive(Debug, Clone)]
pub struct Evaluation<'a> {
    /// Held-out prompts the model refuses.
    pub refused: &'a [String],
    /// Harmless prompts for the KL divergence.
    pub harmless: &'a [String],
    /// The largest KL (nats) a chosen direction may cost.
    pub kl_bound: f64,
    /// Tokens generated per refused prompt.
    pub max_new_tokens: usize,
}

/// Scores the directions of `layers` and picks the one with the lowest refusal rate whose KL is
/// at most `eval.kl_bound` (ties: lower KL); `None` when none is within the bound.
pub fn select_layer<B: Backend>(model: &CausalLm<B>, tokenizer: &Tokenizer, directions: &RefusalDirections, layers: &[usize], eval: &Evaluation<'_>) -> Result<(Option<usize>, Vec<Candidate>)> {
    let Evaluation { refused: refused_heldout, harmless: harmless_eval, kl_bound, max_new_tokens } = *eval;
    let mut scored = vec![];
    for &layer in layers {
        let dir = directions.directions.get(layer).ok_or_else(|| TrainError::config("layers", format!("layer {layer} is past the model's {}", directions.directions.len())))?;
        if directions.separation[layer] == 0.0 {
            return Err(TrainError::config("layers", format!("layer {layer} separates the prompt sets by 0: it has no direction")));
        }
        let edited = ablated(model, dir)?;
        let (refusal_rate, _) = refusal_rate(&edited, tokenizer, refused_heldout, max_new_tokens)?;
        let kl = next_token_kl(model, &edited, tokenizer, harmless_eval)?;
        tracing::info!(layer, refusal_rate, kl, "candidate direction");
        scored.push(Candidate { layer, refusal_rate, kl });
    }
    let best = scored
        .iter()
        .filter(|c| c.kl <= kl_bound)
        .min_by(|a, b| a.refusal_rate.total_cmp(&b.refusal_rate).then(a.kl.total_cmp(&b.kl)))
        .map(|c| c.layer);
    Ok((best, scored))
}

/// The largest |h·r| over the residual stream entering every layer, at every position of each
/// prompt, relative to the mean ‖h‖: ~0 once the model is orthogonalised to r.
pub fn projection_onto<B: Backend>(model: &CausalLm<B>, tokenizer: &Tokenizer, prompts: &[String], direction: &[f32]) -> Result<f64> {
    let d = model.config.d_model;
    let (mut worst, mut norm_sum, mut count) = (0.0f64, 0.0f64, 0usize);
    for p in prompts {
        let ids = chat_ids(tokenizer, p)?;
        let n = ids.len();
        let input = Tensor::<B, 2, Int>::from_data(TensorData::new(ids.iter().map(|&i| i64::from(i)).collect::<Vec<_>>(), [1, n]), &model.device());
        let out = model.forward_with(ModelInput { output_hidden_states: true, last_logits_only: true, ..ModelInput::new(input) }, None)?;
        // The last entry is the final normed state (a norm's gain can reintroduce r): only the
        // residual stream entering each layer is orthogonal to r.
        let layers = out.hidden_states.len() - 1;
        for h in out.hidden_states.into_iter().take(layers) {
            let (_, v) = host_f32(h);
            for row in v.chunks(d) {
                let dot: f64 = row.iter().zip(direction).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum();
                worst = worst.max(dot.abs());
                norm_sum += row.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
                count += 1;
            }
        }
    }
    Ok(worst / (norm_sum / count.max(1) as f64))
}
