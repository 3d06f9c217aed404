//! Fixed token windows: LangChain's `TokenTextSplitter` over any llm-core tokenizer.
//!
//! The text is encoded once (no special tokens); window `i` holds tokens
//! `[i·(window − overlap), i·(window − overlap) + window)`, the last window ends at the last
//! token, and no window is emitted past it (LangChain's `split_text_on_tokens`). So `n` tokens
//! give `1 + ⌈(n − window) / (window − overlap)⌉` windows when `n > window`, one when
//! `0 < n ≤ window`, none for an empty text.
//!
//! LangChain decodes each window's ids; here a window is the span of the source its tokens
//! cover (the tokenizer's offsets), so `chunk.text == source[chunk.start..chunk.end()]` holds
//! exactly and no decoding artefacts (byte-level `Ġ`, SentencePiece `▁`) appear. Two tokens
//! that share one character (byte-level BPE splitting a multi-byte character) both cover the
//! whole character, so a window edge between them widens to the character boundary.

use llm_core::Tokenizer;

use crate::error::{RagError, Result};
use crate::split::{Chunk, Splitter};

/// Windows of `window` tokens, consecutive windows sharing `overlap` tokens.
#[derive(Debug, Clone)]
pub struct TokenWindowSplitter<'a> {
    tokenizer: &'a Tokenizer,
    window: usize,
    overlap: usize,
}

impl<'a> TokenWindowSplitter<'a> {
    /// Validates the sizes: `window > 0` and `overlap < window` (else [`RagError::Config`]
    /// naming the field).
    pub fn new(tokenizer: &'a Tokenizer, window: usize, overlap: usize) -> Result<Self> {
        if window == 0 {
            return Err(RagError::Config { field: "window".into(), message: "a window of 0 tokens holds nothing".into() });
        }
        if overlap >= window {
            return Err(RagError::Config {
                field: "overlap".into(),
                message: format!("overlap {overlap} must be smaller than window {window} (the windows would not advance)"),
            });
        }
        Ok(Self { tokenizer, window, overlap })
    }

    /// Tokens per window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Tokens shared by consecutive windows.
    pub fn overlap(&self) -> usize {
        self.overlap
    }

    /// The windows' texts.
    pub fn split_text(&self, text: &str) -> Result<Vec<String>> {
        Ok(self.split_with_offsets(text)?.into_iter().map(|c| c.text).collect())
    }

    /// The windows with their byte offsets in `text`; windows whose tokens cover no text
    /// are left out (LangChain drops empty decodes).
    pub fn split_with_offsets(&self, text: &str) -> Result<Vec<Chunk>> {
        let offsets = self.tokenizer.encode(text, false)?.offsets;
        let bytes = char_to_byte(text);
        let byte_at = |c: usize| bytes[c.min(bytes.len() - 1)];
        let stride = self.window - self.overlap;
        let mut out = vec![];
        let mut first = 0;
        while first < offsets.len() {
            let last = (first + self.window).min(offsets.len());
            let span = &offsets[first..last];
            // min/max rather than first/last: offsets need not be monotone (added tokens).
            let start = span.iter().map(|o| o.0).min().expect("a window holds a token");
            let end = span.iter().map(|o| o.1).max().expect("a window holds a token");
            let (start, end) = (byte_at(start), byte_at(end));
            if end > start {
                out.push(Chunk { text: text[start..end].to_string(), start });
            }
            if last == offsets.len() {
                break;
            }
            first += stride;
        }
        Ok(out)
    }
}

impl Splitter for TokenWindowSplitter<'_> {
    fn chunks(&self, text: &str) -> Result<Vec<Chunk>> {
        self.split_with_offsets(text)
    }
}

/// Byte offset of each character index of `text`, plus `text.len()` for the end.
fn char_to_byte(text: &str) -> Vec<usize> {
    text.char_indices().map(|(b, _)| b).chain(std::iter::once(text.len())).collect()
}
