//! Chat templates: the model's own Jinja template rendered with `minijinja` in a sandbox with
//! the globals and filters Hugging Face templates use, and built-in templates for checkpoints
//! that have none.
//!
//! A template comes from the checkpoint, so it is untrusted code: every render runs under
//! [`TemplateLimits`] (instructions, output bytes, call depth), and a template that loops too
//! long, recurses too deep or writes too much ends in [`LlmError::Template`].
//! minijinja itself caps `range()` at 100,000 items and a repeated string (`"a" * n`) at
//! 100 MB. The output bound counts every `{{ expression }}` a render writes, into the prompt
//! or into a captured block (`{% set x %}`, a macro's body); what it cannot see, since
//! minijinja has no hook there, is template text inside captured blocks and strings built by
//! concatenation without being written (`x ~ x` doubled through a namespace), so those stay
//! bounded only by fuel and minijinja's own caps. Fuel counts instructions, not their cost:
//! one instruction can still take seconds and a gigabyte (a 100 MB repetition, a repeated
//! list turned into a string; `fuzz/known/` has such inputs), which only a limit inside the
//! engine could stop.

mod builtin;
pub mod tools;

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};
use serde::{Deserialize, Serialize};

pub use builtin::BuiltinTemplate;
pub use tools::{ParsedReply, Tool, ToolCall, ToolFormat};

use crate::error::{LlmError, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`...
    pub role: String,
    /// The text.
    pub content: String,
    /// An assistant turn's calls, `[{"type": "function", "function": {"name", "arguments"}}]`
    /// as HF templates read them ([`tools::ToolCall::assistant_message`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<serde_json::Value>>,
    /// A `tool` message's tool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A `tool` message's call id (OpenAI's `tool_call_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message with a role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into(), tool_calls: None, name: None, tool_call_id: None }
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

/// What one render of an untrusted template may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateLimits {
    /// minijinja instructions (its "fuel") for a render, before [`Self::fuel_per_item`].
    pub fuel: u64,
    /// Extra instructions per message and per tool, so long conversations still render.
    pub fuel_per_item: u64,
    /// Bytes the rendered prompt may have.
    pub max_output_bytes: usize,
    /// Nesting of macro calls, includes and loops (minijinja's recursion limit, at most 500).
    pub max_depth: usize,
    /// Bytes the template source may have.
    pub max_source_bytes: usize,
}

impl Default for TemplateLimits {
    /// One million instructions plus 20,000 per message or tool (a loop that spends them all
    /// ends in well under a second: `template_limits::nested_loops_run_out_of_fuel`), 16 MiB
    /// of output, depth 100, a 1 MiB source.
    fn default() -> Self {
        Self { fuel: 1_000_000, fuel_per_item: 20_000, max_output_bytes: 16 << 20, max_depth: 100, max_source_bytes: 1 << 20 }
    }
}

/// A compiled chat template.
#[derive(Clone)]
pub struct ChatTemplate {
    name: String,
    source: String,
    env: std::sync::Arc<Environment<'static>>,
    limits: TemplateLimits,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("name", &self.name).finish()
    }
}

impl ChatTemplate {
    /// Compiles `source` under the default [`TemplateLimits`]; `name` (a file path or a
    /// label) appears in error messages.
    pub fn new(name: impl Into<String>, source: impl Into<String>) -> Result<Self> {
        Self::with_limits(name, source, TemplateLimits::default())
    }

    /// Compiles `source`, rendering under `limits`.
    pub fn with_limits(name: impl Into<String>, source: impl Into<String>, limits: TemplateLimits) -> Result<Self> {
        let name = name.into();
        let source = source.into();
        if source.len() > limits.max_source_bytes {
            let message = format!("the template has {} bytes; the limit is {}", source.len(), limits.max_source_bytes);
            return Err(LlmError::Template { name, line: None, message });
        }
        let mut env = Environment::new();
        env.set_recursion_limit(limits.max_depth);
        // transformers compiles templates with trim_blocks and lstrip_blocks.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Python string/dict methods (`.strip()`, `.startswith()`, `.items()`) as in jinja2.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(name.clone(), source.clone()).map_err(|e| template_error(&name, &e))?;
        Ok(Self { name, source, env: std::sync::Arc::new(env), limits })
    }

    /// The limits each render runs under.
    pub fn limits(&self) -> TemplateLimits {
        self.limits
    }

    /// The template's name (file or label).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a conversation, within [`Self::limits`].
    pub fn render(&self, ctx: &RenderContext<'_>) -> Result<String> {
        let items = ctx.messages.len() + ctx.tools.and_then(serde_json::Value::as_array).map_or(0, Vec::len);
        let fuel = self.limits.fuel.saturating_add(self.limits.fuel_per_item.saturating_mul(items as u64));
        // Fuel is set per environment: a copy of it (cheap: templates are shared) per render.
        let mut env = (*self.env).clone();
        env.set_fuel(Some(fuel));
        env.set_formatter(counting_formatter(self.limits.max_output_bytes));
        let template = env.get_template(&self.name).map_err(|e| template_error(&self.name, &e))?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(ctx.messages),
            add_generation_prompt => ctx.add_generation_prompt,
            bos_token => ctx.bos_token,
            eos_token => ctx.eos_token,
            tools => ctx.tools.map(Value::from_serialize),
        };
        let mut out = BoundedWriter { bytes: Vec::new(), limit: self.limits.max_output_bytes };
        template.render_captured_to(ctx, &mut out).map_err(|e| template_error(&self.name, &e))?;
        String::from_utf8(out.bytes).map_err(|_| LlmError::Template {
            name: self.name.clone(),
            line: None,
            message: "rendered output is not UTF-8".into(),
        })
    }
}

fn raise_exception(message: String) -> std::result::Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, format!("raise_exception: {message}")))
}

/// minijinja's formatter, failing once the expressions written (to the output or to captured
/// blocks) exceed `limit` bytes in all.
fn counting_formatter(limit: usize) -> impl Fn(&mut minijinja::Output, &minijinja::State, &Value) -> std::result::Result<(), JinjaError> {
    let written = std::sync::atomic::AtomicUsize::new(0);
    move |out, state, value| {
        let n = value.as_str().map_or_else(|| value.to_string().len(), str::len);
        if written.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n > limit {
            return Err(JinjaError::new(ErrorKind::InvalidOperation, format!("the template writes more than {limit} bytes")));
        }
        minijinja::escape_formatter(out, state, value)
    }
}

/// Collects output, failing once more than `limit` bytes are written.
struct BoundedWriter {
    bytes: Vec<u8>,
    limit: usize,
}

impl std::io::Write for BoundedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            let message = format!("the rendered prompt exceeds {} bytes", self.limit);
            return Err(std::io::Error::new(std::io::ErrorKind::OutOfMemory, message));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `strftime_now(format)`: an invalid format (`%Q`) is an error, not a panic.
fn strftime_now(format: String) -> std::result::Result<String, JinjaError> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format))
        .map_err(|_| JinjaError::new(ErrorKind::InvalidOperation, format!("strftime_now: invalid format {format:?}")))?;
    Ok(out)
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
