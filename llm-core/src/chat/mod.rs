//! Chat templates: the model's own Jinja template rendered with `minijinja` in a sandbox with
//! the globals and filters Hugging Face templates use, and built-in templates for checkpoints
//! that have none.

mod builtin;

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};
use serde::{Deserialize, Serialize};

pub use builtin::BuiltinTemplate;

use crate::error::{LlmError, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`...
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with a role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// What a template sees.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    /// The conversation.
    pub messages: &'a [Message],
    /// Open an assistant turn at the end.
    pub add_generation_prompt: bool,
    /// `bos_token` global.
    pub bos_token: &'a str,
    /// `eos_token` global.
    pub eos_token: &'a str,
    /// `tools` global (JSON schemas), if any.
    pub tools: Option<&'a serde_json::Value>,
}

/// A compiled chat template.
#[derive(Clone)]
pub struct ChatTemplate {
    name: String,
    source: String,
    env: std::sync::Arc<Environment<'static>>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("name", &self.name).finish()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `name` (a file path or a label) appears in error messages.
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let source = source.into();
        let mut env = Environment::new();
        // transformers compiles templates with trim_blocks and lstrip_blocks.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Python string/dict methods (`.strip()`, `.startswith()`, `.items()`) as in jinja2.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(name.clone(), source.clone()).map_err(|e| template_error(&name, &e))?;
        Ok(Self { name, source, env: std::sync::Arc::new(env) })
    }

    /// The template's name (file or label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a conversation.
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<String> {
        let template = self.env.get_template(&self.name).map_err(|e| template_error(&self.name, &e))?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(ctx.messages),
            add_generation_prompt => ctx.add_generation_prompt,
            bos_token => ctx.bos_token,
            eos_token => ctx.eos_token,
            tools => ctx.tools.map(Value::from_serialize),
        };
        template.render(ctx).map_err(|e| template_error(&self.name, &e))
    }
}

fn raise_exception(message: String) -> std::result::Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, format!("raise_exception: {message}")))
}

fn strftime_now(format: String) -> String {
    chrono::Local::now().format(&format).to_string()
}

fn template_error(name: &str, e: &JinjaError) -> LlmError {
    let mut message = e.kind().to_string();
    if let Some(detail) = e.detail() {
        message = format!("{message}: {detail}");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    LlmError::Template { name: name.to_string(), line: e.line(), message }
}
