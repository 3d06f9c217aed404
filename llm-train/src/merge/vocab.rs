//! `tokenizer_source`: the output vocabulary (the base's, one model's, or the union of all) and
//! each input's embedding rows permuted to it, with rows a model lacks resolved as mergekit's
//! `PermutedEmbeddings` does: a token only one model has takes that model's row, one the base
//! has takes the base's, others the mean of the models that have it, none a zero row.

use std::collections::HashMap;
use std::path::Path;

use tokenizers::{AddedToken, Tokenizer};

use super::config::MergeConfig;
use super::plan::{InputModel, Plan, PlannedTensor, Weights};
use crate::error::{Result, TrainError};

/// Tokenizer files copied beside a merge.
const TOKENIZER_FILES: [&str; 8] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
];

/// The output vocabulary and, per input model, the model's id of each output token.
pub struct OutputVocab {
    tokens: Vec<String>,
    /// `perm[m][out_id]`: model m's row for that token, if it has one.
    perm: Vec<Vec<Option<usize>>>,
    base: Option<usize>,
    /// The output tokenizer (the source's, extended by the union's added tokens).
    tokenizer: Tokenizer,
    /// The model whose tokenizer files are the template.
    source: usize,
}

impl OutputVocab {
    /// `None` when the configuration has no `tokenizer_source` (embeddings then merge on their
    /// common rows).
    pub fn build(config: &MergeConfig, plan: &Plan) -> Result<Option<Self>> {
        let Some(source) = config.tokenizer_source.as_deref() else { return Ok(None) };
        let base = config.base_model.as_deref().and_then(|b| plan.models.iter().position(|m| m.name == b));
        let vocabs = plan.models.iter().map(model_vocab).collect::<Result<Vec<_>>>()?;
        let (source_idx, union) = match source {
            "base" => (base.unwrap_or(plan.reference), false),
            "union" => (base.unwrap_or(plan.reference), true),
            name => (
                plan.models.iter().position(|m| m.name == name).ok_or_else(|| {
                    TrainError::config("tokenizer_source", format!("`{name}` is none of `base`, `union` or a model of the merge"))
                })?,
                false,
            ),
        };
        let mut tokenizer = vocabs[source_idx].1.clone();
        let mut tokens = by_id(&vocabs[source_idx].0);
        let source_name = &plan.models[source_idx].name;
        if union {
            let mut added = vec![];
            for (m, (vocab, tok)) in vocabs.iter().enumerate().filter(|(m, _)| *m != source_idx) {
                let specials: HashMap<String, bool> = tok.get_added_tokens_decoder().values().map(|a| (a.content.clone(), a.special)).collect();
                for token in by_id(vocab) {
                    if !tokens.contains(&token) {
                        tracing::debug!(model = %plan.models[m].name, %token, "union adds a token");
                        let special = specials.get(&token).copied().unwrap_or(false);
                        added.push(AddedToken::from(token.clone(), special));
                        tokens.push(token);
                    }
                }
            }
            tokenizer.add_tokens(&added);
            let mut full = tokenizer.get_vocab(true);
            let rows = plan.models[source_idx].config.vocab_size;
            full.retain(|t, id| (*id as usize) < rows || added.iter().any(|a| &a.content == t));
            tokens = by_id(&full);
        }
        if let Some((i, t)) = tokens.iter().enumerate().find(|(i, t)| vocabs_id(&tokenizer, t) != Some(*i as u32)) {
            return Err(TrainError::config("tokenizer_source", format!("the vocabulary of {source_name} has a gap: id {i} is `{t}` by order but not by id")));
        }
        let index: HashMap<&str, usize> = tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i)).collect();
        let perm = vocabs
            .iter()
            .map(|(v, _)| {
                let mut p = vec![None; tokens.len()];
                for (tok, &id) in v {
                    if let Some(&out) = index.get(tok.as_str()) {
                        p[out] = Some(id as usize);
                    }
                }
                p
            })
            .collect();
        Ok(Some(Self { tokens, perm, base, tokenizer, source: source_idx }))
    }

    /// Size of the output vocabulary.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Sets every embedding and head tensor's rows to the output vocabulary.
    pub fn retarget(&self, plan: &mut Plan) {
        for t in plan.tensors.iter_mut().filter(|t| t.is_embed) {
            t.shape[0] = self.len();
        }
    }

    /// Each source's rows in output order (`inputs[k]`: `[model vocab, d]` of source k), the
    /// rows a model lacks filled as mergekit fills them.
    pub fn resolve(&self, t: &PlannedTensor, inputs: &[Vec<f32>], d: usize) -> Vec<Vec<f32>> {
        let models: Vec<usize> = t.sources.iter().map(|s| s.0).collect();
        let row = |k: usize, id: usize| &inputs[k][id * d..(id + 1) * d];
        let mut out: Vec<Vec<f32>> = models.iter().map(|_| vec![0.0; self.len() * d]).collect();
        for tok in 0..self.len() {
            // (source, its row) for each source that has the token.
            let present: Vec<(usize, usize)> =
                (0..models.len()).filter_map(|k| self.perm[models[k]][tok].filter(|id| id * d < inputs[k].len()).map(|id| (k, id))).collect();
            let fallback: Vec<f32> = match present.as_slice() {
                [] => vec![0.0; d],
                [(k, id)] => row(*k, *id).to_vec(),
                _ => match self.base.and_then(|b| present.iter().find(|(k, _)| models[*k] == b)) {
                    Some(&(k, id)) => row(k, id).to_vec(),
                    None => {
                        let mut mean = vec![0.0f32; d];
                        for &(k, id) in &present {
                            mean.iter_mut().zip(row(k, id)).for_each(|(a, &b)| *a += b);
                        }
                        mean.iter_mut().for_each(|a| *a /= present.len() as f32);
                        mean
                    }
                },
            };
            for (k, dst) in out.iter_mut().enumerate() {
                let src = match present.iter().find(|(p, _)| *p == k) {
                    Some(&(_, id)) => row(k, id),
                    None => fallback.as_slice(),
                };
                dst[tok * d..(tok + 1) * d].copy_from_slice(src);
            }
        }
        out
    }
}

/// A model's tokenizer and its vocabulary (with added tokens) cut to its embedding rows.
fn model_vocab(model: &InputModel) -> Result<(HashMap<String, u32>, Tokenizer)> {
    let tok = match &model.weights {
        Weights::Gguf(g) => llm_core::Tokenizer::from_gguf(g.file())?.inner().clone(),
        Weights::Safetensors(_) => {
            let path = model.dir.join("tokenizer.json");
            Tokenizer::from_file(&path)
                .map_err(|e| TrainError::Checkpoint { path: path.clone(), message: format!("tokenizer_source needs every model's tokenizer.json: {e}") })?
        }
    };
    let mut vocab = tok.get_vocab(true);
    vocab.retain(|_, id| (*id as usize) < model.config.vocab_size);
    Ok((vocab, tok))
}

fn vocabs_id(tok: &Tokenizer, token: &str) -> Option<u32> {
    tok.token_to_id(token)
}

/// Tokens ordered by id.
fn by_id(vocab: &HashMap<String, u32>) -> Vec<String> {
    let mut v: Vec<(&String, &u32)> = vocab.iter().collect();
    v.sort_by_key(|(_, &id)| id);
    v.into_iter().map(|(t, _)| t.clone()).collect()
}

/// Copies the tokenizer of the tokenizer source (else the reference model) into `dir`; a union
/// writes its extended `tokenizer.json`; `chat_template` goes into `tokenizer_config.json`.
pub fn write_tokenizer(dir: &Path, config: &MergeConfig, plan: &Plan, vocab: Option<&OutputVocab>) -> Result<()> {
    let model = &plan.models[vocab.map_or(plan.reference, |v| v.source)];
    let from = &model.dir;
    if let Weights::Gguf(g) = &model.weights {
        // A GGUF without `tokenizer.ggml.*` (weights only) gives a merge without a tokenizer,
        // as mergekit does for a model whose tokenizer does not load.
        match llm_core::Tokenizer::from_gguf(g.file()) {
            Ok(tok) => tok.save_dir(dir)?,
            Err(e) => tracing::warn!(model = %model.name, "no tokenizer written: {e}"),
        }
    }
    for name in TOKENIZER_FILES.iter().filter(|_| !model.is_gguf()) {
        let src = from.join(name);
        if src.exists() {
            std::fs::copy(&src, dir.join(name)).map_err(|e| TrainError::io(&src, e))?;
        }
    }
    if let Some(v) = vocab {
        let path = dir.join("tokenizer.json");
        v.tokenizer.save(&path, true).map_err(|e| TrainError::Checkpoint { path: path.clone(), message: e.to_string() })?;
    }
    if let Some(template) = &config.chat_template {
        let path = dir.join("tokenizer_config.json");
        let mut json: serde_json::Value = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint { path: path.clone(), message: e.to_string() })?,
            Err(_) => serde_json::json!({}),
        };
        json["chat_template"] = template.clone().into();
        llm_core::io::write_json(&path, &json)?;
    }
    Ok(())
}
