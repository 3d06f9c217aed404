//! Text splitters with LangChain's semantics.
//!
//! [`RecursiveSplitter`] is `RecursiveCharacterTextSplitter`: try each separator in turn
//! (default `["\n\n", "\n", " ", ""]`), split on the first one the text contains, keep the
//! separator at the start of the following piece, merge pieces up to `chunk_size` with up to
//! `chunk_overlap` carried over, and recurse with the remaining separators into pieces that are
//! still too long. Length is measured by a [`Length`]: characters (LangChain's default) or tokens
//! of any tokenizer. Chunks are stripped of surrounding whitespace and carry their byte offset
//! in the source, found the way LangChain's `add_start_index` finds it.

use crate::error::{RagError, Result};

/// How chunk length is measured.
pub enum Length<'a> {
    /// Unicode scalar values (Python's `len`).
    Chars,
    /// Tokens of a tokenizer (special tokens not added).
    Tokens(&'a llm_core::Tokenizer),
}

impl Length<'_> {
    /// The length of `s`.
    pub fn of(&self, s: &str) -> usize {
        match self {
            Self::Chars => s.chars().count(),
            Self::Tokens(t) => t.encode(s, false).map(|e| e.ids.len()).unwrap_or_else(|_| s.chars().count()),
        }
    }
}

/// One chunk of a source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The text (whitespace-stripped).
    pub text: String,
    /// Byte offset of `text` in the source.
    pub start: usize,
}

/// LangChain's `RecursiveCharacterTextSplitter` (literal separators, `keep_separator=True`,
/// `strip_whitespace=True`).
pub struct RecursiveSplitter<'a> {
    /// Largest chunk, in `length` units.
    pub chunk_size: usize,
    /// Overlap carried between consecutive chunks.
    pub chunk_overlap: usize,
    /// Separators, most preferred first; `""` splits into characters.
    pub separators: Vec<String>,
    /// Length measure.
    pub length: Length<'a>,
}

impl<'a> RecursiveSplitter<'a> {
    /// Character-length splitter with LangChain's default separators; an overlap not smaller
    /// than the chunk size is an error (as in LangChain).
    pub fn new(chunk_size: usize, chunk_overlap: usize) -> Result<Self> {
        Self::with_separators(chunk_size, chunk_overlap, &["\n\n", "\n", " ", ""], Length::Chars)
    }

    /// Any separators and length measure.
    pub fn with_separators(chunk_size: usize, chunk_overlap: usize, separators: &[&str], length: Length<'a>) -> Result<Self> {
        if chunk_size == 0 || chunk_overlap >= chunk_size {
            return Err(RagError::Config {
                field: "chunk_overlap".into(),
                message: format!("overlap {chunk_overlap} must be smaller than chunk_size {chunk_size} (and chunk_size > 0)"),
            });
        }
        Ok(Self { chunk_size, chunk_overlap, separators: separators.iter().map(|s| s.to_string()).collect(), length })
    }

    /// The chunks' texts.
    pub fn split_text(&self, text: &str) -> Vec<String> {
        self.split(text, &self.separators)
    }

    /// Chunks with their byte offsets in `text`.
    pub fn split_with_offsets(&self, text: &str) -> Vec<Chunk> {
        let mut out = vec![];
        let (mut index, mut previous_len) = (0usize, 0usize);
        for chunk in self.split_text(text) {
            // LangChain: search from index + previous_len - overlap (in characters; here bytes
            // of the chunk, moved back by the overlap's bytes at most).
            let back = char_bytes_back(text, index + previous_len, self.chunk_overlap);
            let from = floor_boundary(text, back);
            let start = text[from..].find(&chunk).map(|i| i + from).or_else(|| text.find(&chunk)).unwrap_or(index);
            index = start;
            previous_len = chunk.len();
            out.push(Chunk { text: chunk, start });
        }
        out
    }

    fn split(&self, text: &str, separators: &[String]) -> Vec<String> {
        let mut separator = separators.last().cloned().unwrap_or_default();
        let mut rest: &[String] = &[];
        for (i, s) in separators.iter().enumerate() {
            if s.is_empty() {
                separator = String::new();
                break;
            }
            if text.contains(s.as_str()) {
                separator = s.clone();
                rest = &separators[i + 1..];
                break;
            }
        }
        let splits = split_keeping_separator(text, &separator);
        let mut chunks = vec![];
        let mut good: Vec<String> = vec![];
        for s in splits {
            if self.length.of(&s) < self.chunk_size {
                good.push(s);
                continue;
            }
            if !good.is_empty() {
                chunks.extend(self.merge(&std::mem::take(&mut good), ""));
            }
            if rest.is_empty() {
                chunks.push(s);
            } else {
                chunks.extend(self.split(&s, rest));
            }
        }
        if !good.is_empty() {
            chunks.extend(self.merge(&good, ""));
        }
        chunks
    }

    /// LangChain's `_merge_splits`.
    fn merge(&self, splits: &[String], separator: &str) -> Vec<String> {
        let sep_len = self.length.of(separator);
        let mut docs = vec![];
        let mut current: std::collections::VecDeque<&String> = Default::default();
        let mut total = 0usize;
        for d in splits {
            let len = self.length.of(d);
            let extra = if current.is_empty() { 0 } else { sep_len };
            if total + len + extra > self.chunk_size && !current.is_empty() {
                if let Some(doc) = join(&current, separator) {
                    docs.push(doc);
                }
                while total > self.chunk_overlap
                    || (total + len + if current.is_empty() { 0 } else { sep_len } > self.chunk_size && total > 0)
                {
                    let first = current.pop_front().expect("total > 0 means a piece is held");
                    total -= self.length.of(first) + if current.is_empty() { 0 } else { sep_len };
                }
            }
            current.push_back(d);
            total += len + if current.len() > 1 { sep_len } else { 0 };
        }
        if let Some(doc) = join(&current, separator) {
            docs.push(doc);
        }
        docs
    }
}

fn join(pieces: &std::collections::VecDeque<&String>, separator: &str) -> Option<String> {
    let text = pieces.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(separator);
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// `re.split(f"({sep})")` with the separator glued to the start of the following piece;
/// `""` splits into characters; empty pieces dropped.
fn split_keeping_separator(text: &str, separator: &str) -> Vec<String> {
    if separator.is_empty() {
        return text.chars().map(String::from).collect();
    }
    let mut out = vec![];
    let mut last = 0;
    for (i, _) in text.match_indices(separator) {
        // The piece before this separator; the next piece starts with it.
        out.push(text[last..i].to_string());
        last = i;
    }
    out.push(text[last..].to_string());
    out.into_iter().filter(|s| !s.is_empty()).collect()
}

fn char_bytes_back(text: &str, pos: usize, chars: usize) -> usize {
    let pos = floor_boundary(text, pos.min(text.len()));
    text[..pos].char_indices().rev().nth(chars.saturating_sub(1)).map_or(0, |(i, _)| if chars == 0 { pos } else { i })
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}
