//! Sliding-window perplexity.

use burn::tensor::{activation::log_softmax, backend::Backend, Int, Tensor, TensorData};

use crate::error::{LlmError, Result};
use crate::model::CausalLm;

/// Per-token negative log-likelihoods and their aggregates.
#[derive(Debug, Clone)]
pub struct PerplexityReport {
    /// NLL (nats) of each scored token, in text order; token 0 is never scored.
    pub nll: Vec<f64>,
    /// `exp(mean nll)` over every scored token: the exact perplexity.
    pub perplexity: f64,
    /// transformers' documented recipe (each window's mean loss weighted by `trg_len - 1`),
    /// for comparison with figures computed that way.
    pub perplexity_hf_recipe: f64,
    /// Windows evaluated.
    pub windows: usize,
}

impl PerplexityReport {
    /// Tokens scored.
    pub fn n_tokens(&self) -> usize {
        self.nll.len()
    }
}

/// Sliding-window perplexity with transformers' recipe: windows of `context` tokens starting
/// every `stride`; each window scores only the tokens not scored by the previous one, with
/// the rest as context.
pub fn perplexity<B: Backend>(model: &CausalLm<B>, ids: &[u32], context: usize, stride: usize) -> Result<PerplexityReport> {
    if context < 2 || stride == 0 || stride > context {
        return Err(LlmError::config("stride", format!("need 2 <= context and 0 < stride <= context, got context {context}, stride {stride}")));
    }
    if context > model.config.max_position_embeddings {
        // The trained length, not a limit: RoPE (and its dynamic, YaRN, linear and llama3
        // scalings, which exist for this) is defined at every position, as in transformers.
        tracing::warn!(
            context,
            max_position_embeddings = model.config.max_position_embeddings,
            "perplexity windows longer than the trained context; quality may drop"
        );
    }
    if ids.len() < 2 {
        return Err(LlmError::Shape { what: "ids".into(), expected: "at least 2 tokens".into(), got: vec![ids.len()] });
    }
    let device = model.device();
    let (mut nll, mut recipe_sum, mut recipe_n, mut windows) = (vec![], 0.0f64, 0usize, 0);
    let mut prev_end = 0;
    let mut begin = 0;
    while begin < ids.len() {
        let end = (begin + context).min(ids.len());
        let trg_len = end - prev_end;
        let window = &ids[begin..end];
        let data = TensorData::new(window.iter().map(|&i| i as i64).collect(), [1, window.len()]);
        let logits = model.forward(Tensor::<B, 2, Int>::from_data(data, &device));
        // [1, n, vocab] -> log-probs of the next token at each position
        let log_probs: Vec<f32> = log_softmax(logits, 2).into_data().iter::<f32>().collect();
        let vocab = model.config.vocab_size;
        // Labels are the last trg_len tokens; after the shift, position j predicts token j + 1.
        let first_label = (window.len() - trg_len).max(1);
        let window_nll: Vec<f64> = (first_label..window.len())
            .map(|t| -(log_probs[(t - 1) * vocab + window[t] as usize] as f64))
            .collect();
        let mean = window_nll.iter().sum::<f64>() / window_nll.len().max(1) as f64;
        recipe_sum += mean * (trg_len - 1) as f64;
        recipe_n += trg_len - 1;
        nll.extend(window_nll);
        windows += 1;
        prev_end = end;
        if end == ids.len() {
            break;
        }
        begin += stride;
    }
    let perplexity = (nll.iter().sum::<f64>() / nll.len() as f64).exp();
    Ok(PerplexityReport { nll, perplexity, perplexity_hf_recipe: (recipe_sum / recipe_n as f64).exp(), windows })
}
