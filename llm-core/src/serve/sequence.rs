//! One generated sequence (one choice of one request) inside the batching engine: its cache,
//! sampling state, constraint, stop strings and the text it has sent.

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::Backend;

use super::engine::{ChoiceSettings, Event, FinishReason, Job, TokenLogprob, TopLogprob};
use crate::error::Result;
use crate::generate::processors::log_softmax;
use crate::generate::{argmax, constraint::MaskOutcome, LogitsProcessor, Sampler, TokenMatcher};
use crate::nn::KvCache;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// Stop strings with OpenAI's semantics: the text stops before the first stop string and
/// never shows it, so a tail that could begin one is held back until it cannot.
#[derive(Debug, Default)]
pub(crate) struct StopText {
    stops: Vec<String>,
    text: String,
    sent: usize,
    /// A stop string appeared: nothing more is sent.
    stopped: bool,
}

impl StopText {
    pub(crate) fn new(stops: Vec<String>) -> Self {
        Self { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), ..Self::default() }
    }

    /// Adds decoded text; returns what may be sent now and whether a stop string appeared.
    pub(crate) fn push(&mut self, delta: &str) -> (String, bool) {
        let from = self.sent;
        self.text += delta;
        // A stop string may begin in held-back text: search from the first unsent byte.
        let hit = self.stops.iter().filter_map(|s| self.text[from..].find(s.as_str()).map(|i| from + i)).min();
        if let Some(end) = hit {
            let out = self.text[from..end].to_string();
            self.sent = self.text.len();
            self.stopped = true;
            return (out, true);
        }
        let hold = self.held_tail(from);
        let end = self.text.len() - hold;
        self.sent = end;
        (self.text[from..end].to_string(), false)
    }

    /// Everything still held back (the sequence ended for another reason).
    pub(crate) fn flush(&mut self) -> String {
        let out = self.text[self.sent..].to_string();
        self.sent = self.text.len();
        out
    }

    /// Bytes at the end of the unsent text that are a proper prefix of a stop string.
    fn held_tail(&self, from: usize) -> usize {
        let tail = &self.text[from..];
        let mut hold = 0;
        for stop in &self.stops {
            for (i, _) in tail.char_indices() {
                let suffix = &tail[i..];
                if suffix.len() > hold && suffix.len() < stop.len() && stop.starts_with(suffix) {
                    hold = suffix.len();
                    break;
                }
            }
        }
        hold
    }
}

/// What a step gives a sequence.
pub(crate) enum Progress {
    /// Still running.
    Running,
    /// Done: the slot can be freed.
    Finished,
}

/// One choice of one request.
pub(crate) struct Sequence<'t, B: Backend> {
    pub(crate) job: Arc<Job>,
    pub(crate) choice: usize,
    /// Prompt tokens already in the cache.
    pub(crate) fed: usize,
    /// Prompt then generated ids.
    pub(crate) ids: Vec<u32>,
    pub(crate) cache: KvCache<B>,
    sampler: Sampler,
    processors: Vec<Box<dyn LogitsProcessor>>,
    settings: ChoiceSettings,
    matcher: Option<TokenMatcher>,
    decoder: StreamDecoder<'t>,
    tokenizer: &'t Tokenizer,
    stop_text: StopText,
    generated: usize,
    started: Instant,
    prefill_done: Option<Instant>,
}

impl<'t, B: Backend> Sequence<'t, B> {
    pub(crate) fn new(job: Arc<Job>, choice: usize, cache: KvCache<B>, tokenizer: &'t Tokenizer) -> Self {
        let settings = job.choices[choice].clone();
        Self {
            choice,
            fed: 0,
            ids: job.prompt.clone(),
            cache,
            sampler: Sampler::new(settings.seed),
            processors: crate::generate::processors_for(&settings.generation),
            matcher: settings.constraint.as_ref().map(|c| c.matcher()),
            decoder: tokenizer.stream_decoder(true),
            tokenizer,
            stop_text: StopText::new(settings.generation.stop_strings.clone()),
            settings,
            generated: 0,
            started: Instant::now(),
            prefill_done: None,
            job,
        }
    }

    /// Prompt tokens not yet in the cache.
    pub(crate) fn prompt_left(&self) -> usize {
        self.job.prompt.len() - self.fed
    }

    /// The client went away or the request ran out of time.
    pub(crate) fn abandoned(&self, now: Instant) -> bool {
        self.job.events.is_closed() || now > self.job.deadline
    }

    /// Held back text, unless a stop string ended the text.
    fn rest(&mut self) -> String {
        if self.stop_text.stopped {
            return String::new();
        }
        let tail = self.decoder.flush().ok().flatten().unwrap_or_default();
        let (mut out, hit) = self.stop_text.push(&tail);
        if !hit {
            out += &self.stop_text.flush();
        }
        out
    }

    /// Takes the next token from this step's logits row (`[vocab]`), sends what it adds.
    pub(crate) fn advance(&mut self, row: &[f32]) -> Result<Progress> {
        if self.prefill_done.is_none() {
            self.prefill_done = Some(Instant::now());
        }
        let Some((id, logprob)) = self.choose(row)? else {
            return Ok(self.finish(FinishReason::Stop));
        };
        self.generated += 1;
        self.ids.push(id);
        if let Some(m) = self.matcher.as_mut() {
            m.consume(id)?;
        }
        if self.settings.generation.eos_token_id.contains(&id) {
            self.send(String::new(), logprob);
            return Ok(self.finish(FinishReason::Stop));
        }
        let piece = self.decoder.push(id)?.unwrap_or_default();
        let (text, hit) = self.stop_text.push(&piece);
        self.send(text, logprob);
        if hit || self.matcher.as_ref().is_some_and(TokenMatcher::is_complete) {
            return Ok(self.finish(FinishReason::Stop));
        }
        if self.generated >= self.settings.generation.max_new_tokens || self.cache.len() + 1 > self.cache.limit() {
            return Ok(self.finish(FinishReason::Length));
        }
        Ok(Progress::Running)
    }

    /// Constraint mask, processors, then a draw or the argmax; `None` when the constraint
    /// allows nothing. The log-probability is the model's own (before any processing).
    fn choose(&mut self, row: &[f32]) -> Result<Option<(u32, Option<TokenLogprob>)>> {
        let mut scores = row.to_vec();
        if let Some(m) = self.matcher.as_mut() {
            if m.mask(&mut scores)? == MaskOutcome::NoToken {
                return Ok(None);
            }
        }
        let prompt_len = self.job.prompt.len();
        for p in &self.processors {
            p.process(&self.ids, prompt_len, &mut scores);
        }
        if scores.iter().all(|s| *s == f32::NEG_INFINITY) {
            return Ok(None);
        }
        let id = if self.settings.generation.do_sample { self.sampler.sample(&scores) } else { argmax(&scores) };
        let logprob = self.settings.top_logprobs.map(|k| self.logprob(row, id, k)).transpose()?;
        Ok(Some((id, logprob)))
    }

    /// The chosen token's log-probability and the `k` most likely alternatives.
    fn logprob(&self, row: &[f32], id: u32, k: usize) -> Result<TokenLogprob> {
        let lp = log_softmax(row);
        let tokenizer = self.tokenizer;
        let entry = |id: u32| -> Result<TopLogprob> {
            let text = tokenizer.decode(&[id], false)?;
            Ok(TopLogprob { bytes: text.as_bytes().to_vec(), token: text, logprob: lp[id as usize] })
        };
        let mut order: Vec<usize> = (0..lp.len()).collect();
        let k = k.min(order.len());
        if k > 0 {
            order.select_nth_unstable_by(k - 1, |&a, &b| lp[b].total_cmp(&lp[a]));
        }
        order.truncate(k);
        order.sort_by(|&a, &b| lp[b].total_cmp(&lp[a]));
        let top = order.into_iter().map(|i| entry(i as u32)).collect::<Result<_>>()?;
        Ok(TokenLogprob { chosen: entry(id)?, top })
    }

    fn send(&self, text: String, logprob: Option<TokenLogprob>) {
        let _ = self.job.events.send(Event::Delta { choice: self.choice, text, logprob });
    }

    fn finish(&mut self, reason: FinishReason) -> Progress {
        let rest = self.rest();
        if !rest.is_empty() {
            self.send(rest, None);
        }
        let prefill_done = self.prefill_done.unwrap_or_else(Instant::now);
        let _ = self.job.events.send(Event::Finished {
            choice: self.choice,
            reason,
            completion_tokens: self.generated,
            prompt_ms: (prefill_done - self.started).as_secs_f64() * 1e3,
            predicted_ms: prefill_done.elapsed().as_secs_f64() * 1e3,
        });
        Progress::Finished
    }
}
