//! Constrained decoding: the output must match a JSON Schema, any JSON object, a regular
//! expression or a context-free grammar (Lark, or llama.cpp's GBNF converted to Lark).
//!
//! The engine is llguidance (the one vLLM, SGLang and llama.cpp use): it compiles the
//! constraint once against the tokenizer's token bytes, then gives, per step, the set of tokens
//! whose bytes keep the output inside the language. The decode loop turns the rest to `-inf`
//! before the logits processors run, so a constraint combines with penalties, temperature,
//! top-k/top-p and batched prompts (one matcher per row).

mod gbnf;

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokEnv, TokRxInfo, TokTrie};
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};

pub use gbnf::gbnf_to_lark;

use crate::error::{LlmError, Result};
use crate::tokenizer::Tokenizer;

/// What the generated text must match.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// A JSON Schema: `type`, `properties` / `required` / `additionalProperties`, `enum`,
    /// `const`, `items` with `minItems` / `maxItems`, `anyOf` / `oneOf` / `allOf`, `$ref` to
    /// `$defs`, numeric bounds, string `minLength` / `maxLength` / `pattern` / `format`
    /// (what llguidance compiles). Unless the schema's top-level `x-guidance` says otherwise,
    /// the JSON is written on one line with `", "` and `": "` between items, as Python's
    /// `json.dumps` does, so that its length is bounded by the schema's.
    JsonSchema(Value),
    /// Any JSON object.
    JsonObject,
    /// A regular expression the whole output matches (Rust `regex` syntax, no look-around).
    Regex(String),
    /// A context-free grammar in llguidance's Lark dialect (`start: ...`).
    Lark(String),
    /// A context-free grammar in llama.cpp's GBNF (`root ::= ...`), converted to Lark.
    Gbnf(String),
}

impl Constraint {
    /// The constraint's kind, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::JsonSchema(_) => "json_schema",
            Self::JsonObject => "json_object",
            Self::Regex(_) => "regex",
            Self::Lark(_) => "lark grammar",
            Self::Gbnf(_) => "gbnf grammar",
        }
    }

    fn grammar(&self) -> Result<TopLevelGrammar> {
        Ok(match self {
            Self::JsonSchema(schema) => TopLevelGrammar::from_json_schema(with_compact_separators(schema)?),
            Self::JsonObject => TopLevelGrammar::from_json_schema(with_compact_separators(&json!({"type": "object"}))?),
            Self::Regex(rx) => TopLevelGrammar::from_regex(rx),
            Self::Lark(g) => TopLevelGrammar::from_lark(g.clone()),
            Self::Gbnf(g) => TopLevelGrammar::from_lark(gbnf_to_lark(g)?),
        })
    }
}

/// A schema must be an object (or `true`); `x-guidance` defaults to one-line JSON.
fn with_compact_separators(schema: &Value) -> Result<Value> {
    let mut schema = match schema {
        Value::Object(_) => schema.clone(),
        Value::Bool(true) => json!({}),
        other => {
            return Err(LlmError::Constraint {
                kind: "json_schema".into(),
                message: format!("a schema is a JSON object, got {other}"),
            })
        }
    };
    let obj = schema.as_object_mut().expect("checked above");
    obj.entry("x-guidance")
        .or_insert_with(|| json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}));
    Ok(schema)
}

/// The tokenizer's vocabulary as llguidance sees it; build once per model, compile many
/// constraints with it.
#[derive(Clone)]
pub struct ConstraintEngine {
    factory: Arc<ParserFactory>,
}

impl std::fmt::Debug for ConstraintEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintEngine").field("vocab_size", &self.factory.tok_env().tok_trie().vocab_size()).finish()
    }
}

impl ConstraintEngine {
    /// `vocab_size`: the model's logits width (the tokenizer's ids beyond it are dropped, ids
    /// it has beyond the tokenizer's never match); `eos`: the ids that end generation, allowed
    /// once the output is complete.
    pub fn new(tokenizer: &Tokenizer, vocab_size: usize, eos: &[u32]) -> Result<Self> {
        let mut words = tokenizer.token_bytes()?;
        words.resize(vocab_size, vec![]);
        let &first_eos = eos.first().ok_or_else(|| {
            LlmError::config("eos_token_id", "constrained decoding needs an EOS token to end a complete output")
        })?;
        if let Some(&bad) = eos.iter().find(|&&e| e as usize >= vocab_size) {
            return Err(LlmError::config("eos_token_id", format!("{bad} is outside the vocabulary of {vocab_size}")));
        }
        let trie = TokTrie::from(&TokRxInfo::new(vocab_size as u32, first_eos), &words).with_eos_tokens(eos);
        let env: TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| LlmError::Constraint {
            kind: "tokenizer".into(),
            message: e.to_string(),
        })?;
        // A library does not write to stderr: errors come back as values.
        factory.quiet();
        Ok(Self { factory: Arc::new(factory) })
    }

    /// Compiles a constraint; an unsupported or malformed one is [`LlmError::Constraint`]
    /// naming the construct the engine rejected.
    pub fn compile(&self, constraint: &Constraint) -> Result<CompiledConstraint> {
        let parser = self.factory.create_parser(constraint.grammar()?).map_err(|e| LlmError::Constraint {
            kind: constraint.kind().into(),
            message: e.to_string(),
        })?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(message) = matcher.get_error() {
            return Err(LlmError::Constraint { kind: constraint.kind().into(), message });
        }
        Ok(CompiledConstraint { kind: constraint.kind(), matcher })
    }
}

/// A compiled constraint: start a [`TokenMatcher`] per generated sequence.
#[derive(Clone)]
pub struct CompiledConstraint {
    kind: &'static str,
    matcher: Matcher,
}

impl std::fmt::Debug for CompiledConstraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledConstraint").field("kind", &self.kind).finish()
    }
}

impl CompiledConstraint {
    /// A fresh matcher at the start of the output.
    pub fn matcher(&self) -> TokenMatcher {
        TokenMatcher { kind: self.kind, inner: self.matcher.deep_clone() }
    }
}

/// Where one sequence is in the constraint's language.
#[derive(Clone)]
pub struct TokenMatcher {
    kind: &'static str,
    inner: Matcher,
}

/// What the mask left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskOutcome {
    /// Some tokens are allowed.
    Allowed,
    /// No token of the vocabulary continues the output (it cannot be completed).
    NoToken,
}

impl TokenMatcher {
    /// scores: `[vocab]`; tokens the constraint forbids become `-inf`.
    pub fn mask(&mut self, scores: &mut [f32]) -> Result<MaskOutcome> {
        let allowed = self.inner.compute_mask_or_eos().map_err(|e| self.error(e))?;
        let mut any = false;
        for (id, s) in scores.iter_mut().enumerate() {
            if allowed.is_allowed(id as u32) {
                any |= *s > f32::NEG_INFINITY;
            } else {
                *s = f32::NEG_INFINITY;
            }
        }
        Ok(if any { MaskOutcome::Allowed } else { MaskOutcome::NoToken })
    }

    /// Whether `token` may come next (cheaper than a whole mask).
    pub fn allows(&mut self, token: u32) -> Result<bool> {
        Ok(self.inner.validate_tokens(&[token]).map_err(|e| self.error(e))? == 1)
    }

    /// How many of `tokens`, from the first, the constraint allows in a row (state unchanged).
    pub fn valid_prefix(&mut self, tokens: &[u32]) -> Result<usize> {
        self.inner.validate_tokens(tokens).map_err(|e| self.error(e))
    }

    /// Advances past a generated token (one the mask allowed).
    pub fn consume(&mut self, token: u32) -> Result<()> {
        self.inner.consume_token(token).map_err(|e| self.error(e))
    }

    /// Undoes the last `n` consumed tokens (speculative decoding's rejected drafts).
    pub fn rollback(&mut self, n: usize) -> Result<()> {
        self.inner.rollback(n).map_err(|e| self.error(e))
    }

    /// The output is complete and nothing may follow it.
    pub fn is_complete(&self) -> bool {
        self.inner.is_stopped() && !self.inner.is_error()
    }

    /// The output so far could end here.
    pub fn is_accepting(&mut self) -> Result<bool> {
        self.inner.is_accepting().map_err(|e| self.error(e))
    }

    fn error(&self, e: impl std::fmt::Display) -> LlmError {
        LlmError::Constraint { kind: self.kind.into(), message: e.to_string() }
    }
}
