//! Text generation: greedy, sampling with a chain of logits processors, stop conditions,
//! batched prompts with left padding, and a streaming iterator of text deltas.

mod beam;
mod config;
pub mod constraint;
pub mod processors;
mod sampler;
pub mod speculative;
mod stream;
mod timings;

use std::time::{Duration, Instant};

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

pub use beam::BeamOutput;
pub use config::GenerationConfig;
pub use constraint::{CompiledConstraint, Constraint, ConstraintEngine, TokenMatcher};
pub use processors::{processors_for, LogitsProcessor};
pub use sampler::{argmax, Sampler};
pub use speculative::{Drafter, SpeculationStats, SpeculativeConfig};
pub use stream::{TextDelta, TextStream};
pub use timings::Timings;

use crate::error::{LlmError, Result};
use crate::model::{CausalLm, ModelInput};
use crate::nn::KvCache;
use crate::tokenizer::Tokenizer;

/// Why a sequence stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// An EOS token was generated (it is included in the output).
    Eos,
    /// A stop string appeared in the generated text.
    StopString,
    /// `max_new_tokens` or the model's context was reached.
    Length,
    /// The constraint's output is complete and nothing may follow it.
    Constraint,
    /// The constraint allows no token the model can give (every allowed one has `-inf`
    /// score after the penalties and bans): the output so far is all there is.
    NoAllowedToken,
}

/// The result of [`Generator::generate`].
#[derive(Debug, Clone)]
pub struct GenerationOutput {
    /// New tokens per prompt (prompt order), EOS included when generated.
    pub sequences: Vec<Vec<u32>>,
    /// Why each sequence stopped.
    pub stop_reasons: Vec<StopReason>,
    /// Time of the prompt's forward pass (first token included).
    pub prefill: Duration,
    /// Time of each later decode step (one token per row).
    pub decode_steps: Vec<Duration>,
    /// Prompt tokens of the prefill, all rows (padding excluded).
    pub prompt_tokens: usize,
    /// Time spent in the constraint's masks and checks, all rows and steps (zero without one).
    pub constraint_time: Duration,
}

impl GenerationOutput {
    /// Load (unknown here), prompt and decode timings, as llama.cpp reports them.
    pub fn timings(&self) -> Timings {
        Timings {
            load: None,
            prompt_tokens: self.prompt_tokens,
            prefill: self.prefill,
            decode_steps: self.decode_steps.len(),
            decode: self.decode_steps.iter().sum(),
        }
    }

    /// Decode throughput over the steps after the prefill, tokens/s per row.
    pub fn decode_tokens_per_s(&self) -> f64 {
        let total: Duration = self.decode_steps.iter().sum();
        if total.is_zero() {
            0.0
        } else {
            self.decode_steps.len() as f64 / total.as_secs_f64()
        }
    }
}

/// Runs a model with a [`GenerationConfig`].
pub struct Generator<'a, B: Backend> {
    model: &'a CausalLm<B>,
    config: GenerationConfig,
    processors: Vec<Box<dyn LogitsProcessor>>,
    tokenizer: Option<&'a Tokenizer>,
    constraint: Option<CompiledConstraint>,
}

impl<'a, B: Backend> Generator<'a, B> {
    /// Validates `config` and builds its processor chain.
    pub fn new(model: &'a CausalLm<B>, config: GenerationConfig) -> Result<Self> {
        config.validate()?;
        let processors = processors_for(&config);
        Ok(Self { model, config, processors, tokenizer: None, constraint: None })
    }

    /// Every generated sequence must match `constraint` (see [`constraint`]): tokens it
    /// forbids are masked before the logits processors run.
    pub fn with_constraint(mut self, constraint: CompiledConstraint) -> Self {
        self.constraint = Some(constraint);
        self
    }

    /// Compiles `constraint` for `tokenizer` (with the configuration's EOS ids) and applies
    /// it, as [`Self::with_constraint`]; build a [`ConstraintEngine`] once instead when many
    /// constraints share a tokenizer.
    pub fn constrained(self, tokenizer: &Tokenizer, constraint: &Constraint) -> Result<Self> {
        let engine = ConstraintEngine::new(tokenizer, self.model.config.vocab_size, &self.config.eos_token_id)?;
        let compiled = engine.compile(constraint)?;
        Ok(self.with_constraint(compiled))
    }

    /// A tokenizer, needed for stop strings and streaming text.
    pub fn with_tokenizer(mut self, tokenizer: &'a Tokenizer) -> Self {
        self.tokenizer = Some(tokenizer);
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &GenerationConfig {
        &self.config
    }

    /// Generates for a batch of prompts (left-padded together).
    pub fn generate(&self, prompts: &[Vec<u32>]) -> Result<GenerationOutput> {
        if self.config.num_beams > 1 {
            return Err(LlmError::config("num_beams", "use Generator::beam_search for num_beams > 1"));
        }
        let mut state = DecodeState::new(self, prompts)?;
        let mut decode_steps = vec![];
        let start = Instant::now();
        state.step()?;
        let prefill = start.elapsed();
        while !state.finished() {
            let t = Instant::now();
            state.step()?;
            decode_steps.push(t.elapsed());
        }
        Ok(GenerationOutput {
            sequences: state.generated(),
            stop_reasons: state.stop.iter().map(|s| s.unwrap_or(StopReason::Length)).collect(),
            prefill,
            decode_steps,
            prompt_tokens: prompts.iter().map(Vec::len).sum(),
            constraint_time: state.constraint_time,
        })
    }

    /// Beam search (`num_beams > 1`) on each prompt; `num_return_sequences` hypotheses per
    /// prompt with transformers' scores.
    pub fn beam_search(&self, prompts: &[Vec<u32>]) -> Result<Vec<BeamOutput>> {
        prompts
            .iter()
            .map(|p| {
                if p.is_empty() {
                    return Err(LlmError::Shape { what: "prompts".into(), expected: "non-empty prompts".into(), got: vec![0] });
                }
                let max_new = self.new_token_budget(p.len())?;
                beam::beam_search(self.model, p, &self.config, &self.processors, max_new, self.constraint.as_ref())
            })
            .collect()
    }

    /// New tokens a prompt of `longest` tokens may get: `max_new_tokens`, within
    /// `max_context` when set (a prompt that does not fit it is an error). Past the model's
    /// trained length it warns.
    fn new_token_budget(&self, longest: usize) -> Result<usize> {
        let room = match self.config.max_context {
            Some(limit) if longest >= limit => return Err(LlmError::ContextOverflow { tokens: longest, context: limit }),
            Some(limit) => limit - longest,
            None => usize::MAX,
        };
        let max_new = self.config.max_new_tokens.min(room);
        let trained = self.model.config.max_position_embeddings;
        if longest.saturating_add(max_new) > trained {
            tracing::warn!(
                positions = longest.saturating_add(max_new),
                max_position_embeddings = trained,
                rope = ?self.model.config.rope.scaling,
                "generating past the model's trained context length; quality may drop unless its RoPE scaling covers it"
            );
        }
        Ok(max_new)
    }

    /// Streams one prompt as text deltas (needs a tokenizer).
    pub fn stream(&'a self, prompt: &[u32]) -> Result<TextStream<'a, B>> {
        let tokenizer = self.tokenizer.ok_or_else(|| LlmError::config("tokenizer", "streaming needs with_tokenizer"))?;
        Ok(TextStream::new(DecodeState::new(self, &[prompt.to_vec()])?, tokenizer))
    }
}

/// New-token positions allocated with the prompt's; more are allocated by doubling.
pub const FIRST_ROOM: usize = 256;

/// The decode loop's state: cache, ids, padding, stop flags.
pub(crate) struct DecodeState<'g, 'a, B: Backend> {
    generator: &'g Generator<'a, B>,
    cache: KvCache<B>,
    /// Per row: prompt then generated ids (no padding).
    ids: Vec<Vec<u32>>,
    prompt_lens: Vec<usize>,
    /// Per row, over every cache position (padding false).
    mask: Vec<Vec<bool>>,
    padded: bool,
    stop: Vec<Option<StopReason>>,
    sampler: Sampler,
    /// Per row, when the generator has a constraint.
    matchers: Vec<TokenMatcher>,
    constraint_time: Duration,
    new_tokens: usize,
    max_new: usize,
    pad_id: u32,
}

impl<'g, 'a, B: Backend> DecodeState<'g, 'a, B> {
    fn new(generator: &'g Generator<'a, B>, prompts: &[Vec<u32>]) -> Result<Self> {
        let model = generator.model;
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
            return Err(LlmError::Shape { what: "prompts".into(), expected: "at least one non-empty prompt".into(), got: vec![prompts.len()] });
        }
        let max_new = generator.new_token_budget(longest)?;
        let vocab = model.config.vocab_size as u32;
        if let Some(bad) = prompts.iter().flatten().find(|&&id| id >= vocab) {
            return Err(LlmError::Shape { what: "prompt ids".into(), expected: format!("ids < vocab_size {vocab}"), got: vec![*bad as usize] });
        }
        let mask: Vec<Vec<bool>> = prompts
            .iter()
            .map(|p| [vec![false; longest - p.len()], vec![true; p.len()]].concat())
            .collect();
        let pad_id = generator.config.pad_token_id.or(generator.config.eos_token_id.first().copied()).unwrap_or(0);
        Ok(Self {
            generator,
            // Room for the first new tokens now; the cache doubles as generation goes on.
            cache: model.new_cache(prompts.len(), longest + max_new.min(FIRST_ROOM)).with_limit(longest.saturating_add(max_new)),
            ids: prompts.to_vec(),
            prompt_lens: prompts.iter().map(Vec::len).collect(),
            padded: prompts.iter().any(|p| p.len() != longest),
            mask,
            stop: vec![if max_new == 0 { Some(StopReason::Length) } else { None }; prompts.len()],
            sampler: Sampler::new(generator.config.seed),
            matchers: generator.constraint.iter().flat_map(|c| prompts.iter().map(|_| c.matcher())).collect(),
            constraint_time: Duration::ZERO,
            new_tokens: 0,
            max_new,
            pad_id,
        })
    }

    fn finished(&self) -> bool {
        self.stop.iter().all(Option::is_some)
    }

    fn generated(&self) -> Vec<Vec<u32>> {
        self.ids.iter().zip(&self.prompt_lens).map(|(ids, &p)| ids[p..].to_vec()).collect()
    }

    /// One forward pass and one new token per unfinished row; returns the new ids
    /// (`None` for rows already stopped).
    fn step(&mut self) -> Result<Vec<Option<u32>>> {
        let model = self.generator.model;
        let device = model.device();
        let first = self.cache.is_empty();
        let rows: Vec<Vec<u32>> = if first {
            let width = self.mask[0].len();
            self.ids.iter().map(|r| [vec![self.pad_id; width - r.len()], r.clone()].concat()).collect()
        } else {
            self.ids.iter().map(|r| vec![*r.last().unwrap_or(&self.pad_id)]).collect()
        };
        let (batch, seq) = (rows.len(), rows[0].len());
        let flat: Vec<i64> = rows.iter().flatten().map(|&i| i as i64).collect();
        let mut input = ModelInput::new(Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [batch, seq]), &device));
        input.last_logits_only = true;
        if self.padded {
            input.attention_mask = Some(self.mask.clone());
            // transformers' generate(): position = number of real tokens before this one.
            input.position_ids = Some(self.mask.iter().map(|m| positions(m, seq)).collect());
        }
        let logits = model.forward_with(input, Some(&mut self.cache))?.logits;
        let next = self.choose(logits)?;
        self.new_tokens += 1;
        let mut out = vec![None; batch];
        for (row, id) in next.into_iter().enumerate() {
            self.mask[row].push(true);
            if self.stop[row].is_some() {
                continue;
            }
            let Some(id) = id else {
                self.stop[row] = Some(StopReason::NoAllowedToken);
                continue;
            };
            if let Some(m) = self.matchers.get_mut(row) {
                let started = Instant::now();
                m.consume(id)?;
                self.constraint_time += started.elapsed();
            }
            self.ids[row].push(id);
            out[row] = Some(id);
            self.stop[row] = self.stop_reason(row, id)?;
        }
        Ok(out)
    }

    /// logits: `[batch, 1, vocab]` -> one id per row (`None`: the constraint allows no token).
    fn choose(&mut self, logits: Tensor<B, 3>) -> Result<Vec<Option<u32>>> {
        let g = self.generator;
        let plain_greedy = !g.config.do_sample && g.processors.is_empty();
        if plain_greedy && self.matchers.is_empty() {
            // Greedy: only the ids leave the device.
            return Ok(logits.argmax(2).into_data().iter::<i64>().map(|i| Some(i as u32)).collect());
        }
        let [batch, _, vocab] = logits.dims();
        let all: Vec<f32> = logits.into_data().iter::<f32>().collect();
        let mut out = Vec::with_capacity(batch);
        for (row, scores) in all.chunks(vocab).enumerate() {
            let mut scores = scores.to_vec();
            if let Some(m) = self.matchers.get_mut(row).filter(|_| self.stop[row].is_none()) {
                let started = Instant::now();
                // Greedy's choice stands when the constraint allows it: one token checked
                // instead of a mask over the vocabulary.
                let best = argmax(&scores);
                let choice = if plain_greedy && m.allows(best)? {
                    Some(Some(best))
                } else {
                    (m.mask(&mut scores)? == constraint::MaskOutcome::NoToken).then_some(None)
                };
                self.constraint_time += started.elapsed();
                if let Some(choice) = choice {
                    out.push(choice);
                    continue;
                }
            }
            for p in &g.processors {
                p.process(&self.ids[row], self.prompt_lens[row], &mut scores);
            }
            if !self.matchers.is_empty() && scores.iter().all(|s| *s == f32::NEG_INFINITY) {
                // Bans and penalties removed every token the constraint allowed.
                out.push(None);
                continue;
            }
            out.push(Some(g.pick(&mut self.sampler, &scores)));
        }
        Ok(out)
    }

    fn stop_reason(&self, row: usize, id: u32) -> Result<Option<StopReason>> {
        let complete = self.matchers.get(row).is_some_and(TokenMatcher::is_complete);
        let generated = &self.ids[row][self.prompt_lens[row]..];
        self.generator.stop_reason(generated, id, complete, self.new_tokens >= self.max_new)
    }
}

impl<B: Backend> Generator<'_, B> {
    /// Why a sequence stops after `id` (the last of `generated`, its new tokens), if it does:
    /// EOS, a complete constraint, a stop string, then the token budget (`at_budget`).
    fn stop_reason(&self, generated: &[u32], id: u32, complete: bool, at_budget: bool) -> Result<Option<StopReason>> {
        if self.config.eos_token_id.contains(&id) {
            return Ok(Some(StopReason::Eos));
        }
        if complete {
            return Ok(Some(StopReason::Constraint));
        }
        if let (false, Some(tok)) = (self.config.stop_strings.is_empty(), self.tokenizer) {
            let text = tok.decode(generated, false)?;
            if self.config.stop_strings.iter().any(|s| text.contains(s.as_str())) {
                return Ok(Some(StopReason::StopString));
            }
        }
        Ok(at_budget.then_some(StopReason::Length))
    }

    /// The next token from processed scores: a draw when sampling, else the argmax.
    fn pick(&self, sampler: &mut Sampler, scores: &[f32]) -> u32 {
        if self.config.do_sample {
            sampler.sample(scores)
        } else {
            argmax(scores)
        }
    }
}

/// transformers' `generate()` positions: each token sits at the number of real tokens before
/// it, so a left-padded row starts at 0 like an unpadded one.
///
/// mask: one row over every cache position including the `seq` new ones -> `[seq]`
fn positions(mask: &[bool], seq: usize) -> Vec<usize> {
    let start = mask.len() - seq;
    let mut n = mask[..start].iter().filter(|&&real| real).count();
    mask[start..]
        .iter()
        .map(|&real| {
            let p = n;
            n += usize::from(real);
            p
        })
        .collect()
}
