//! Streaming one prompt as text deltas.

use std::time::{Duration, Instant};

use burn::tensor::backend::Backend;

use super::{DecodeState, StopReason};
use crate::error::Result;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// One streamed step.
#[derive(Debug, Clone, PartialEq)]
pub struct TextDelta {
    /// The id generated at this step.
    pub token_id: u32,
    /// Text completed by this token (empty while a character is still incomplete).
    pub text: String,
    /// Time of this step's forward pass and sampling (the first includes the prefill).
    pub elapsed: Duration,
    /// Set on the last delta.
    pub stop: Option<StopReason>,
}

/// An iterator of [`TextDelta`]s; ends after the stop condition.
pub struct TextStream<'g, B: Backend> {
    state: DecodeState<'g, 'g, B>,
    decoder: StreamDecoder<'g>,
    done: bool,
}

impl<'g, B: Backend> TextStream<'g, B> {
    pub(super) fn new(state: DecodeState<'g, 'g, B>, tokenizer: &'g Tokenizer) -> Self {
        Self { state, decoder: tokenizer.stream_decoder(true), done: false }
    }

    fn next_delta(&mut self) -> Result<Option<TextDelta>> {
        if self.done || self.state.finished() {
            return Ok(None);
        }
        let start = Instant::now();
        let Some(id) = self.state.step()?[0] else { return Ok(None) };
        let mut text = self.decoder.push(id)?.unwrap_or_default();
        let stop = self.state.stop[0];
        if stop.is_some() {
            self.done = true;
            text += &self.decoder.flush()?.unwrap_or_default();
        }
        Ok(Some(TextDelta { token_id: id, text, elapsed: start.elapsed(), stop }))
    }
}

impl<B: Backend> Iterator for TextStream<'_, B> {
    type Item = Result<TextDelta>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_delta() {
            Ok(Some(d)) => Some(Ok(d)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
