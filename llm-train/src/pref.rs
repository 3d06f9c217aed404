//! Preference data (`prompt` / `chosen` / `rejected`) tokenized the way trl's DPO and ORPO
//! trainers do, batched chosen-then-rejected, and the per-sequence log-probabilities both
//! losses are built from.
//!
//! Tokenization (trl 1.x): a chat prompt is rendered with the generation prompt and each
//! completion is the rest of the full conversation's text; the prompt and each completion are
//! tokenized separately without special tokens; BOS is prepended to the prompt when the
//! tokenizer has one and the prompt does not start with it; EOS is appended to each
//! completion. `max_prompt_length` keeps the prompt's last tokens, `max_completion_length` the
//! completion's first, `max_length` the sequence's first.

use std::path::Path;

use burn::tensor::activation::log_softmax;
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use llm_core::{CausalLm, ModelInput, Tokenizer};
use serde_json::Value;

use crate::data::Turns;
use crate::error::{Result, TrainError};

/// One preference record.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceExample {
    /// Shared context.
    pub prompt: Turns,
    /// The preferred completion.
    pub chosen: Turns,
    /// The dispreferred completion.
    pub rejected: Turns,
}

/// Reads preference JSONL (`prompt`, `chosen`, `rejected` as strings or message lists). A line
/// of another shape, or whose chosen equals its rejected completion (no preference to learn, a
/// silent zero gradient), is an error naming the line.
pub fn load_preferences(path: impl AsRef<Path>) -> Result<Vec<PreferenceExample>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    parse_preferences(&text, path)
}

/// [`load_preferences`] on text already read.
pub fn parse_preferences(text: &str, path: &Path) -> Result<Vec<PreferenceExample>> {
    crate::data::parse_records(text, path, PreferenceExample::from_json)
}

impl PreferenceExample {
    /// Parses one record; the message says what is wrong.
    pub fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let field = |k: &str| -> std::result::Result<Turns, String> {
            match v.get(k) {
                Some(Value::String(s)) => Ok(Turns::Text(s.clone())),
                Some(x @ Value::Array(_)) => crate::data::messages(x).map(Turns::Chat),
                Some(_) => Err(format!("`{k}` must be a string or a list of messages")),
                None => Err(format!("missing `{k}`; a preference record has `prompt`, `chosen` and `rejected`")),
            }
        };
        let ex = Self { prompt: field("prompt")?, chosen: field("chosen")?, rejected: field("rejected")? };
        let kinds = [&ex.prompt, &ex.chosen, &ex.rejected].map(|t| matches!(t, Turns::Text(_)));
        if kinds.iter().any(|&k| k != kinds[0]) {
            return Err("`prompt`, `chosen` and `rejected` must all be text or all be message lists".into());
        }
        if ex.chosen == ex.rejected {
            return Err("`chosen` equals `rejected`: the pair carries no preference (its DPO gradient is zero)".into());
        }
        Ok(ex)
    }
}

/// A tokenized pair: prompt ids and the two completions' ids (each ending in EOS).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizedPair {
    /// Prompt (with BOS).
    pub prompt: Vec<u32>,
    /// Chosen completion.
    pub chosen: Vec<u32>,
    /// Rejected completion.
    pub rejected: Vec<u32>,
    /// Reference log-probs `(chosen, rejected)` when precomputed.
    pub reference: Option<(f64, f64)>,
}

/// How many pairs truncation touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruncationReport {
    /// Prompts cut to `max_prompt_length` (their first tokens dropped).
    pub prompts: usize,
    /// Completions cut to `max_completion_length`.
    pub completions: usize,
    /// Sequences cut to `max_length`.
    pub sequences: usize,
}

/// Tokenization settings (trl's `DPOConfig` / `ORPOConfig` names).
#[derive(Debug, Clone)]
pub struct PrefTokenizer<'a> {
    /// Tokenizer with the chat template.
    pub tokenizer: &'a Tokenizer,
    /// Prompt + completion at most this long (first tokens kept).
    pub max_length: Option<usize>,
    /// Prompt at most this long (last tokens kept).
    pub max_prompt_length: Option<usize>,
    /// Completion at most this long (first tokens kept).
    pub max_completion_length: Option<usize>,
}

impl PrefTokenizer<'_> {
    /// Tokenizes every pair and reports how many were truncated.
    pub fn tokenize_all(&self, data: &[PreferenceExample]) -> Result<(Vec<TokenizedPair>, TruncationReport)> {
        let mut report = TruncationReport::default();
        let pairs = data
            .iter()
            .enumerate()
            .map(|(i, e)| self.tokenize(e, &mut report).map_err(|err| TrainError::config(format!("pair {i}"), err.to_string())))
            .collect::<Result<Vec<_>>>()?;
        if report != TruncationReport::default() {
            tracing::warn!(?report, "preference data truncated");
        }
        Ok((pairs, report))
    }

    /// One pair (counting truncations into `report`).
    pub fn tokenize(&self, e: &PreferenceExample, report: &mut TruncationReport) -> Result<TokenizedPair> {
        let (prompt_text, chosen_text, rejected_text) = match (&e.prompt, &e.chosen, &e.rejected) {
            (Turns::Text(p), Turns::Text(c), Turns::Text(r)) => (p.clone(), c.clone(), r.clone()),
            (Turns::Chat(p), Turns::Chat(c), Turns::Chat(r)) => {
                let prompt = self.tokenizer.apply_chat_template(p, true)?;
                let rest = |c: &[llm_core::chat::Message]| -> Result<String> {
                    let full = self.tokenizer.apply_chat_template(&[p.as_slice(), c].concat(), false)?;
                    full.strip_prefix(&prompt).map(str::to_string).ok_or_else(|| {
                        TrainError::config(
                            "chat template",
                            "the rendered conversation does not start with the prompt rendered with the generation prompt, so the completion cannot be cut from it",
                        )
                    })
                };
                let (c, r) = (rest(c)?, rest(r)?);
                (prompt, c, r)
            }
            _ => return Err(TrainError::config("pair", "mixed text and message lists")),
        };
        let mut prompt = self.tokenizer.encode(&prompt_text, false)?.ids;
        if let Some(bos) = self.tokenizer.bos_token().and_then(|b| self.tokenizer.token_to_id(b)) {
            if prompt.first() != Some(&bos) {
                prompt.insert(0, bos);
            }
        }
        let eos = self.tokenizer.eos_token_id();
        let completion = |text: &str| -> Result<Vec<u32>> {
            let mut ids = self.tokenizer.encode(text, false)?.ids;
            ids.extend(eos);
            Ok(ids)
        };
        let (mut chosen, mut rejected) = (completion(&chosen_text)?, completion(&rejected_text)?);
        if let Some(m) = self.max_prompt_length.filter(|&m| prompt.len() > m) {
            prompt.drain(..prompt.len() - m);
            report.prompts += 1;
        }
        if let Some(m) = self.max_completion_length {
            if chosen.len() > m || rejected.len() > m {
                report.completions += 1;
            }
            chosen.truncate(m);
            rejected.truncate(m);
        }
        if let Some(m) = self.max_length {
            let room = m.saturating_sub(prompt.len());
            if prompt.len() + chosen.len().max(rejected.len()) > m {
                report.sequences += 1;
            }
            if prompt.len() > m {
                prompt.truncate(m);
            }
            chosen.truncate(room);
            rejected.truncate(room);
        }
        Ok(TokenizedPair { prompt, chosen, rejected, reference: None })
    }
}

/// Pairs as one model batch: rows `0..n` are prompt + chosen, rows `n..2n` prompt + rejected,
/// right-padded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefBatch {
    /// `[2n][len]`
    pub input_ids: Vec<Vec<u32>>,
    /// `[2n][len]`, false at padding.
    pub attention_mask: Vec<Vec<bool>>,
    /// `[2n][len]`, true on completion tokens (EOS included).
    pub completion_mask: Vec<Vec<bool>>,
    /// Pairs `n`.
    pub n_pairs: usize,
}

impl PrefBatch {
    /// Chosen rows, then rejected rows, padded with `pad_id`.
    pub fn new(pairs: &[&TokenizedPair], pad_id: u32) -> Self {
        let rows: Vec<(&[u32], &[u32])> = pairs
            .iter()
            .map(|p| (p.prompt.as_slice(), p.chosen.as_slice()))
            .chain(pairs.iter().map(|p| (p.prompt.as_slice(), p.rejected.as_slice())))
            .collect();
        let len = rows.iter().map(|(p, c)| p.len() + c.len()).max().unwrap_or(0);
        let mut batch = Self { input_ids: vec![], attention_mask: vec![], completion_mask: vec![], n_pairs: pairs.len() };
        for (p, c) in rows {
            let n = p.len() + c.len();
            let mut ids: Vec<u32> = p.iter().chain(c).copied().collect();
            ids.resize(len, pad_id);
            batch.input_ids.push(ids);
            batch.attention_mask.push((0..len).map(|i| i < n).collect());
            batch.completion_mask.push((0..len).map(|i| i >= p.len() && i < n).collect());
        }
        batch
    }

    /// The model input on `device`.
    pub fn model_input<B: Backend>(&self, device: &B::Device) -> ModelInput<B> {
        let (rows, len) = (self.input_ids.len(), self.input_ids.first().map_or(0, Vec::len));
        let flat: Vec<i64> = self.input_ids.iter().flatten().map(|&x| x as i64).collect();
        let mut input = ModelInput::new(Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [rows, len]), device));
        if self.attention_mask.iter().flatten().any(|&m| !m) {
            input.attention_mask = Some(self.attention_mask.clone());
        }
        input
    }

    /// Non-padding tokens.
    pub fn n_tokens(&self) -> usize {
        self.attention_mask.iter().flatten().filter(|&&m| m).count()
    }
}

/// Pairs in a step: what preference losses are averaged over (an error when none).
pub(crate) fn pair_count(micro_batches: &[Vec<&TokenizedPair>]) -> Result<f64> {
    let n: usize = micro_batches.iter().map(Vec::len).sum();
    if n == 0 {
        return Err(TrainError::config("batch", "no preference pairs"));
    }
    Ok(n as f64)
}

/// A 1-D tensor's values on the host.
pub(crate) fn host<B: Backend>(t: Tensor<B, 1>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().expect("converted to f64")
}

/// Per-sequence log-probabilities of a [`PrefBatch`].
#[derive(Debug, Clone)]
pub struct SequenceLogps<B: Backend> {
    /// `[2n]`: sum of `log p(token)` over each row's completion tokens (trl's `logps`).
    pub sum: Tensor<B, 1>,
    /// Completion tokens per row (divide `sum` for the mean variant ORPO and IPO use).
    pub lengths: Vec<usize>,
    /// `[1]`: summed NLL over every non-padding target of the chosen rows, prompt included
    /// (ORPO's SFT term), and their count.
    pub chosen_nll_sum: Tensor<B, 1>,
    /// Count behind `chosen_nll_sum`.
    pub chosen_tokens: usize,
    /// Mean logit over the completion tokens of the chosen and of the rejected rows (trl's
    /// `logits/chosen`, `logits/rejected`).
    pub mean_logits: (f64, f64),
}

/// Runs the model over the batch and gathers every non-padding next-token log-prob once; the
/// LM head only sees those rows.
pub fn sequence_logps<B: Backend>(model: &CausalLm<B>, batch: &PrefBatch) -> Result<SequenceLogps<B>> {
    let device = model.device();
    let rows = batch.input_ids.len();
    let len = batch.input_ids.first().map_or(0, Vec::len);
    let hidden = model.forward_hidden(batch.model_input::<B>(&device), None)?;
    let d = hidden.dims()[2];
    // Position t of row r predicts token t+1; it counts when t+1 is a real token.
    let (mut idx, mut tgt, mut owner) = (vec![], vec![], vec![]);
    for r in 0..rows {
        for t in 0..len.saturating_sub(1) {
            if batch.attention_mask[r][t + 1] {
                idx.push((r * len + t) as i64);
                tgt.push(batch.input_ids[r][t + 1] as i64);
                owner.push((r, batch.completion_mask[r][t + 1]));
            }
        }
    }
    let n = idx.len();
    let idx_t = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [n]), &device);
    let tgt_t = Tensor::<B, 2, Int>::from_data(TensorData::new(tgt, [n, 1]), &device);
    let logits = model.logits(hidden.reshape([rows * len, d]).select(0, idx_t));
    let logp = log_softmax(logits.clone(), 1).gather(1, tgt_t).reshape([n, 1]);
    // One-hot selection matrices turn per-token values into per-row sums (differentiably).
    let mut completion = vec![0f32; rows * n];
    let mut chosen_all = vec![0f32; n];
    let mut lengths = vec![0usize; rows];
    let mut chosen_tokens = 0;
    for (k, &(r, in_completion)) in owner.iter().enumerate() {
        if in_completion {
            completion[r * n + k] = 1.0;
            lengths[r] += 1;
        }
        if r < batch.n_pairs {
            chosen_all[k] = 1.0;
            chosen_tokens += 1;
        }
    }
    let dtype = logp.dtype();
    let completion_t = Tensor::<B, 2>::from_data(TensorData::new(completion, [rows, n]), (&device, dtype));
    let chosen_t = Tensor::<B, 2>::from_data(TensorData::new(chosen_all, [1, n]), (&device, dtype));
    let sum = completion_t.clone().matmul(logp.clone()).reshape([rows]);
    let chosen_nll_sum = chosen_t.matmul(logp).reshape([1]).neg();
    // Mean logits over completion tokens, chosen vs rejected rows (metrics only).
    let row_logit_sums = completion_t.matmul(logits.mean_dim(1).detach()).reshape([rows]);
    let sums: Vec<f32> = llm_core::io::host_f32(row_logit_sums).1;
    let half = |range: std::ops::Range<usize>| {
        let tokens: usize = lengths[range.clone()].iter().sum();
        sums[range].iter().map(|&x| x as f64).sum::<f64>() / tokens.max(1) as f64
    };
    let mean_logits = (half(0..batch.n_pairs), half(batch.n_pairs..rows));
    Ok(SequenceLogps { sum, lengths, chosen_nll_sum, chosen_tokens, mean_logits })
}
