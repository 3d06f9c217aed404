//! Prompts and requests from documents, as lm-eval's `ConfigurableTask.fewshot_context`,
//! `build_qa_turn` and `construct_requests` build them: a system turn (system instruction and
//! description), few-shot question/answer turns, the document's question; rendered as plain
//! text (each turn followed by its delimiter) or through the model's chat template.

use super::{DocField, OutputType, SamplerKind, Split, Target, Task};
use crate::chat::Message;
use crate::error::{LlmError, Result};
use crate::eval::pyrandom::PyRandom;
use crate::tokenizer::Tokenizer;

/// Chat formatting (`--apply_chat_template`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChatFormat {
    /// Few-shot examples as alternating user/assistant turns (`--fewshot_as_multiturn`);
    /// otherwise everything but the system turn is one user message.
    pub fewshot_as_multiturn: bool,
}

/// How a run builds prompts.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptOptions {
    /// Few-shot examples per prompt; `None` keeps the task's `num_fewshot` (else 0).
    pub num_fewshot: Option<usize>,
    /// The few-shot sampler's seed (lm-eval's `fewshot_random_seed`, default 1234).
    pub fewshot_seed: u64,
    /// Render through the tokenizer's chat template.
    pub chat: Option<ChatFormat>,
    /// `--system_instruction`: put before the description in the system turn.
    pub system_instruction: Option<String>,
    /// Documents evaluated at most (the first ones), lm-eval's `--limit`.
    pub limit: Option<usize>,
}

impl Default for PromptOptions {
    fn default() -> Self {
        Self { num_fewshot: None, fewshot_seed: 1234, chat: None, system_instruction: None, limit: None }
    }
}

/// The requests of one document.
#[derive(Debug, Clone, PartialEq)]
pub enum DocRequests {
    /// One loglikelihood per choice: `(context, target_delimiter + choice)`.
    Choices {
        /// The prompt.
        context: String,
        /// The continuations scored.
        continuations: Vec<String>,
        /// The choices themselves (acc_norm divides by their length).
        choices: Vec<String>,
        /// `doc_to_target`.
        gold: Target,
    },
    /// `(context, target)`.
    Loglikelihood {
        /// The prompt.
        context: String,
        /// The target text.
        continuation: String,
    },
    /// The target text, scored whole.
    Rolling {
        /// The text.
        text: String,
    },
    /// Greedy generation.
    Generate {
        /// The prompt.
        context: String,
        /// `doc_to_target`, compared with the output.
        gold: Target,
        /// The choices when the task has them (the gold index names one).
        choices: Option<Vec<String>>,
    },
}

/// One document's requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Index in the evaluated split.
    pub doc_id: usize,
    /// What to ask the model.
    pub requests: DocRequests,
}

/// A turn before rendering: the text and what follows it in plain-text form.
#[derive(Debug, Clone)]
struct Turn {
    role: &'static str,
    content: String,
    delimiter: String,
}

impl Turn {
    fn new(role: &'static str, content: impl Into<String>, delimiter: impl Into<String>) -> Self {
        Self { role, content: content.into(), delimiter: delimiter.into() }
    }

    fn text(&self) -> String {
        format!("{}{}", self.content, self.delimiter)
    }
}

/// `maybe_delimit`: `prefix + delimiter + suffix` unless either side already has whitespace
/// at the join, or one of them is empty.
fn maybe_delimit(prefix: Option<&str>, suffix: Option<&str>, delimiter: &str) -> String {
    match (prefix.filter(|p| !p.is_empty()), suffix.filter(|s| !s.is_empty())) {
        (None, s) => s.unwrap_or_default().to_string(),
        (Some(p), None) => p.to_string(),
        (Some(p), Some(s)) if requires_delimiter(p, s) => format!("{p}{delimiter}{s}"),
        (Some(p), Some(s)) => format!("{p}{s}"),
    }
}

fn requires_delimiter(prefix: &str, suffix: &str) -> bool {
    let (Some(a), Some(b)) = (prefix.chars().last(), suffix.chars().next()) else { return false };
    !(a.is_whitespace() || b.is_whitespace())
}

/// lm-eval's few-shot samplers, one per task run, in document order.
struct Sampler {
    rng: PyRandom,
    kind: SamplerKind,
    pool: Split,
}

impl Sampler {
    /// Indices into the pool; without the evaluated document when it is given.
    fn sample(&mut self, n: usize, eval_doc: Option<&super::Doc>, task: &Task) -> Result<Vec<usize>> {
        let len = self.pool.docs.len();
        let not_eval = |i: &usize| eval_doc.is_none_or(|d| &self.pool.docs[*i] != d);
        let too_few = |have: usize| task.config.error("num_fewshot", format!("{n} examples asked, {have} documents to draw from"));
        match self.kind {
            SamplerKind::FirstN => {
                let pool: Vec<usize> = (0..len).filter(not_eval).collect();
                if n > pool.len() {
                    return Err(too_few(pool.len()));
                }
                Ok(pool[..n].to_vec())
            }
            SamplerKind::Random if eval_doc.is_none() => {
                if n > len {
                    return Err(too_few(len));
                }
                Ok(self.rng.sample_indices(len, n))
            }
            SamplerKind::Random => {
                if n + 1 > len {
                    return Err(too_few(len));
                }
                let drawn: Vec<usize> = self.rng.sample_indices(len, n + 1).into_iter().filter(not_eval).take(n).collect();
                if drawn.len() == n {
                    return Ok(drawn);
                }
                // Copies of the evaluated document were drawn and removed: lm-eval draws again
                // from the pool without any of them.
                let pool: Vec<usize> = (0..len).filter(not_eval).collect();
                if n > pool.len() {
                    return Err(too_few(pool.len()));
                }
                Ok(self.rng.sample_indices(pool.len(), n).into_iter().map(|i| pool[i]).collect())
            }
        }
    }
}

impl Task {
    /// The requests of every evaluated document (the first `options.limit`), in document order.
    /// A chat template, when asked for, is the tokenizer's.
    pub fn build_requests(&self, options: &PromptOptions, tokenizer: Option<&Tokenizer>) -> Result<Vec<Instance>> {
        let docs = self.eval_docs();
        let n = options.limit.map_or(docs.docs.len(), |l| l.min(docs.docs.len()));
        let num_fewshot = options.num_fewshot.or(self.config.num_fewshot).unwrap_or(0);
        let mut sampler = Sampler { rng: PyRandom::new(options.fewshot_seed), kind: self.config.fewshot.sampler, pool: if num_fewshot > 0 { self.fewshot_docs()? } else { Split::default() } };
        if options.chat.is_some() && tokenizer.and_then(Tokenizer::chat_template).is_none() {
            return Err(LlmError::config("apply_chat_template", "the tokenizer has no chat template"));
        }
        (0..n).map(|i| self.instance(docs, i, num_fewshot, &mut sampler, options, tokenizer)).collect()
    }

    fn instance(&self, docs: &Split, i: usize, num_fewshot: usize, sampler: &mut Sampler, options: &PromptOptions, tokenizer: Option<&Tokenizer>) -> Result<Instance> {
        let c = &self.config;
        let choices = match &c.doc_to_choice {
            Some(f) if c.output_type != OutputType::LoglikelihoodRolling => Some(self.doc_to_choice(f, docs, i)?),
            _ => None,
        };
        let gold = self.doc_to_target(&c.doc_to_target, docs, i)?;
        let requests = match c.output_type {
            OutputType::LoglikelihoodRolling => DocRequests::Rolling { text: gold.to_text() },
            _ => {
                let context = self.context(docs, i, num_fewshot, sampler, options, tokenizer, choices.as_deref())?;
                match c.output_type {
                    OutputType::MultipleChoice => {
                        let choices = choices.unwrap_or_default();
                        let delimiter = match (&options.chat, &c.gen_prefix) {
                            (None, _) => c.target_delimiter.clone(),
                            (Some(_), Some(p)) if !p.ends_with(char::is_whitespace) => c.target_delimiter.clone(),
                            (Some(_), _) => String::new(),
                        };
                        let continuations = choices.iter().map(|ch| format!("{delimiter}{ch}")).collect();
                        DocRequests::Choices { context, continuations, choices, gold }
                    }
                    OutputType::Loglikelihood => DocRequests::Loglikelihood { context, continuation: gold.to_text() },
                    _ => DocRequests::Generate { context, gold, choices },
                }
            }
        };
        Ok(Instance { doc_id: i, requests })
    }

    /// `resolve_field`: a column's value or the template rendered on the document.
    fn resolve_text(&self, template: &Option<String>, split: &Split, i: usize, field: &str) -> Result<Option<String>> {
        match template {
            None => Ok(None),
            Some(t) => Ok(Some(self.doc_to_text_field(&DocField::Text(t.clone()), split, i, field)?)),
        }
    }

    fn doc_to_text_field(&self, f: &DocField, split: &Split, i: usize, field: &str) -> Result<String> {
        self.doc_to_text(f, split, i).map_err(|e| match e {
            LlmError::Task { path, line, message, .. } => LlmError::Task { path, line, field: field.to_string(), message },
            other => other,
        })
    }

    /// `fewshot_context` for document `i`.
    #[allow(clippy::too_many_arguments)]
    fn context(&self, docs: &Split, i: usize, num_fewshot: usize, sampler: &mut Sampler, options: &PromptOptions, tokenizer: Option<&Tokenizer>, choices: Option<&[String]>) -> Result<String> {
        let c = &self.config;
        let mut turns = vec![];
        let description = self.resolve_text(&c.description, docs, i, "description")?;
        let system = maybe_delimit(options.system_instruction.as_deref(), description.as_deref(), &c.fewshot_delimiter);
        if !system.is_empty() {
            turns.push(Turn::new("system", system, ""));
        }
        if num_fewshot > 0 {
            let eval_doc = self.fewshot_from_eval_split().then(|| &docs.docs[i]);
            let f = &c.fewshot;
            for j in sampler.sample(num_fewshot, eval_doc, self)? {
                let pool = &sampler.pool;
                let q = self.doc_to_text(&f.doc_to_text, pool, j)?;
                let fc = match &f.doc_to_choice {
                    Some(field) => Some(self.doc_to_choice(field, pool, j)?),
                    None => None,
                };
                let a = self.doc_to_target(&f.doc_to_target, pool, j)?;
                let gen_prefix = self.resolve_text(&f.gen_prefix, pool, j, "gen_prefix")?;
                let answer = answer_text(&a, fc.as_deref()).map_err(|m| pool.row_error(j, "doc_to_target", m))?;
                turns.extend(qa_turn(&q, answer.as_deref(), gen_prefix.as_deref(), &f.target_delimiter, &f.fewshot_delimiter));
            }
        }
        let _ = choices;
        let q = self.doc_to_text(&c.doc_to_text, docs, i)?;
        let gen_prefix = self.resolve_text(&c.gen_prefix, docs, i, "gen_prefix")?;
        turns.extend(qa_turn(&q, None, gen_prefix.as_deref(), &c.target_delimiter, ""));
        match (options.chat, tokenizer) {
            (Some(chat), Some(tok)) => {
                if gen_prefix.is_some() {
                    return Err(c.error("gen_prefix", "with a chat template, continuing the assistant's prefix is not supported"));
                }
                let messages = if chat.fewshot_as_multiturn { turns } else { single_turn(turns) };
                let messages: Vec<Message> = messages.into_iter().map(|t| Message::new(t.role, t.content)).collect();
                tok.apply_chat_template(&messages, true)
            }
            _ => Ok(turns.iter().map(Turn::text).collect()),
        }
    }
}

/// The answer of a few-shot example: the gold choice, the first of several targets, or the
/// target text; `None` when empty (the example is then shown without an answer).
fn answer_text(a: &Target, choices: Option<&[String]>) -> std::result::Result<Option<String>, String> {
    Ok(match (a, choices) {
        (Target::Text(s), _) if s.is_empty() => None,
        (Target::Index(k), Some(c)) => Some(c.get(*k as usize).cloned().ok_or(format!("index {k} is past the {} choices", c.len()))?),
        (Target::Index(k), None) => return Err(format!("index {k} but the task has no doc_to_choice")),
        (Target::List(items), _) => items.first().map(|x| x.py_str()),
        (Target::Text(s), _) => Some(s.clone()),
    })
}

/// `build_qa_turn`.
fn qa_turn(q: &str, answer: Option<&str>, gen_prefix: Option<&str>, target_delimiter: &str, fewshot_delimiter: &str) -> Vec<Turn> {
    let user_delimiter = match (answer, gen_prefix) {
        (Some(_), None) => target_delimiter,
        (_, Some(p)) if requires_delimiter(q, p) => target_delimiter,
        _ => "",
    };
    let mut turns = vec![Turn::new("user", q, user_delimiter)];
    match (answer, gen_prefix) {
        (Some(a), _) => turns.push(Turn::new("assistant", maybe_delimit(gen_prefix, Some(a), " "), fewshot_delimiter)),
        (None, Some(p)) => turns.push(Turn::new("assistant", p, "")),
        (None, None) => {}
    }
    turns
}

/// `multiturn_to_singleturn`: the system turn, then everything else joined as one user turn
/// (a closing assistant turn stays its own).
fn single_turn(mut turns: Vec<Turn>) -> Vec<Turn> {
    let system = if turns.first().is_some_and(|t| t.role == "system") { Some(turns.remove(0)) } else { None };
    let closing = if turns.last().is_some_and(|t| t.role == "assistant") { turns.pop() } else { None };
    if let Some(last) = turns.last_mut() {
        last.delimiter.clear();
    }
    let mut out: Vec<Turn> = system.into_iter().collect();
    out.push(Turn::new("user", turns.iter().map(Turn::text).collect::<String>(), ""));
    out.extend(closing);
    out
}
