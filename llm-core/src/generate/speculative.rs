//! Speculative decoding: a cheap drafter proposes `k` tokens, the target model scores all of
//! them in one forward pass, and the exact acceptance rule keeps the output distributed as the
//! target's alone (Leviathan et al. 2023; Chen et al. 2023).
//!
//! - Greedy: the longest prefix of the draft the target's argmax agrees with, then the
//!   target's own token: the output is plain greedy's, token for token.
//! - Sampling: draft token `d` drawn from `q` is kept with probability `min(1, p(d) / q(d))`;
//!   on rejection the token comes from `max(0, p - q)` renormalised; when all `k` are kept a
//!   bonus token comes from the target's next distribution. Prompt lookup proposes tokens
//!   deterministically (`q` is a point mass), which the same rule covers.
//!
//! Both KV caches roll back past rejected tokens ([`KvCache::truncate`]). The draft length
//! adapts as transformers' `heuristic` schedule does: +2 after a fully accepted draft, -1
//! (at least 1) otherwise. A constraint ([`Generator::with_constraint`]) masks the draft's
//! and the target's distributions alike (prompt-lookup drafts are cut where it stops allowing
//! them), so constrained speculative output is constrained output, exactly.

use std::time::Instant;

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

use super::processors::log_softmax;
use super::constraint::MaskOutcome;
use super::{argmax, GenerationOutput, Generator, Sampler, StopReason, TokenMatcher};
use crate::error::{LlmError, Result};
use crate::model::{CausalLm, ModelInput};
use crate::nn::KvCache;

/// Where draft tokens come from.
pub enum Drafter<'d, B: Backend> {
    /// A smaller or quantized model with the target's vocabulary, decoding on its own cache.
    Model(&'d CausalLm<B>),
    /// Prompt lookup decoding: the tokens that followed the earliest earlier occurrence of
    /// the last `n`-gram (`n` from `max_ngram` down to 1) in the prompt and output.
    PromptLookup {
        /// Longest n-gram matched.
        max_ngram: usize,
    },
}

/// Draft lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeculativeConfig {
    /// Tokens drafted per target forward at the start.
    pub draft_tokens: usize,
    /// The cap on the adaptive length.
    pub max_draft_tokens: usize,
    /// Grow after a fully accepted draft, shrink after a rejection (transformers' heuristic).
    pub adaptive: bool,
}

impl Default for SpeculativeConfig {
    fn default() -> Self {
        Self { draft_tokens: 5, max_draft_tokens: 16, adaptive: true }
    }
}

/// What speculation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpeculationStats {
    /// Time spent drafting (the draft model's forwards, or the n-gram search).
    pub draft_time: std::time::Duration,
    /// Time spent in the target's verifying forwards (the prefill excluded).
    pub verify_time: std::time::Duration,
    /// Draft tokens proposed.
    pub drafted: usize,
    /// Draft tokens the target kept.
    pub accepted: usize,
    /// Forward passes of the target (the prefill included).
    pub target_forwards: usize,
    /// Tokens generated.
    pub new_tokens: usize,
}

impl SpeculationStats {
    /// accepted / drafted.
    pub fn acceptance_rate(&self) -> f64 {
        if self.drafted == 0 {
            0.0
        } else {
            self.accepted as f64 / self.drafted as f64
        }
    }

    /// Generated tokens per target forward pass (1.0 without speculation).
    pub fn tokens_per_forward(&self) -> f64 {
        self.new_tokens as f64 / self.target_forwards.max(1) as f64
    }
}

/// One drafted token and, for a model drafter, the draft distribution it was drawn from.
struct Draft {
    token: u32,
    q: Option<Vec<f32>>,
}

impl<'a, B: Backend> Generator<'a, B> {
    /// Generates for one prompt with speculative decoding; the output follows the same
    /// [`super::GenerationConfig`] (greedy or sampling, processors, stop conditions) as
    /// [`Generator::generate`].
    pub fn generate_speculative(
        &self,
        prompt: &[u32],
        drafter: Drafter<'_, B>,
        spec: SpeculativeConfig,
    ) -> Result<(GenerationOutput, SpeculationStats)> {
        self.check_speculation(prompt, &drafter, spec)?;
        let max_new = self.new_token_budget(prompt.len())?;
        let room = prompt.len().saturating_add(max_new).saturating_add(spec.max_draft_tokens).saturating_add(1);
        let mut run = Speculation {
            g: self,
            ids: prompt.to_vec(),
            prompt_len: prompt.len(),
            target: self.model.new_cache(1, room.min(prompt.len() + super::FIRST_ROOM)).with_limit(room),
            draft: match &drafter {
                Drafter::Model(m) => Some(m.new_cache(1, room.min(prompt.len() + super::FIRST_ROOM)).with_limit(room)),
                Drafter::PromptLookup { .. } => None,
            },
            sampler: Sampler::new(self.config.seed),
            stats: SpeculationStats::default(),
            stop: if max_new == 0 { Some(StopReason::Length) } else { None },
            max_new,
            matcher: self.constraint.as_ref().map(|c| c.matcher()),
        };
        let start = Instant::now();
        if run.stop.is_none() {
            run.first_token()?;
        }
        let prefill = start.elapsed();
        let mut decode_steps = vec![];
        let mut k = spec.draft_tokens;
        while run.stop.is_none() {
            let t = Instant::now();
            let remaining = max_new - run.generated();
            let drafts = run.draft(&drafter, k.min(remaining - 1))?;
            let verifying = Instant::now();
            run.stats.draft_time += verifying - t;
            let (drafted, kept, produced) = run.verify(drafts)?;
            run.stats.verify_time += verifying.elapsed();
            if spec.adaptive && drafted > 0 {
                k = if kept == drafted { (k + 2).min(spec.max_draft_tokens) } else { k.saturating_sub(1).max(1) };
            }
            let per_token = t.elapsed() / produced.max(1) as u32;
            decode_steps.extend(std::iter::repeat_n(per_token, produced));
        }
        let stats = SpeculationStats { new_tokens: run.generated(), ..run.stats };
        let out = GenerationOutput {
            sequences: vec![run.ids[run.prompt_len..].to_vec()],
            stop_reasons: vec![run.stop.unwrap_or(StopReason::Length)],
            prefill,
            decode_steps,
            prompt_tokens: prompt.len(),
            constraint_time: std::time::Duration::ZERO,
        };
        Ok((out, stats))
    }

    fn check_speculation(&self, prompt: &[u32], drafter: &Drafter<'_, B>, spec: SpeculativeConfig) -> Result<()> {
        if prompt.is_empty() {
            return Err(LlmError::Shape { what: "prompt".into(), expected: "a non-empty prompt".into(), got: vec![0] });
        }
        let vocab = self.model.config.vocab_size;
        if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(LlmError::Shape { what: "prompt ids".into(), expected: format!("ids < vocab_size {vocab}"), got: vec![bad as usize] });
        }
        if self.config.num_beams > 1 {
            return Err(LlmError::config("num_beams", "speculative decoding runs without beams"));
        }
        if spec.draft_tokens == 0 || spec.max_draft_tokens < spec.draft_tokens {
            return Err(LlmError::config(
                "draft_tokens",
                format!("need 1 <= draft_tokens ({}) <= max_draft_tokens ({})", spec.draft_tokens, spec.max_draft_tokens),
            ));
        }
        match drafter {
            Drafter::Model(m) if m.config.vocab_size != vocab => Err(LlmError::config(
                "draft_model",
                format!("vocab_size {} differs from the target's {vocab}", m.config.vocab_size),
            )),
            Drafter::PromptLookup { max_ngram: 0 } => Err(LlmError::config("max_ngram", "must be at least 1")),
            _ => Ok(()),
        }
    }
}

struct Speculation<'g, 'a, B: Backend> {
    g: &'g Generator<'a, B>,
    /// Prompt then generated ids; the target's cache holds all but the last.
    ids: Vec<u32>,
    prompt_len: usize,
    target: KvCache<B>,
    draft: Option<KvCache<B>>,
    sampler: Sampler,
    stats: SpeculationStats,
    stop: Option<StopReason>,
    max_new: usize,
    /// The constraint's state after `ids`.
    matcher: Option<TokenMatcher>,
}

impl<B: Backend> Speculation<'_, '_, B> {
    fn generated(&self) -> usize {
        self.ids.len() - self.prompt_len
    }

    /// The prefill: the prompt through the target, the first token from its last position.
    fn first_token(&mut self) -> Result<()> {
        let mut rows = forward_rows(self.g.model, &mut self.target, &self.ids, true)?;
        self.stats.target_forwards += 1;
        match scores_for(self.g, rows.remove(0), &self.ids, self.prompt_len, self.matcher.as_mut())? {
            Some(scores) => {
                let id = self.g.pick(&mut self.sampler, &scores);
                self.push(id)
            }
            None => {
                self.stop = Some(StopReason::NoAllowedToken);
                Ok(())
            }
        }
    }

    /// Up to `k` draft tokens continuing `ids`.
    fn draft(&mut self, drafter: &Drafter<'_, B>, k: usize) -> Result<Vec<Draft>> {
        if k == 0 {
            return Ok(vec![]);
        }
        match drafter {
            Drafter::PromptLookup { max_ngram } => {
                let mut tokens = prompt_lookup(&self.ids, *max_ngram, k);
                if let Some(m) = &mut self.matcher {
                    tokens.truncate(m.valid_prefix(&tokens)?);
                }
                Ok(tokens.into_iter().map(|token| Draft { token, q: None }).collect())
            }
            Drafter::Model(model) => {
                let cache = self.draft.as_mut().expect("a model drafter has a cache");
                let mut context = self.ids.clone();
                let mut matcher = self.matcher.clone();
                let mut out = Vec::with_capacity(k);
                for _ in 0..k {
                    let feed = context[cache.len()..].to_vec();
                    let mut rows = forward_rows(model, cache, &feed, true)?;
                    let Some(scores) = scores_for(self.g, rows.remove(0), &context, self.prompt_len, matcher.as_mut())? else { break };
                    let token = self.g.pick(&mut self.sampler, &scores);
                    context.push(token);
                    out.push(Draft { token, q: self.g.config.do_sample.then(|| softmax(&scores)) });
                    if let Some(m) = &mut matcher {
                        m.consume(token)?;
                        if m.is_complete() {
                            break;
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// Scores `[last, drafts...]` with the target and keeps what the rule accepts, plus one
    /// token of the target's; returns (drafted, accepted, tokens added).
    fn verify(&mut self, drafts: Vec<Draft>) -> Result<(usize, usize, usize)> {
        let before = self.ids.len();
        let mut feed = vec![*self.ids.last().expect("the first token is generated")];
        feed.extend(drafts.iter().map(|d| d.token));
        let rows = forward_rows(self.g.model, &mut self.target, &feed, false)?;
        self.stats.target_forwards += 1;
        self.stats.drafted += drafts.len();
        let mut kept = 0;
        for (i, row) in rows.into_iter().enumerate() {
            let Some(scores) = scores_for(self.g, row, &self.ids, self.prompt_len, self.matcher.as_mut())? else {
                self.stop = Some(StopReason::NoAllowedToken);
                break;
            };
            let next = match drafts.get(i) {
                Some(d) => self.judge(&scores, d),
                None => Judged::Bonus(self.g.pick(&mut self.sampler, &scores)),
            };
            match next {
                Judged::Accept(id) => {
                    kept += 1;
                    self.push(id)?;
                }
                Judged::Replace(id) | Judged::Bonus(id) => {
                    self.push(id)?;
                    break;
                }
            }
            if self.stop.is_some() {
                break;
            }
        }
        self.stats.accepted += kept;
        self.target.truncate(self.ids.len() - 1);
        if let Some(cache) = &mut self.draft {
            // The draft cache holds ids[..before] and drafts[..k-1]; the kept ones stay valid.
            cache.truncate(before + kept.min(drafts.len().saturating_sub(1)));
        }
        Ok((drafts.len(), kept, self.ids.len() - before))
    }

    fn judge(&mut self, scores: &[f32], d: &Draft) -> Judged {
        if !self.g.config.do_sample {
            let best = argmax(scores);
            return if best == d.token { Judged::Accept(best) } else { Judged::Replace(best) };
        }
        let p = softmax(scores);
        let (accept, residual) = accept_or_residual(&p, d.q.as_deref(), d.token, self.sampler.uniform());
        if accept {
            Judged::Accept(d.token)
        } else {
            Judged::Replace(self.sampler.sample(&residual))
        }
    }

    /// Appends a token (the constraint follows it) and sets the stop reason it causes.
    fn push(&mut self, id: u32) -> Result<()> {
        self.ids.push(id);
        if let Some(m) = &mut self.matcher {
            m.consume(id)?;
        }
        let complete = self.matcher.as_ref().is_some_and(TokenMatcher::is_complete);
        let at_budget = self.generated() >= self.max_new;
        self.stop = self.g.stop_reason(&self.ids[self.prompt_len..], id, complete, at_budget)?;
        Ok(())
    }
}

enum Judged {
    Accept(u32),
    Replace(u32),
    Bonus(u32),
}

/// The rule for one draft token `d` drawn from `q` (`None`: a point mass on `d`) against the
/// target's `p`, with a uniform draw `u` in [0, 1): kept when `u < p(d) / q(d)`; otherwise the
/// residual `max(0, p - q)` as scores (`ln`, `-inf` where zero) to sample the replacement from.
pub fn accept_or_residual(p: &[f32], q: Option<&[f32]>, d: u32, u: f64) -> (bool, Vec<f32>) {
    let q_d = q.map_or(1.0, |q| q[d as usize]);
    let ratio = if q_d > 0.0 { p[d as usize] as f64 / q_d as f64 } else { 1.0 };
    if u < ratio {
        return (true, vec![]);
    }
    let residual: Vec<f32> = match q {
        Some(q) => p.iter().zip(q).map(|(p, q)| (p - q).max(0.0)).collect(),
        None => p.iter().enumerate().map(|(i, &p)| if i == d as usize { 0.0 } else { p }).collect(),
    };
    // All mass where q >= p (rounding): fall back to p itself, still exact in the limit.
    let residual = if residual.iter().all(|&r| r <= 0.0) { p.to_vec() } else { residual };
    (false, residual.iter().map(|&r| if r > 0.0 { r.ln() } else { f32::NEG_INFINITY }).collect())
}

/// A row of logits given the ids before it, masked by the constraint's state (as the plain
/// decode loop masks, before the processors) and processed; `None` when no token is left.
fn scores_for<B: Backend>(
    g: &Generator<'_, B>,
    mut scores: Vec<f32>,
    context: &[u32],
    prompt_len: usize,
    matcher: Option<&mut TokenMatcher>,
) -> Result<Option<Vec<f32>>> {
    if let Some(m) = matcher {
        if m.mask(&mut scores)? == MaskOutcome::NoToken {
            return Ok(None);
        }
    }
    for p in &g.processors {
        p.process(context, prompt_len, &mut scores);
    }
    Ok(scores.iter().any(|s| *s > f32::NEG_INFINITY).then_some(scores))
}

fn softmax(scores: &[f32]) -> Vec<f32> {
    log_softmax(scores).into_iter().map(f32::exp).collect()
}

/// Feeds `ids` after what `cache` holds; returns the logits of the last position
/// (`last_only`) or of every fed position, `[rows][vocab]`.
fn forward_rows<B: Backend>(model: &CausalLm<B>, cache: &mut KvCache<B>, ids: &[u32], last_only: bool) -> Result<Vec<Vec<f32>>> {
    let device = model.device();
    let flat: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let mut input = ModelInput::new(Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [1, ids.len()]), &device));
    input.last_logits_only = last_only;
    let logits = model.forward_with(input, Some(cache))?.logits;
    let [_, rows, vocab] = logits.dims();
    let data: Vec<f32> = logits.into_data().iter::<f32>().collect();
    Ok((0..rows).map(|r| data[r * vocab..(r + 1) * vocab].to_vec()).collect())
}

/// Prompt lookup: the last `n`-gram of `ids` (longest first) found earlier in `ids`, and up
/// to `k` tokens that followed its first occurrence (transformers' `PromptLookupCandidateGenerator`).
pub fn prompt_lookup(ids: &[u32], max_ngram: usize, k: usize) -> Vec<u32> {
    for n in (1..=max_ngram.min(ids.len().saturating_sub(1))).rev() {
        let tail = &ids[ids.len() - n..];
        for start in 0..ids.len() - n {
            if &ids[start..start + n] == tail {
                let from = start + n;
                let to = (from + k).min(ids.len());
                if from < to {
                    return ids[from..to].to_vec();
                }
            }
        }
    }
    vec![]
}
