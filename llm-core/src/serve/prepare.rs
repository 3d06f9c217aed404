//! Requests turned into engine jobs: the prompt (chat template, tools), the per-choice
//! settings, the constraint; every check that can fail before generation does here.

use serde_json::Value;

use super::api::{check_range, ChatMessage, ChatRequest, CompletionRequest, ResponseFormat, Sampling};
use super::engine::ChoiceSettings;
use super::error::ApiError;
use super::Server;
use crate::chat::{Message, Tool, ToolFormat};
use crate::generate::{CompiledConstraint, Constraint, GenerationConfig};

/// Tools whose calls a reply is parsed for, and their format.
pub(crate) type ToolSet = (Vec<Tool>, ToolFormat);

/// A request ready for the engine, and what its response needs.
pub(crate) struct Prepared {
    pub(crate) prompt: Vec<u32>,
    pub(crate) choices: Vec<ChoiceSettings>,
    /// Tools whose calls the reply is parsed for.
    pub(crate) tools: Option<ToolSet>,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
}

impl Server {
    /// `/v1/chat/completions`: messages through the chat template (with the tools).
    pub(crate) fn prepare_chat(&self, req: &ChatRequest) -> Result<Prepared, ApiError> {
        self.check_model(req.sampling.model.as_deref())?;
        let messages = messages(&req.messages)?;
        let (tools, tool_constraint) = self.tools(req)?;
        let tools_json = tools.as_ref().map(|(t, _)| Tool::template_json(t));
        let tokenizer = &self.inner.tokenizer;
        let text = tokenizer.apply_chat_template_with_tools(&messages, true, tools_json.as_ref())?;
        let prompt = tokenizer.encode(&text, false)?.ids;
        let format = match (&req.response_format, tool_constraint) {
            (Some(f), Some(_)) if !matches!(f, ResponseFormat::Text) => {
                return Err(ApiError::invalid(Some("response_format"), "response_format cannot be combined with tool calls"))
            }
            (_, Some(c)) => Some(c),
            (f, None) => f.as_ref().map(format_constraint).transpose()?.flatten(),
        };
        let top = match (req.logprobs, req.top_logprobs) {
            (Some(true), k) => Some(k.unwrap_or(0)),
            (_, Some(_)) => return Err(ApiError::invalid(Some("top_logprobs"), "top_logprobs needs logprobs: true")),
            _ => None,
        };
        if top.is_some_and(|k| k > 20) {
            return Err(ApiError::invalid(Some("top_logprobs"), "top_logprobs must be between 0 and 20"));
        }
        let constraint = format.map(|c| self.compile(&c)).transpose()?;
        self.finish(&req.sampling, prompt, top, constraint, tools)
    }

    /// `/v1/completions`: the prompt as given.
    pub(crate) fn prepare_completion(&self, req: &CompletionRequest) -> Result<Prepared, ApiError> {
        self.check_model(req.sampling.model.as_deref())?;
        if req.echo == Some(true) {
            return Err(ApiError::invalid(Some("echo"), "echo is not supported"));
        }
        if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::invalid(Some("suffix"), "suffix is not supported"));
        }
        let text = match &req.prompt {
            Value::String(s) => s.clone(),
            Value::Array(a) if a.len() == 1 && a[0].is_string() => a[0].as_str().unwrap_or_default().to_string(),
            _ => return Err(ApiError::invalid(Some("prompt"), "prompt must be a string (or a list of one string)")),
        };
        if req.logprobs.is_some_and(|k| k > 5) {
            return Err(ApiError::invalid(Some("logprobs"), "logprobs must be between 0 and 5"));
        }
        let prompt = self.inner.tokenizer.encode(&text, true)?.ids;
        let format = req.response_format.as_ref().map(format_constraint).transpose()?.flatten();
        let constraint = format.map(|c| self.compile(&c)).transpose()?;
        self.finish(&req.sampling, prompt, req.logprobs, constraint, None)
    }

    /// The served model is the only one; no name means it.
    fn check_model(&self, name: Option<&str>) -> Result<(), ApiError> {
        match name {
            Some(n) if !n.is_empty() && n != self.inner.model_id => Err(ApiError::unknown_model(n, &[&self.inner.model_id])),
            _ => Ok(()),
        }
    }

    /// The tools the reply may call and, unless `tool_choice` is `auto` or `none`, the
    /// constraint that makes the reply calls.
    fn tools(&self, req: &ChatRequest) -> Result<(Option<ToolSet>, Option<Constraint>), ApiError> {
        let Some(list) = req.tools.as_ref().filter(|t| t.as_array().is_some_and(|a| !a.is_empty())) else {
            return Ok((None, None));
        };
        let tools = Tool::list_from_json(list)?;
        let format = self.inner.tool_format;
        let parallel = req.parallel_tool_calls.unwrap_or(true);
        let constraint = |tools: &[Tool], parallel| format.constraint_with(tools, true, parallel).map_err(ApiError::from);
        let choice = req.tool_choice.clone().unwrap_or(Value::String("auto".into()));
        match &choice {
            Value::String(s) if s == "none" => Ok((None, None)),
            Value::String(s) if s == "auto" => Ok((Some((tools, format)), None)),
            Value::String(s) if s == "required" => {
                let c = constraint(&tools, parallel)?;
                Ok((Some((tools, format)), Some(c)))
            }
            Value::Object(o) => {
                let name = o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).unwrap_or_default();
                let chosen: Vec<Tool> = tools.iter().filter(|t| t.name == name).cloned().collect();
                if chosen.is_empty() {
                    return Err(ApiError::invalid(Some("tool_choice"), format!("tool_choice names `{name}`, which is not among the tools")));
                }
                let c = constraint(&chosen, false)?;
                Ok((Some((tools, format)), Some(c)))
            }
            other => Err(ApiError::invalid(Some("tool_choice"), format!("tool_choice must be none, auto, required or a function, got {other}"))),
        }
    }

    fn compile(&self, c: &Constraint) -> Result<CompiledConstraint, ApiError> {
        let engine = self.inner.constraints.as_ref().ok_or_else(|| {
            ApiError::invalid(Some("response_format"), "this model's tokenizer cannot be used for constrained output")
        })?;
        engine.compile(c).map_err(|e| ApiError::invalid(Some("response_format"), e.to_string()))
    }

    /// Checks the sampling parameters and the lengths; one settings entry per choice.
    fn finish(
        &self,
        s: &Sampling,
        prompt: Vec<u32>,
        top_logprobs: Option<usize>,
        constraint: Option<CompiledConstraint>,
        tools: Option<ToolSet>,
    ) -> Result<Prepared, ApiError> {
        let generation = self.generation(s, prompt.len())?;
        let n = s.n.unwrap_or(1);
        let max_n = self.inner.engine.config.slots.min(self.inner.options.max_n);
        if n == 0 || n > max_n {
            return Err(ApiError::invalid(Some("n"), format!("n must be between 1 and {max_n}, got {n}")));
        }
        let seed = s.seed.unwrap_or_else(rand::random);
        let choices = (0..n)
            .map(|i| ChoiceSettings {
                generation: generation.clone(),
                seed: seed.wrapping_add(i as u64),
                constraint: constraint.clone(),
                top_logprobs,
            })
            .collect();
        let stream = s.stream.unwrap_or(false);
        let include_usage = stream && s.stream_options.as_ref().is_some_and(|o| o.include_usage);
        Ok(Prepared { prompt, choices, tools, stream, include_usage })
    }

    /// Sampling as transformers' config: temperature 0 is greedy; `top_k` off unless asked.
    fn generation(&self, s: &Sampling, prompt_len: usize) -> Result<GenerationConfig, ApiError> {
        check_range("temperature", s.temperature, 0.0, 2.0)?;
        check_range("top_p", s.top_p, f32::MIN_POSITIVE, 1.0)?;
        check_range("frequency_penalty", s.frequency_penalty, -2.0, 2.0)?;
        check_range("presence_penalty", s.presence_penalty, -2.0, 2.0)?;
        check_range("min_p", s.min_p, 0.0, 1.0)?;
        check_range("repetition_penalty", s.repetition_penalty, f32::MIN_POSITIVE, 10.0)?;
        let limit = self.inner.options.max_tokens;
        let context = self.inner.engine.config.context;
        if prompt_len >= context {
            return Err(ApiError::context(prompt_len, context));
        }
        let room = context - prompt_len;
        let (param, asked) = match (s.max_completion_tokens, s.max_tokens) {
            (Some(m), _) => ("max_completion_tokens", Some(m)),
            (None, m) => ("max_tokens", m),
        };
        let max_new = match asked {
            Some(0) => return Err(ApiError::invalid(Some(param), format!("{param} must be at least 1"))),
            Some(m) if m > limit => {
                return Err(ApiError::invalid(Some(param), format!("{param} is {m}; this server allows at most {limit}")))
            }
            Some(m) if m > room => {
                return Err(ApiError {
                    code: Some("context_length_exceeded"),
                    ..ApiError::invalid(
                        Some(param),
                        format!("The prompt has {prompt_len} tokens and {param} is {m}: more than the {context}-token context"),
                    )
                })
            }
            Some(m) => m,
            None => limit.min(room),
        };
        let temperature = s.temperature.unwrap_or(1.0);
        let stop = s.stop.as_ref().map(|s| s.strings()).transpose()?.unwrap_or_default();
        let config = GenerationConfig {
            max_new_tokens: max_new,
            do_sample: temperature > 0.0,
            temperature: if temperature > 0.0 { temperature } else { 1.0 },
            top_p: s.top_p.unwrap_or(1.0),
            top_k: s.top_k.unwrap_or(0),
            min_p: s.min_p.filter(|&m| m > 0.0),
            repetition_penalty: s.repetition_penalty.unwrap_or(1.0),
            frequency_penalty: s.frequency_penalty.unwrap_or(0.0),
            presence_penalty: s.presence_penalty.unwrap_or(0.0),
            eos_token_id: self.inner.eos.clone(),
            stop_strings: stop,
            ..GenerationConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// The constraint a `response_format` asks for (`None` for text).
fn format_constraint(f: &ResponseFormat) -> Result<Option<Constraint>, ApiError> {
    Ok(match f {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(Constraint::JsonObject),
        ResponseFormat::JsonSchema { json_schema } => {
            let schema = json_schema.schema.clone().ok_or_else(|| {
                ApiError::invalid(Some("response_format.json_schema.schema"), "a json_schema response_format needs a schema")
            })?;
            Some(Constraint::JsonSchema(schema))
        }
    })
}

/// The conversation as templates see it: text content, calls with parsed arguments, tool
/// results named after the call they answer.
fn messages(input: &[ChatMessage]) -> Result<Vec<Message>, ApiError> {
    if input.is_empty() {
        return Err(ApiError::invalid(Some("messages"), "messages must not be empty"));
    }
    let mut out: Vec<Message> = Vec::with_capacity(input.len());
    let mut call_names: Vec<(String, String)> = vec![];
    for (i, m) in input.iter().enumerate() {
        let role = if m.role == "developer" { "system".to_string() } else { m.role.clone() };
        let mut msg = Message::new(role, m.text(i)?);
        if let Some(calls) = &m.tool_calls {
            let mut parsed = Vec::with_capacity(calls.len());
            for (j, c) in calls.iter().enumerate() {
                let arguments: Value = serde_json::from_str(&c.function.arguments).map_err(|e| {
                    ApiError::invalid(Some(&format!("messages[{i}].tool_calls[{j}].function.arguments")), format!("not JSON: {e}"))
                })?;
                if let Some(id) = &c.id {
                    call_names.push((id.clone(), c.function.name.clone()));
                }
                parsed.push(serde_json::json!({"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": arguments}}));
            }
            msg.tool_calls = Some(parsed);
        }
        if m.role == "tool" {
            msg.tool_call_id = m.tool_call_id.clone();
            msg.name = m.name.clone().or_else(|| {
                let id = m.tool_call_id.as_deref()?;
                call_names.iter().find(|(c, _)| c == id).map(|(_, n)| n.clone())
            });
        } else {
            msg.name = m.name.clone();
        }
        out.push(msg);
    }
    Ok(out)
}
