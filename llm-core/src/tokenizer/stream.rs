//! Incremental detokenisation for streaming.

use super::Tokenizer;
use crate::error::Result;

/// Turns ids arriving one by one into text deltas.
///
/// A character can span several byte-level tokens and SentencePiece merges spaces with the
/// next token, so each delta is the difference between decoding a short window of ids with
/// and without the newest one; text ending in U+FFFD (an incomplete UTF-8 sequence) is held
/// back until the next id completes it. Concatenating the deltas gives `decode(all ids)`.
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    skip_special_tokens: bool,
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl<'a> StreamDecoder<'a> {
    pub(super) fn new(tokenizer: &'a Tokenizer, skip_special_tokens: bool) -> Self {
        Self { tokenizer, skip_special_tokens, ids: vec![], prefix_offset: 0, read_offset: 0 }
    }

    /// Adds one id; returns the text it completes, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        let prefix = self.tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset], self.skip_special_tokens)?;
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids[self.prefix_offset..], self.skip_special_tokens)?;
        if text.len() > prefix.len() && !text.ends_with('\u{FFFD}') {
            if let Some(delta) = text.strip_prefix(prefix.as_str()) {
                let delta = delta.to_string();
                self.prefix_offset = self.read_offset;
                self.read_offset = self.ids.len();
                return Ok(Some(delta));
            }
        }
        Ok(None)
    }

    /// Whatever is still held back (an incomplete character at the very end).
    pub fn flush(&mut self) -> Result<Option<String>> {
        let prefix = self.tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset], self.skip_special_tokens)?;
        let text = self.tokenizer.decode(&self.ids[self.prefix_offset..], self.skip_special_tokens)?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        Ok(text.strip_prefix(prefix.as_str()).filter(|d| !d.is_empty()).map(str::to_string))
    }

    /// Every id pushed so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}
