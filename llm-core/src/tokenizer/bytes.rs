//! The bytes each token stands for, as a constrained-decoding engine needs them: a grammar is
//! matched on bytes, and a token is allowed when its bytes extend the text in the grammar.
//!
//! Two vocabulary spellings exist: byte-level BPE (GPT-2, SmolLM2, Llama 3) writes each byte as
//! one printable character (`Ġ` is the space), and SentencePiece-style vocabularies (Llama 2,
//! Mistral) write the space as `▁` and bytes as `<0xNN>` (byte fallback).

use std::collections::HashMap;

use serde_json::Value;

use super::Tokenizer;
use crate::error::Result;

/// llguidance's (toktrie's) prefix that marks a special token's bytes, so that text never
/// matches `<|im_end|>` and a grammar names it as a token instead.
pub const SPECIAL_TOKEN_MARKER: u8 = 0xff;

/// How the vocabulary spells bytes, read off the decoder.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Spelling {
    ByteLevel,
    /// The character that stands for a space (`▁`), and whether `<0xNN>` tokens are bytes.
    Pieces { space: char, byte_fallback: bool },
}

impl Tokenizer {
    /// The bytes of every token id up to the largest; special tokens start with
    /// [`SPECIAL_TOKEN_MARKER`]. Ids the vocabulary skips have no bytes.
    pub fn token_bytes(&self) -> Result<Vec<Vec<u8>>> {
        let spelling = self.spelling()?;
        let byte_of = byte_level_chars();
        let vocab = self.inner.get_vocab(true);
        let len = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0).max(self.vocab_size());
        let mut out = vec![vec![]; len];
        let added = self.inner.get_added_tokens_decoder();
        for (token, id) in vocab {
            let Some(slot) = out.get_mut(id as usize) else { continue };
            *slot = match added.get(&id) {
                Some(a) if a.special => [&[SPECIAL_TOKEN_MARKER], a.content.as_bytes()].concat(),
                Some(a) => a.content.clone().into_bytes(),
                None => spell(&token, spelling, &byte_of)
                    .ok_or_else(|| self.err(format!("token {id} ({token:?}) is not spelled as its decoder expects")))?,
            };
        }
        Ok(out)
    }

    fn spelling(&self) -> Result<Spelling> {
        let decoder = self.inner.get_decoder().map(serde_json::to_value).transpose().map_err(|e| self.err(e))?;
        let decoders: Vec<Value> = match decoder {
            Some(Value::Object(d)) if d.get("type").and_then(Value::as_str) == Some("Sequence") => {
                d.get("decoders").and_then(Value::as_array).cloned().unwrap_or_default()
            }
            Some(d) => vec![d],
            None => vec![],
        };
        let kind = |d: &Value| d.get("type").and_then(Value::as_str).unwrap_or("").to_string();
        if decoders.iter().any(|d| kind(d) == "ByteLevel") {
            return Ok(Spelling::ByteLevel);
        }
        let byte_fallback = decoders.iter().any(|d| kind(d) == "ByteFallback");
        for d in &decoders {
            let space = match kind(d).as_str() {
                "Metaspace" => d.get("replacement").and_then(Value::as_str),
                "Replace" if d.get("content").and_then(Value::as_str) == Some(" ") => {
                    d.get("pattern").and_then(|p| p.get("String")).and_then(Value::as_str)
                }
                _ => None,
            };
            if let Some(space) = space.and_then(single_char) {
                return Ok(Spelling::Pieces { space, byte_fallback });
            }
        }
        let kinds: Vec<String> = decoders.iter().map(kind).collect();
        Err(self.err(format!(
            "cannot tell how tokens spell bytes from decoder {kinds:?} (ByteLevel, or Metaspace / Replace('▁', ' ') expected)"
        )))
    }
}

fn single_char(s: &str) -> Option<char> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

fn spell(token: &str, spelling: Spelling, byte_of: &HashMap<char, u8>) -> Option<Vec<u8>> {
    match spelling {
        Spelling::ByteLevel => token.chars().map(|c| byte_of.get(&c).copied()).collect(),
        Spelling::Pieces { space, byte_fallback } => {
            if byte_fallback {
                if let Some(hex) = token.strip_prefix("<0x").and_then(|t| t.strip_suffix('>')) {
                    if hex.len() == 2 {
                        return u8::from_str_radix(hex, 16).ok().map(|b| vec![b]);
                    }
                }
            }
            Some(token.replace(space, " ").into_bytes())
        }
    }
}

/// GPT-2's byte-to-character table, inverted: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes for the characters from U+0100 on, in byte order.
fn byte_level_chars() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
    let mut next = 0x100u32;
    (0..=255u8)
        .map(|b| {
            if printable(b) {
                (char::from(b), b)
            } else {
                let c = char::from_u32(next).expect("U+0100..U+0143 are characters");
                next += 1;
                (c, b)
            }
        })
        .collect()
}
