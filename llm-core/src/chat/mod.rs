//! Chat templates: the model's own Jinja template rendered with `minijinja` in a sandbox with
//! the globals and filters Hugging Face templates use, and built-in templates for checkpoints
//! that have none.
//!
//! A template comes from the checkpoint, so it is untrusted code: every render runs under
//! [`TemplateLimits`] (instructions, output bytes, the size of every value it builds, a budget
//! of work, call depth), and a template that loops too long, recurses too deep, builds or
//! writes too much ends in [`LlmError::Template`] within a bounded time and memory.
//! minijinja's fuel counts instructions, not their cost, and one of its instructions can
//! repeat a string or a list without bound or print a repeated list into a gigabyte; so the
//! template is parsed and rewritten ([`rewrite`]) to route every such operation (`+`, `*`,
//! `~`, filters, methods, `in`, comparisons, tests) through guards ([`guard`]) that measure
//! the operands first and charge the render's budget. Template text is written through the
//! same output counter as expressions, into the prompt or into a captured block.
//! `template_limits` in the core tests holds each bound to a hostile template.

mod builtin;
mod guard;
mod rewrite;
pub mod tools;

use minijinja::machinery::{self, CodeGenerator, Vm, WhitespaceConfig};
use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, Error as JinjaError, ErrorKind, Value};
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
    /// Bytes the rendered prompt may have (template text and expressions, counted as written,
    /// captured blocks included); also the most bytes any string a template builds may have.
    pub max_output_bytes: usize,
    /// Entries a list built by the template (`[x] * n`, `a + b`, a filter's result) may have.
    pub max_items: usize,
    /// Bytes of work a render may spend before [`Self::work_per_input_byte`]: every value a
    /// guarded operation builds and every operand it measures is charged by its size.
    pub max_work_bytes: u64,
    /// Extra work per byte of the conversation and tools, so long inputs still render.
    pub work_per_input_byte: u64,
    /// Nesting of macro calls, includes and loops (minijinja's recursion limit, at most 500).
    pub max_depth: usize,
    /// Bytes the template source may have.
    pub max_source_bytes: usize,
}

impl Default for TemplateLimits {
    /// One million instructions plus 20,000 per message or tool (a loop that spends them all
    /// ends in well under a second: `template_limits::nested_loops_run_out_of_fuel`), 16 MiB
    /// of output and per string, a million list entries, 64 MiB of work plus 64 bytes per
    /// input byte (a render that spends it all ends in well under a second:
    /// `template_limits::work_past_the_budget_ends_quickly`), depth 100, a 1 MiB source.
    fn default() -> Self {
        Self {
            fuel: 1_000_000,
            fuel_per_item: 20_000,
            max_output_bytes: 16 << 20,
            max_items: 1_000_000,
            max_work_bytes: 64 << 20,
            work_per_input_byte: 64,
            max_depth: 100,
            max_source_bytes: 1 << 20,
        }
    }
}

/// A checked chat template (parsed and rewritten once here, and again per render).
#[derive(Clone)]
pub struct ChatTemplate {
    name: String,
    source: String,
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
        let template = Self { name, source, limits };
        template.parse().map_err(|e| template_error(&template.name, &e))?;
        Ok(template)
    }

    /// The rewritten syntax tree ([`rewrite`]); trim_blocks and lstrip_blocks, as transformers
    /// compiles templates.
    fn parse(&self) -> std::result::Result<machinery::ast::Stmt<'_>, JinjaError> {
        let whitespace = WhitespaceConfig { keep_trailing_newline: false, lstrip_blocks: true, trim_blocks: true };
        // A unit struct without minijinja's custom_syntax feature, a struct with it.
        #[allow(clippy::default_constructed_unit_structs)]
        let tree = machinery::parse(&self.source, &self.name, SyntaxConfig::default(), whitespace)?;
        rewrite::template(&tree)
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
        self.render_inner(ctx).map_err(|e| template_error(&self.name, &e))
    }

    fn render_inner(&self, ctx: &RenderContext<'_>) -> std::result::Result<String, JinjaError> {
        let limits = &self.limits;
        let items = ctx.messages.len() + ctx.tools.and_then(serde_json::Value::as_array).map_or(0, Vec::len);
        let fuel = limits.fuel.saturating_add(limits.fuel_per_item.saturating_mul(items as u64));
        let input_bytes: usize = ctx.messages.iter().map(|m| m.role.len() + m.content.len()).sum::<usize>()
            + ctx.tools.map_or(0, |t| t.to_string().len());
        let work = limits.max_work_bytes.saturating_add(limits.work_per_input_byte.saturating_mul(input_bytes as u64));
        let tree = self.parse()?;
        let mut codegen = CodeGenerator::new(&self.name, &self.source);
        codegen.compile_stmt(&tree);
        let (instructions, blocks) = codegen.finish();
        let mut env = environment(limits);
        env.set_fuel(Some(fuel));
        env.set_formatter(counting_formatter(limits.max_output_bytes));
        guard::Guard::new(limits.max_output_bytes, limits.max_items, work).install(&mut env);
        let root = minijinja::context! {
            messages => Value::from_serialize(ctx.messages),
            add_generation_prompt => ctx.add_generation_prompt,
            bos_token => ctx.bos_token,
            eos_token => ctx.eos_token,
            tools => ctx.tools.map(Value::from_serialize),
        };
        let mut text = String::new();
        // Every write goes through the counting formatter: template text is rewritten into
        // expressions.
        Vm::new(&env).eval(&instructions, root, &blocks, &mut machinery::make_string_output(&mut text), AutoEscape::None)?;
        Ok(text)
    }
}

/// The environment a render runs in: Python string and dict methods (`.strip()`,
/// `.startswith()`, `.items()`) as in jinja2, the globals Hugging Face templates call, the
/// recursion limit. No templates are registered, so `include` and `import` find nothing.
fn environment<'a>(limits: &TemplateLimits) -> Environment<'a> {
    let mut env = Environment::new();
    env.set_recursion_limit(limits.max_depth);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env
}

fn raise_exception(message: String) -> std::result::Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, format!("raise_exception: {message}")))
}

/// minijinja's formatter, failing once the expressions written (to the output or to captured
/// blocks) exceed `limit` bytes in all.
fn counting_formatter(limit: usize) -> impl Fn(&mut minijinja::Output, &minijinja::State, &Value) -> std::result::Result<(), JinjaError> {
    let written = std::sync::atomic::AtomicUsize::new(0);
    move |out, state, value| {
        let n = match value.as_str() {
            Some(s) => s.len(),
            None => {
                // Measure without building the string: a list can print to far more than the limit.
                let mut counter = guard::Counter { count: 0, limit };
                let _ = std::fmt::Write::write_fmt(&mut counter, format_args!("{value}"));
                counter.count
            }
        };
        if written.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n > limit {
            return Err(JinjaError::new(ErrorKind::InvalidOperation, format!("the template writes more than {limit} bytes")));
        }
        minijinja::escape_formatter(out, state, value)
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
