//! `generation_config.json` with transformers' names and defaults.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{LlmError, Result};

/// Decoding settings. Field names and defaults follow transformers' `GenerationConfig`;
/// `seed`, `frequency_penalty`, `presence_penalty`, `stop_strings` and `max_context` are
/// additions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// New tokens to generate at most.
    pub max_new_tokens: usize,
    /// Sample from the processed distribution (otherwise greedy or beam search).
    pub do_sample: bool,
    /// Softmax temperature (sampling only).
    pub temperature: f32,
    /// Keep the k most likely tokens (0: off; sampling only).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches top_p (1.0: off; sampling only).
    pub top_p: f32,
    /// Drop tokens below `min_p` times the top probability (sampling only).
    pub min_p: Option<f32>,
    /// Locally typical sampling mass (1.0: off; sampling only).
    pub typical_p: f32,
    /// Divide positive / multiply negative logits of seen tokens (1.0: off).
    pub repetition_penalty: f32,
    /// Subtract `frequency_penalty * count` of each generated token (OpenAI semantics).
    pub frequency_penalty: f32,
    /// Subtract `presence_penalty` from every generated token.
    pub presence_penalty: f32,
    /// Forbid repeating any n-gram of this size (0: off).
    pub no_repeat_ngram_size: usize,
    /// Token sequences that must never be generated (single tokens are banned outright).
    pub bad_words_ids: Vec<Vec<u32>>,
    /// Beams (1: no beam search).
    pub num_beams: usize,
    /// Exponent of the length normalisation of beam scores.
    pub length_penalty: f32,
    /// Beam search stops when `num_beams` hypotheses are done (`true`), or as transformers'
    /// heuristic decides (`false`).
    #[serde(deserialize_with = "early_stopping")]
    pub early_stopping: bool,
    /// Sequences to return per prompt (at most `num_beams` for beam search).
    pub num_return_sequences: usize,
    /// Stop tokens.
    #[serde(deserialize_with = "ids")]
    pub eos_token_id: Vec<u32>,
    /// Padding token for finished rows.
    #[serde(deserialize_with = "opt_id")]
    pub pad_token_id: Option<u32>,
    /// Stop when the generated text ends with one of these.
    pub stop_strings: Vec<String>,
    /// RNG seed for sampling (same seed, same tokens).
    pub seed: u64,
    /// The KV cache's positions (prompt plus new tokens) at most: a longer prompt is
    /// [`LlmError::ContextOverflow`] and generation stops there. `None` (the default): no
    /// limit but `max_new_tokens`, the cache growing as tokens come. The model's
    /// `max_position_embeddings` is its trained length, not a limit: running past it works
    /// (RoPE scaling is defined there) with a warning, as transformers does.
    pub max_context: Option<usize>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 20,
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            min_p: None,
            typical_p: 1.0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            no_repeat_ngram_size: 0,
            bad_words_ids: vec![],
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: false,
            num_return_sequences: 1,
            eos_token_id: vec![],
            pad_token_id: None,
            stop_strings: vec![],
            seed: 0,
            max_context: None,
        }
    }
}

impl GenerationConfig {
    /// Greedy decoding of `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self { max_new_tokens, ..Self::default() }
    }

    /// Reads `generation_config.json`; absent fields keep transformers' defaults.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| LlmError::io(path, e))?;
        let config: Self =
            serde_json::from_str(&text).map_err(|source| LlmError::Json { path: path.to_path_buf(), source })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges; errors name the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| Err(LlmError::config(field, msg));
        if self.do_sample && !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad("temperature", format!("must be > 0 when sampling, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", format!("must be in (0, 1], got {}", self.top_p));
        }
        if !(self.typical_p > 0.0 && self.typical_p <= 1.0) {
            return bad("typical_p", format!("must be in (0, 1], got {}", self.typical_p));
        }
        if let Some(m) = self.min_p {
            if !(0.0..=1.0).contains(&m) {
                return bad("min_p", format!("must be in [0, 1], got {m}"));
            }
        }
        if self.repetition_penalty.is_nan() || self.repetition_penalty <= 0.0 {
            return bad("repetition_penalty", format!("must be > 0, got {}", self.repetition_penalty));
        }
        if self.num_beams == 0 || self.num_return_sequences == 0 {
            return bad("num_beams", "num_beams and num_return_sequences must be >= 1".into());
        }
        if self.num_beams > 1 && self.num_return_sequences > self.num_beams {
            return bad(
                "num_return_sequences",
                format!("{} exceeds num_beams {}", self.num_return_sequences, self.num_beams),
            );
        }
        if self.max_context == Some(0) {
            return bad("max_context", "must be at least 1".into());
        }
        if self.num_beams > 1 && self.do_sample {
            return bad("do_sample", "beam sampling is not supported; use num_beams = 1 or do_sample = false".into());
        }
        Ok(())
    }
}

fn ids<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<u32>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().and_then(|v| u32::try_from(v).ok()).into_iter().collect(),
        Value::Array(a) => a.iter().filter_map(Value::as_u64).filter_map(|v| u32::try_from(v).ok()).collect(),
        _ => vec![],
    })
}

fn opt_id<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    Ok(Value::deserialize(d)?.as_u64().and_then(|v| u32::try_from(v).ok()))
}

/// transformers accepts `true`, `false` or `"never"` (which behaves as false here).
fn early_stopping<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    Ok(matches!(Value::deserialize(d)?, Value::Bool(true)))
}
