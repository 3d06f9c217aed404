//! [`LocalLm`]: lm-eval's requests answered by a [`CausalLm`] and its tokenizer, with the
//! tokenization, truncation and scoring of lm-eval's Hugging Face backend (`HFLM`).

use std::collections::HashMap;

use burn::tensor::{activation::log_softmax, backend::Backend, Int, Tensor, TensorData};

use super::{disjoint_rolling_windows, rolling_token_windows, GenerateRequest, LanguageModel, Loglikelihood, LoglikelihoodRequest};
use crate::error::{LlmError, Result};
use crate::generate::{GenerationConfig, Generator};
use crate::model::{CausalLm, ModelInput};
use crate::tokenizer::Tokenizer;

/// A local model answering lm-eval requests.
///
/// - `loglikelihood`: the context's trailing whitespace moves to the continuation; the pair is
///   encoded whole and split after the context's own tokens (`HFLM._encode_pair`); an empty
///   context is the prefix token (BOS, else EOS). Inputs keep their last `max_length + 1`
///   tokens, less the last.
/// - Requests are sorted longest first and scored in right-padded batches (causal attention
///   never looks right, so padding changes nothing), answers returned in request order.
/// - `generate_until`: greedy, the prompt left-truncated to `max_length - max_gen_toks`, the
///   decoded text cut before each stop string.
pub struct LocalLm<'a, B: Backend> {
    model: &'a CausalLm<B>,
    tokenizer: &'a Tokenizer,
    max_length: usize,
    batch_size: usize,
    prefix_token: u32,
    eos_token: Option<u32>,
    add_special_tokens: bool,
    name: String,
}

impl<'a, B: Backend> LocalLm<'a, B> {
    /// lm-eval's defaults: `max_length` is the model's `max_position_embeddings`, batches of 1,
    /// no special tokens added when encoding (`add_bos_token=False`).
    pub fn new(model: &'a CausalLm<B>, tokenizer: &'a Tokenizer) -> Result<Self> {
        let bos = tokenizer.bos_token().and_then(|t| tokenizer.token_to_id(t)).or(model.config.bos_token_id);
        let eos = tokenizer.eos_token_id().or(model.config.eos_token_ids.first().copied());
        let prefix_token = bos.or(eos).ok_or_else(|| {
            LlmError::config("bos_token_id", "lm-eval conditions an empty context on BOS (else EOS); the tokenizer has neither")
        })?;
        Ok(Self {
            model,
            tokenizer,
            max_length: model.config.max_position_embeddings,
            batch_size: 1,
            prefix_token,
            eos_token: eos,
            add_special_tokens: false,
            name: "model".into(),
        })
    }

    /// Requests scored per forward pass (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Tokens per forward pass (lm-eval's `max_length`).
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length.max(2);
        self
    }

    /// Encode with the tokenizer's special tokens (lm-eval's `add_bos_token=True`).
    pub fn with_add_special_tokens(mut self, add: bool) -> Self {
        self.add_special_tokens = add;
        self
    }

    /// The name reports show.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The token an empty context (and the first rolling window) is conditioned on.
    pub fn prefix_token(&self) -> u32 {
        self.prefix_token
    }

    /// `tok_encode`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode(text, self.add_special_tokens)?.ids)
    }

    /// `_encode_pair`, with lm-eval's handling of an empty context: `(context ids, continuation ids)`.
    pub fn encode_pair(&self, context: &str, continuation: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        if context.is_empty() {
            return Ok((vec![self.prefix_token], self.encode(continuation)?));
        }
        let kept = context.trim_end_matches(char::is_whitespace).len();
        let (context, moved) = context.split_at(kept);
        let whole = self.encode(&format!("{context}{moved}{continuation}"))?;
        let n_context = self.encode(context)?.len();
        Ok((whole[..n_context.min(whole.len())].to_vec(), whole[n_context.min(whole.len())..].to_vec()))
    }

    /// Scores token pairs: `(context, continuation)` -> log-likelihood and greedy flag.
    pub fn score_tokens(&self, pairs: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Loglikelihood>> {
        for (i, (context, continuation)) in pairs.iter().enumerate() {
            if context.is_empty() || continuation.is_empty() || continuation.len() > self.max_length {
                return Err(LlmError::Shape {
                    what: format!("loglikelihood request {i} (context, continuation) tokens"),
                    expected: format!("a non-empty context and 1..={} continuation tokens", self.max_length),
                    got: vec![context.len(), continuation.len()],
                });
            }
        }
        // Requests whose model inputs (context + continuation minus its last token) and
        // continuation lengths are equal read the same logits at the same positions: one row
        // serves them all (lm-eval's `logits_cache` does this for one-token continuations,
        // the common multiple-choice case: one forward per question instead of per choice).
        let mut rows: Vec<(Vec<u32>, Vec<usize>)> = vec![];
        let mut row_of: HashMap<(Vec<u32>, usize), usize> = HashMap::new();
        for (i, (context, continuation)) in pairs.iter().enumerate() {
            let all = [context.as_slice(), continuation.as_slice()].concat();
            let inputs = all[all.len().saturating_sub(self.max_length + 1)..all.len() - 1].to_vec();
            let key = (inputs, continuation.len());
            match row_of.get(&key) {
                Some(&r) => rows[r].1.push(i),
                None => {
                    row_of.insert(key.clone(), rows.len());
                    rows.push((key.0, vec![i]));
                }
            }
        }
        // lm-eval's order: longest first, then by the tokens (ties keep a fixed order).
        rows.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let mut out = vec![Loglikelihood { logprob: 0.0, is_greedy: false }; pairs.len()];
        for chunk in rows.chunks(self.batch_size) {
            let batch: Vec<(&[u32], Vec<&[u32]>)> =
                chunk.iter().map(|(inputs, members)| (inputs.as_slice(), members.iter().map(|&i| pairs[i].1.as_slice()).collect())).collect();
            for ((_, members), scored) in chunk.iter().zip(self.score_batch(&batch)?) {
                for (&i, ll) in members.iter().zip(scored) {
                    out[i] = ll;
                }
            }
        }
        Ok(out)
    }

    /// One right-padded forward over rows of `(inputs, continuations)`: the last
    /// `continuation.len()` positions of each row predict each of its continuations (they
    /// differ at most in their last token); one answer per continuation.
    fn score_batch(&self, rows: &[(&[u32], Vec<&[u32]>)]) -> Result<Vec<Vec<Loglikelihood>>> {
        let width = rows.iter().map(|(r, _)| r.len()).max().unwrap_or(0);
        let device = self.model.device();
        let mut flat = Vec::with_capacity(rows.len() * width);
        for (r, _) in rows {
            flat.extend(r.iter().map(|&t| t as i64));
            flat.extend(std::iter::repeat_n(0i64, width - r.len()));
        }
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [rows.len(), width]), &device);
        // [batch, width, d_model]; the head runs only on the positions that predict a
        // continuation token.
        let hidden = self.model.forward_hidden(ModelInput::new(ids), None)?;
        let scored_len = |(_, c): &(&[u32], Vec<&[u32]>)| c[0].len();
        let picked: Vec<Tensor<B, 3>> = rows
            .iter()
            .enumerate()
            .map(|(b, row)| hidden.clone().narrow(0, b, 1).narrow(1, row.0.len() - scored_len(row), scored_len(row)))
            .collect();
        let vocab = self.model.config.vocab_size;
        // [1, sum of continuation lengths, vocab] log-probabilities, f32 as lm-eval's log_softmax.
        let logp: Vec<f32> = log_softmax(self.model.logits(Tensor::cat(picked, 1)), 2).into_data().iter::<f32>().collect();
        let mut positions = logp.chunks_exact(vocab);
        let mut out = vec![];
        for row in rows {
            let row_logp: Vec<&[f32]> = positions.by_ref().take(scored_len(row)).collect();
            let score = |continuation: &&[u32]| {
                let (mut ll, mut greedy) = (0.0f64, true);
                for (&target, p) in continuation.iter().zip(&row_logp) {
                    ll += p[target as usize] as f64;
                    greedy &= crate::generate::argmax(p) == target;
                }
                Loglikelihood { logprob: ll, is_greedy: greedy }
            };
            out.push(row.1.iter().map(score).collect());
        }
        Ok(out)
    }
}

impl<B: Backend> LanguageModel for LocalLm<'_, B> {
    fn loglikelihood(&self, requests: &[LoglikelihoodRequest]) -> Result<Vec<Loglikelihood>> {
        let pairs = requests.iter().map(|r| self.encode_pair(&r.context, &r.continuation)).collect::<Result<Vec<_>>>()?;
        self.score_tokens(&pairs)
    }

    fn loglikelihood_rolling(&self, texts: &[String]) -> Result<Vec<f64>> {
        let mut pairs = vec![];
        let mut owner = vec![];
        for (i, text) in texts.iter().enumerate() {
            let tokens = self.encode(text)?;
            for w in disjoint_rolling_windows(rolling_token_windows(&tokens, self.prefix_token, self.max_length, 1)) {
                pairs.push(w);
                owner.push(i);
            }
        }
        let mut out = vec![0.0; texts.len()];
        for (ll, i) in self.score_tokens(&pairs)?.into_iter().zip(owner) {
            out[i] += ll.logprob;
        }
        Ok(out)
    }

    fn generate_until(&self, requests: &[GenerateRequest]) -> Result<Vec<String>> {
        let eos_text = match self.eos_token {
            Some(id) => Some(self.tokenizer.decode(&[id], false)?),
            None => None,
        };
        requests.iter().map(|r| self.generate_one(r, eos_text.as_deref())).collect()
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

impl<B: Backend> LocalLm<'_, B> {
    fn generate_one(&self, request: &GenerateRequest, eos_text: Option<&str>) -> Result<String> {
        let mut until = request.until.clone();
        if let Some(eos) = eos_text {
            if !until.iter().any(|u| u == eos) {
                until.push(eos.to_string());
            }
        }
        let ids = self.encode(&request.context)?;
        let keep = self.max_length.saturating_sub(request.max_gen_toks).max(1);
        let prompt = ids[ids.len().saturating_sub(keep)..].to_vec();
        let config = GenerationConfig {
            max_new_tokens: request.max_gen_toks,
            do_sample: false,
            eos_token_id: self.eos_token.into_iter().collect(),
            stop_strings: until.iter().filter(|u| !u.is_empty()).cloned().collect(),
            ..Default::default()
        };
        let out = Generator::new(self.model, config)?.with_tokenizer(self.tokenizer).generate(&[prompt])?;
        let mut text = self.tokenizer.decode(&out.sequences[0], true)?;
        for term in until.iter().filter(|u| !u.is_empty()) {
            if let Some(at) = text.find(term.as_str()) {
                text.truncate(at);
            }
        }
        Ok(text)
    }
}
