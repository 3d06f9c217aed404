//! Continuous batching: one thread owns the model and runs every live sequence in one packed
//! forward pass per step ([`CausalLm::forward_packed`]). Requests that arrive while others
//! decode join at the next step, prompts are prefilled in chunks between decode steps, and a
//! sequence whose client went away frees its slot at the next step.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;
use rayon::prelude::*;
use tokio::sync::mpsc::UnboundedSender;

use super::metrics::Metrics;
use super::sequence::{Progress, Sequence};
use crate::error::{LlmError, Result};
use crate::generate::{CompiledConstraint, GenerationConfig};
use crate::model::{CausalLm, PackedSequence};
use crate::tokenizer::Tokenizer;

/// How the engine batches.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sequences decoded together at most; more requests wait in a queue.
    pub slots: usize,
    /// Prompt tokens prefilled per step at most, shared by the prompts being prefilled, so a
    /// long prompt delays the running decodes by one chunk at a time.
    pub prefill_chunk: usize,
    /// Positions (prompt plus new tokens) a sequence may use.
    pub context: usize,
}

impl EngineConfig {
    /// `slots` sequences, 256-token prefill chunks, the model's trained context.
    pub fn for_model<B: Backend>(model: &CausalLm<B>, slots: usize) -> Self {
        Self { slots: slots.max(1), prefill_chunk: 256, context: model.config.max_position_embeddings }
    }
}

/// The settings of one choice (one sequence).
#[derive(Debug, Clone)]
pub struct ChoiceSettings {
    /// Sampling, penalties, `max_new_tokens`, EOS ids and stop strings (OpenAI semantics:
    /// the text ends before the stop string).
    pub generation: GenerationConfig,
    /// Seed of this choice's sampler.
    pub seed: u64,
    /// The output must match this.
    pub constraint: Option<CompiledConstraint>,
    /// Report each token's log-probability and this many alternatives.
    pub top_logprobs: Option<usize>,
}

/// A request for the engine: one prompt, one or more choices, where to send the events.
#[derive(Debug)]
pub struct Job {
    /// Prompt ids (checked against the context by the caller).
    pub prompt: Vec<u32>,
    /// One entry per choice (`n`).
    pub choices: Vec<ChoiceSettings>,
    /// Events of every choice, in order per choice.
    pub events: UnboundedSender<Event>,
    /// The job is dropped (and [`Event::Timeout`] sent) past this instant.
    pub deadline: Instant,
}

/// Why a choice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// EOS, a stop string, or a complete constrained output.
    Stop,
    /// `max_tokens` or the context.
    Length,
}

/// A token's log-probability.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprob {
    /// The token's text.
    pub token: String,
    /// Its UTF-8 bytes.
    pub bytes: Vec<u8>,
    /// Natural log of its probability under the model.
    pub logprob: f32,
}

/// The chosen token's log-probability with the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The generated token.
    pub chosen: TopLogprob,
    /// The `top_logprobs` most likely tokens, most likely first.
    pub top: Vec<TopLogprob>,
}

/// What the engine tells a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A generated token of `choice` and the text it completes (may be empty: a character
    /// is incomplete, or text is held back while it could begin a stop string).
    Delta {
        /// Choice index.
        choice: usize,
        /// New text.
        text: String,
        /// The token's log-probability, when asked for.
        logprob: Option<TokenLogprob>,
    },
    /// `choice` ended.
    Finished {
        /// Choice index.
        choice: usize,
        /// Why.
        reason: FinishReason,
        /// Tokens generated.
        completion_tokens: usize,
        /// Admission to first token (queueing excluded, prefill included), ms.
        prompt_ms: f64,
        /// First token to the last, ms.
        predicted_ms: f64,
    },
    /// The request ran past its deadline; its sequences were dropped.
    Timeout,
    /// The engine failed on this request.
    Failed(String),
}

/// Sends jobs to the engine; cheap to clone, shared by the HTTP handlers.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    jobs: mpsc::Sender<Job>,
    /// The engine's counters.
    pub metrics: Arc<Metrics>,
    /// The engine's limits.
    pub config: EngineConfig,
    /// The model's vocabulary size.
    pub vocab_size: usize,
}

impl EngineHandle {
    /// Queues `job`; false when the engine has stopped.
    pub fn submit(&self, job: Job) -> bool {
        self.metrics.requests_waiting.fetch_add(1, Relaxed);
        self.metrics.requests_total.fetch_add(1, Relaxed);
        let ok = self.jobs.send(job).is_ok();
        if !ok {
            self.metrics.requests_waiting.fetch_sub(1, Relaxed);
        }
        ok
    }
}

/// The engine: owns the model; [`Engine::run`] serves jobs until every handle is dropped.
pub struct Engine<B: Backend> {
    model: CausalLm<B>,
    tokenizer: Arc<Tokenizer>,
    config: EngineConfig,
    jobs: mpsc::Receiver<Job>,
    metrics: Arc<Metrics>,
}

impl<B: Backend> Engine<B> {
    /// An engine for `model` and the handle that feeds it.
    pub fn new(model: CausalLm<B>, tokenizer: Arc<Tokenizer>, config: EngineConfig) -> (Self, EngineHandle) {
        let (tx, rx) = mpsc::channel();
        let metrics = Arc::new(Metrics::default());
        metrics.slots_total.store(config.slots, Relaxed);
        let vocab_size = model.config.vocab_size;
        let handle = EngineHandle { jobs: tx, metrics: metrics.clone(), config: config.clone(), vocab_size };
        (Self { model, tokenizer, config, jobs: rx, metrics }, handle)
    }

    /// The model the engine runs.
    pub fn model(&self) -> &CausalLm<B> {
        &self.model
    }

    /// Serves jobs until every [`EngineHandle`] is dropped and the last sequence is done.
    pub fn run(self) {
        let tokenizer = self.tokenizer.clone();
        let mut waiting: VecDeque<Arc<Job>> = VecDeque::new();
        let mut active: Vec<Sequence<'_, B>> = vec![];
        loop {
            if active.is_empty() && waiting.is_empty() {
                match self.jobs.recv() {
                    Ok(job) => waiting.push_back(Arc::new(job)),
                    Err(_) => return,
                }
            }
            while let Ok(job) = self.jobs.try_recv() {
                waiting.push_back(Arc::new(job));
            }
            self.admit(&mut waiting, &mut active, &tokenizer);
            self.drop_abandoned(&mut active);
            if !active.is_empty() {
                self.step(&mut active);
            }
            self.metrics.slots_busy.store(active.len(), Relaxed);
        }
    }

    /// Starts waiting jobs, oldest first, while their choices fit the free slots.
    fn admit<'t>(&self, waiting: &mut VecDeque<Arc<Job>>, active: &mut Vec<Sequence<'t, B>>, tokenizer: &'t Tokenizer) {
        while let Some(job) = waiting.front() {
            if job.events.is_closed() {
                self.metrics.requests_cancelled_total.fetch_add(1, Relaxed);
            } else if active.len() + job.choices.len() > self.config.slots {
                break;
            } else {
                let room = (job.prompt.len() + job.choices.iter().map(|c| c.generation.max_new_tokens).max().unwrap_or(0))
                    .min(self.config.context);
                for choice in 0..job.choices.len() {
                    let first = room.min(job.prompt.len() + crate::generate::FIRST_ROOM);
                    let cache = self.model.new_cache(1, first).with_limit(room);
                    active.push(Sequence::new(job.clone(), choice, cache, tokenizer));
                }
            }
            waiting.pop_front();
            self.metrics.requests_waiting.fetch_sub(1, Relaxed);
        }
    }

    /// Frees the slots of clients that went away and of requests past their deadline.
    fn drop_abandoned(&self, active: &mut Vec<Sequence<'_, B>>) {
        let now = Instant::now();
        active.retain(|s| {
            if !s.abandoned(now) {
                return true;
            }
            if s.choice == 0 {
                self.metrics.requests_cancelled_total.fetch_add(1, Relaxed);
                if !s.job.events.is_closed() {
                    let _ = s.job.events.send(Event::Timeout);
                }
            }
            false
        });
    }

    /// One packed forward pass: a token per decoding sequence, a chunk per prefilling one
    /// (within the step's prefill budget); then a new token for each sequence whose prompt
    /// is in the cache.
    fn step(&self, active: &mut Vec<Sequence<'_, B>>) {
        let started = Instant::now();
        let (logits, rows, prompt_tokens) = match self.forward(active) {
            Ok(r) => r,
            Err(e) => return self.fail_all(active, &e.to_string()),
        };
        let vocab = self.model.config.vocab_size;
        let generated = rows.len();
        let mut finished = vec![false; active.len()];
        // Each sequence samples from its own row: in parallel (a softmax over the vocabulary
        // and the penalties per sequence are a tenth of a batched step when run one by one).
        let mut row_of: Vec<Option<usize>> = vec![None; active.len()];
        for &(i, k) in &rows {
            row_of[i] = Some(k);
        }
        let outcomes: Vec<(usize, Result<Progress>)> = active
            .par_iter_mut()
            .zip(row_of)
            .enumerate()
            .filter_map(|(i, (seq, k))| k.map(|k| (i, seq.advance(&logits[k * vocab..(k + 1) * vocab]))))
            .collect();
        for (i, outcome) in outcomes {
            match outcome {
                Ok(Progress::Running) => {}
                Ok(Progress::Finished) => finished[i] = true,
                Err(e) => {
                    let _ = active[i].job.events.send(Event::Failed(e.to_string()));
                    finished[i] = true;
                }
            }
        }
        let mut i = 0;
        active.retain(|_| {
            i += 1;
            !finished[i - 1]
        });
        self.metrics.record_step(prompt_tokens, generated, started.elapsed().as_secs_f64());
    }

    /// Runs the pass; returns the logits on the host (`[planned sequences, vocab]`), which row
    /// each sequence that gets a token now reads (by index into `active`), and the prompt
    /// tokens run.
    #[allow(clippy::type_complexity)]
    fn forward(&self, active: &mut [Sequence<'_, B>]) -> Result<(Vec<f32>, Vec<(usize, usize)>, usize)> {
        let mut budget = self.config.prefill_chunk.max(1);
        let mut plan: Vec<(usize, std::ops::Range<usize>, bool)> = vec![];
        for (i, s) in active.iter().enumerate() {
            let left = s.prompt_left();
            if left == 0 {
                let n = s.ids.len();
                plan.push((i, n - 1..n, true));
            } else if budget > 0 {
                let take = left.min(budget);
                budget -= take;
                plan.push((i, s.fed..s.fed + take, take == left));
            }
        }
        let prompt_tokens = plan.iter().filter(|p| active[p.0].prompt_left() > 0).map(|p| p.1.len()).sum();
        let mut packed: Vec<PackedSequence<'_, B>> = Vec::with_capacity(plan.len());
        let mut planned = plan.iter().peekable();
        for (i, s) in active.iter_mut().enumerate() {
            if let Some((_, range, _)) = planned.next_if(|p| p.0 == i) {
                packed.push(PackedSequence { tokens: &s.ids[range.clone()], cache: &mut s.cache });
            }
        }
        let logits = self.model.forward_packed(&mut packed)?;
        drop(packed);
        let host: Vec<f32> = logits.into_data().convert::<f32>().into_vec::<f32>().map_err(|e| LlmError::Serve { what: "logits".into(), message: format!("{e:?}") })?;
        let mut rows = vec![];
        for (k, (i, range, sample)) in plan.into_iter().enumerate() {
            let s = &mut active[i];
            if s.prompt_left() > 0 {
                s.fed += range.len();
            }
            if sample {
                rows.push((i, k));
            }
        }
        Ok((host, rows, prompt_tokens))
    }

    fn fail_all(&self, active: &mut Vec<Sequence<'_, B>>, message: &str) {
        tracing::error!(message, sequences = active.len(), "batched forward failed; dropping its sequences");
        for s in active.drain(..) {
            let _ = s.job.events.send(Event::Failed(message.to_string()));
        }
    }
}

/// A deadline `timeout` from now.
pub fn deadline(timeout: Duration) -> Instant {
    Instant::now() + timeout
}
