//! Text splitters with LangChain's semantics.
//!
//! [`RecursiveSplitter`] is `RecursiveCharacterTextSplitter`: try each separator in turn
//! (default `["\n\n", "\n", " ", ""]`), split on the first one the text contains, keep the
//! separator at the start of the following piece, merge pieces up to `chunk_size` with up to
//! `chunk_overlap` carried over, and recurse with the remaining separators into pieces that are
//! still too long. Length is measured by a [`Length`]: characters (LangChain's default) or tokens
//! of any tokenizer. Chunks are stripped of surrounding whitespace and carry their byte offset
//! in the source, found the way LangChain's `add_start_index` finds it.

pub mod window;

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

impl Chunk {
    /// Byte offset just past `text` in the source: `source[start..end()] == text`.
    pub fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

/// Anything that cuts a text into [`Chunk`]s with offsets (the recursive splitter, token
/// windows), so retrievers can take whichever the caller picks.
pub trait Splitter {
    /// The chunks of `text`, in order.
    fn chunks(&self, text: &str) -> Result<Vec<Chunk>>;
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

    /// Token-length splitter with LangChain's default separators: chunk sizes count tokens of
    /// `tokenizer` (LangChain's `from_huggingface_tokenizer`).
    pub fn from_tokenizer(tokenizer: &'a llm_core::Tokenizer, chunk_size: usize, chunk_overlap: usize) -> Result<Self> {
        Self::with_separators(chunk_size, chunk_overlap, &["\n\n", "\n", " ", ""], Length::Tokens(tokenizer))
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

impl Splitter for RecursiveSplitter<'_> {
    fn chunks(&self, text: &str) -> Result<Vec<Chunk>> {
        Ok(self.split_with_offsets(text))
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

/// A section of a Markdown document with its header path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkdownChunk {
    /// The section's text (lines joined as LangChain joins them).
    pub content: String,
    /// Header name (e.g. `h2`) to header text, for every header above the section.
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// LangChain's `MarkdownHeaderTextSplitter` (`return_each_line=False`): splits on the given
/// headers (outside ``` and ~~~ code fences), records the header path in the metadata, and
/// merges consecutive lines under the same headers.
pub struct MarkdownHeaderSplitter {
    /// `(marker, name)`, e.g. `("##", "h2")`; tried longest marker first.
    pub headers: Vec<(String, String)>,
    /// Drop the header lines from the content.
    pub strip_headers: bool,
}

/// Python's `str.isprintable` for one character, closely enough for Markdown lines: control
/// characters, non-ASCII spaces and zero-width format characters are not printable.
fn printable(c: char) -> bool {
    c == ' ' || !(c.is_control() || c.is_whitespace() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
}

impl MarkdownHeaderSplitter {
    /// Splits on `headers` (`[("#", "h1"), ("##", "h2")]`).
    pub fn new(headers: &[(&str, &str)], strip_headers: bool) -> Self {
        let mut headers: Vec<(String, String)> = headers.iter().map(|(m, n)| (m.to_string(), n.to_string())).collect();
        headers.sort_by_key(|(m, _)| std::cmp::Reverse(m.len()));
        Self { headers, strip_headers }
    }

    /// The sections of `text`.
    pub fn split_text(&self, text: &str) -> Vec<MarkdownChunk> {
        type Meta = std::collections::BTreeMap<String, String>;
        let mut lines: Vec<MarkdownChunk> = vec![];
        let mut content: Vec<String> = vec![];
        let (mut current, mut initial): (Meta, Meta) = Default::default();
        let mut stack: Vec<(usize, String)> = vec![];
        let (mut in_code, mut fence) = (false, "");
        let flush = |content: &mut Vec<String>, meta: &Meta, lines: &mut Vec<MarkdownChunk>| {
            if !content.is_empty() {
                lines.push(MarkdownChunk { content: content.join("\n"), metadata: meta.clone() });
                content.clear();
            }
        };
        for line in text.split('\n') {
            let stripped: String = line.trim().chars().filter(|&c| printable(c)).collect();
            if !in_code {
                if stripped.starts_with("```") && stripped.matches("```").count() == 1 {
                    (in_code, fence) = (true, "```");
                } else if stripped.starts_with("~~~") {
                    (in_code, fence) = (true, "~~~");
                }
            } else if stripped.starts_with(fence) {
                (in_code, fence) = (false, "");
            }
            if in_code {
                content.push(stripped);
                continue;
            }
            let header = self.headers.iter().find(|(m, _)| {
                stripped.starts_with(m.as_str()) && (stripped.len() == m.len() || stripped[m.len()..].starts_with(' '))
            });
            match header {
                Some((marker, name)) => {
                    let level = marker.matches('#').count();
                    while stack.last().is_some_and(|(l, _)| *l >= level) {
                        let (_, popped) = stack.pop().expect("checked");
                        initial.remove(&popped);
                    }
                    stack.push((level, name.clone()));
                    initial.insert(name.clone(), stripped[marker.len()..].trim().to_string());
                    flush(&mut content, &current, &mut lines);
                    if !self.strip_headers {
                        content.push(stripped.clone());
                    }
                }
                None if !stripped.is_empty() => content.push(stripped),
                None => flush(&mut content, &current, &mut lines),
            }
            current = initial.clone();
        }
        flush(&mut content, &current, &mut lines);
        self.aggregate(lines)
    }

    fn aggregate(&self, lines: Vec<MarkdownChunk>) -> Vec<MarkdownChunk> {
        let mut out: Vec<MarkdownChunk> = vec![];
        for line in lines {
            match out.last_mut() {
                Some(last) if last.metadata == line.metadata => {
                    last.content.push_str("  \n");
                    last.content.push_str(&line.content);
                }
                Some(last)
                    if last.metadata.len() < line.metadata.len()
                        && last.content.rsplit('\n').next().is_some_and(|l| l.starts_with('#'))
                        && !self.strip_headers =>
                {
                    last.content.push_str("  \n");
                    last.content.push_str(&line.content);
                    last.metadata = line.metadata;
                }
                _ => out.push(line),
            }
        }
        out
    }
}
