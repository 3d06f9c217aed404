//! Tokenizers over the `tokenizers` crate: `tokenizer.json` directories (with
//! `tokenizer_config.json`, `special_tokens_map.json`, `chat_template.jinja`) or the
//! `tokenizer.ggml.*` metadata of a GGUF file; batches with padding and truncation; a
//! streaming decoder that never emits broken UTF-8.

mod bytes;
mod checks;
mod gguf;
mod stream;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use bytes::SPECIAL_TOKEN_MARKER;
pub use stream::StreamDecoder;

use crate::chat::ChatTemplate;
use crate::error::{LlmError, Result};

/// One encoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Token strings as the vocabulary spells them (`Ġworld`, `▁the`).
    pub tokens: Vec<String>,
    /// `(start, end)` of each token in the text, in characters (Unicode scalar values), as
    /// transformers' `return_offsets_mapping` reports them.
    pub offsets: Vec<(usize, usize)>,
}

/// Which side padding goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaddingSide {
    /// Pad before the text: what decoder-only generation needs.
    #[default]
    Left,
    /// Pad after the text.
    Right,
}

/// A padded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// `[batch][max_len]`
    pub ids: Vec<Vec<u32>>,
    /// `[batch][max_len]`, false at padding.
    pub attention_mask: Vec<Vec<bool>>,
}

/// A tokenizer with its special tokens and chat template.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    pad_token: Option<String>,
    chat_template: Option<ChatTemplate>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("source", &self.source).field("vocab_size", &self.vocab_size()).finish()
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json` from a model directory, with `tokenizer_config.json`,
    /// `special_tokens_map.json` and the chat template (`chat_template.jinja`, or
    /// `tokenizer_config.json`'s `chat_template`) when present.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let mut tok = Self::from_file(dir.join("tokenizer.json"))?;
        let config = read_json_opt(&dir.join("tokenizer_config.json"))?;
        let special_map = read_json_opt(&dir.join("special_tokens_map.json"))?;
        for cfg in [special_map.as_ref(), config.as_ref()].into_iter().flatten() {
            tok.bos_token = token_field(cfg, "bos_token").or(tok.bos_token.take());
            tok.eos_token = token_field(cfg, "eos_token").or(tok.eos_token.take());
            tok.pad_token = token_field(cfg, "pad_token").or(tok.pad_token.take());
        }
        let jinja = dir.join("chat_template.jinja");
        let template = if jinja.exists() {
            Some(std::fs::read_to_string(&jinja).map_err(|e| LlmError::io(&jinja, e))?)
        } else {
            config.as_ref().and_then(|c| c.get("chat_template")).and_then(template_from_config)
        };
        tok.chat_template = template.map(|t| ChatTemplate::new(jinja.display().to_string(), t)).transpose()?;
        Ok(tok)
    }

    /// Loads a bare `tokenizer.json` (no special-token names, no chat template).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| LlmError::io(path, e))?;
        // Parsed as JSON first, then built from the value: tokenizers panics (an `expect` in its
        // decoder deserializer) on a syntax error or invalid UTF-8 inside `decoder`, as a
        // truncated download has, and a value has neither.
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| LlmError::Json { path: path.to_path_buf(), source })?;
        let invalid = |message: String| LlmError::Tokenizer { source_name: path.display().to_string(), message };
        let inner: tokenizers::Tokenizer = serde_json::from_value(json).map_err(|e| invalid(e.to_string()))?;
        checks::check_post_processor(&inner).map_err(invalid)?;
        Ok(Self::wrap(inner, path.display().to_string()))
    }

    /// Builds the tokenizer a GGUF file embeds (`tokenizer.ggml.*`): byte-level BPE
    /// (`gpt2`: GPT-2, SmolLM2, Llama 3) or SentencePiece-style BPE (`llama`), with its chat
    /// template (`tokenizer.chat_template`).
    pub fn from_gguf(file: &crate::weights::GgufFile) -> Result<Self> {
        gguf::from_gguf(file)
    }

    /// Writes `tokenizer.json`, `tokenizer_config.json` (special tokens) and, when there is one,
    /// `chat_template.jinja` into `dir`, the way transformers 5 saves a tokenizer; files already
    /// there are replaced.
    pub fn save_dir(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let path = dir.join("tokenizer.json");
        self.inner.save(&path, false).map_err(|e| self.err(format!("saving {}: {e}", path.display())))?;
        let mut config = serde_json::Map::new();
        for (key, value) in [("bos_token", &self.bos_token), ("eos_token", &self.eos_token), ("pad_token", &self.pad_token)] {
            if let Some(v) = value {
                config.insert(key.into(), v.clone().into());
            }
        }
        config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        let path = dir.join("tokenizer_config.json");
        let text = serde_json::to_string_pretty(&config).expect("a JSON map serialises");
        std::fs::write(&path, text).map_err(|e| LlmError::io(&path, e))?;
        if let Some(t) = &self.chat_template {
            let path = dir.join("chat_template.jinja");
            std::fs::write(&path, t.source()).map_err(|e| LlmError::io(&path, e))?;
        }
        Ok(())
    }

    pub(crate) fn wrap(inner: tokenizers::Tokenizer, source: String) -> Self {
        Self { inner, source, bos_token: None, eos_token: None, pad_token: None, chat_template: None }
    }

    pub(crate) fn with_specials(
        mut self,
        bos: Option<String>,
        eos: Option<String>,
        pad: Option<String>,
        template: Option<ChatTemplate>,
    ) -> Self {
        self.bos_token = bos;
        self.eos_token = eos;
        self.pad_token = pad;
        self.chat_template = template;
        self
    }

    fn err(&self, e: impl std::fmt::Display) -> LlmError {
        LlmError::Tokenizer { source_name: self.source.clone(), message: e.to_string() }
    }

    /// Encodes one text; `add_special_tokens` applies the post-processor (e.g. a BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Encoding> {
        let enc = self.inner.encode_char_offsets(text, add_special_tokens).map_err(|e| self.err(e))?;
        Ok(Encoding { ids: enc.get_ids().to_vec(), tokens: enc.get_tokens().to_vec(), offsets: enc.get_offsets().to_vec() })
    }

    /// Encodes texts into a padded batch. `max_len` truncates each text's ids (keeping the
    /// start); padding uses the pad token (or EOS when there is none).
    pub fn encode_batch(
        &self,
        texts: &[&str],
        add_special_tokens: bool,
        side: PaddingSide,
        max_len: Option<usize>,
    ) -> Result<Batch> {
        let mut rows = texts
            .iter()
            .map(|t| self.encode(t, add_special_tokens).map(|e| e.ids))
            .collect::<Result<Vec<_>>>()?;
        if let Some(m) = max_len {
            rows.iter_mut().for_each(|r| r.truncate(m));
        }
        let pad = self.pad_token_id().or(self.eos_token_id()).ok_or_else(|| self.err("no pad or eos token to pad with"))?;
        let width = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut batch = Batch { ids: vec![], attention_mask: vec![] };
        for row in rows {
            let n = width - row.len();
            let (ids, mask) = match side {
                PaddingSide::Left => ([vec![pad; n], row.clone()].concat(), [vec![false; n], vec![true; row.len()]].concat()),
                PaddingSide::Right => ([row.clone(), vec![pad; n]].concat(), [vec![true; row.len()], vec![false; n]].concat()),
            };
            batch.ids.push(ids);
            batch.attention_mask.push(mask);
        }
        Ok(batch)
    }

    /// Decodes ids to text.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner.decode(ids, skip_special_tokens).map_err(|e| self.err(e))
    }

    /// A decoder for ids arriving one at a time.
    pub fn stream_decoder(&self, skip_special_tokens: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(self, skip_special_tokens)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token string.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The string of a token id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Beginning-of-sequence token.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// End-of-sequence token.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// Id of the EOS token.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    /// Id of the padding token.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.pad_token.as_deref().and_then(|t| self.token_to_id(t))
    }

    /// The model's chat template, if it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Replaces the chat template (e.g. with a built-in one for a checkpoint that has none).
    pub fn set_chat_template(&mut self, template: ChatTemplate) {
        self.chat_template = Some(template);
    }

    /// Renders a conversation with the model's template and the tokenizer's special tokens.
    pub fn apply_chat_template(&self, messages: &[crate::chat::Message], add_generation_prompt: bool) -> Result<String> {
        self.apply_chat_template_with_tools(messages, add_generation_prompt, None)
    }

    /// As [`Self::apply_chat_template`], with `tools` (a JSON list of function schemas) passed
    /// to the template as transformers does.
    pub fn apply_chat_template_with_tools(
        &self,
        messages: &[crate::chat::Message],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<String> {
        let template = self.chat_template.as_ref().ok_or_else(|| {
            self.err("this tokenizer has no chat template; set one with set_chat_template (see chat::BuiltinTemplate)")
        })?;
        template.render(&crate::chat::RenderContext {
            messages,
            add_generation_prompt,
            bos_token: self.bos_token.as_deref().unwrap_or(""),
            eos_token: self.eos_token.as_deref().unwrap_or(""),
            tools,
        })
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

fn read_json_opt(path: &PathBuf) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|e| LlmError::io(path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|source| LlmError::Json { path: path.clone(), source })
}

/// Special tokens are written as a string or as an AddedToken object with `content`.
fn token_field(cfg: &Value, key: &str) -> Option<String> {
    match cfg.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// `chat_template` in `tokenizer_config.json` is a string, or a list of named templates
/// (`[{"name": "default", "template": ...}, ...]`).
fn template_from_config(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items
            .iter()
            .find(|i| i.get("name").and_then(Value::as_str) == Some("default"))
            .or_else(|| items.first())
            .and_then(|i| i.get("template"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}
