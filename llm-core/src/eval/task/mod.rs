//! Benchmark tasks in lm-eval's YAML format over local JSON datasets: documents to prompts
//! (description, few-shot examples, chat template) and prompts to requests, as lm-eval's
//! `ConfigurableTask` builds them.

pub mod config;
mod dataset;
pub mod filter;
mod prompt;
pub mod template;

use std::path::Path;

pub use config::{DocField, FewshotConfig, GenerationKwargs, MetricSpec, OutputType, SamplerKind, TaskConfig};
pub use dataset::{Doc, Split};
pub use filter::{FilterPipeline, FilterStep};
pub use prompt::{ChatFormat, DocRequests, Instance, PromptOptions};

use crate::error::{LlmError, Result};
use template::{literal_eval, PyLiteral};

/// What `doc_to_target` gives: the gold choice's index, the target text, or several targets.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An index into the choices.
    Index(i64),
    /// A text.
    Text(String),
    /// Several acceptable targets (indices or texts, as Python's `str()`).
    List(Vec<PyLiteral>),
}

impl Target {
    /// The target as text (lm-eval's `str(target)`), for reports.
    pub fn to_text(&self) -> String {
        match self {
            Target::Index(i) => i.to_string(),
            Target::Text(s) => s.clone(),
            Target::List(items) => PyLiteral::List(items.clone()).py_str(),
        }
    }
}

/// A task: its config and its splits.
#[derive(Debug, Clone)]
pub struct Task {
    /// The validated YAML.
    pub config: TaskConfig,
    splits: std::collections::BTreeMap<String, Split>,
}

impl Task {
    /// Reads a task YAML and its data files.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let config = TaskConfig::load(path)?;
        let mut splits = std::collections::BTreeMap::new();
        for (name, files) in &config.data_files {
            splits.insert(name.clone(), Split::read(files)?);
        }
        let task = Self { config, splits };
        task.eval_split_name()?;
        Ok(task)
    }

    /// A BIG-bench `task.json` as lm-eval's `bigbench_<name>_multiple_choice` runs it
    /// (`multiple_choice_template_a_yaml`): the rows of [`crate::eval::bigbench`], `inputs` as
    /// the prompt, the choices `multiple_choice_targets`, gold
    /// `multiple_choice_targets.index(targets[0])`, metric `acc`. The reader refuses examples
    /// without `target_scores`, so a task that mixes free-form examples in (kanji_ascii) is an
    /// error here where lm-eval's `filter_multiple_choice` drops those rows. A row's "line" in
    /// errors is its position among the task's distinct examples, from 1.
    pub fn from_bigbench(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bb = crate::eval::bigbench::read_bigbench_task(path)?;
        let mut split = Split::default();
        for d in &bb.docs {
            let serde_json::Value::Object(row) = d.to_json() else { unreachable!("rows are objects") };
            split.docs.push(row);
            split.origin.push((path.to_path_buf(), d.idx + 1));
        }
        let yaml = serde_json::json!({
            "task": format!("bigbench_{}_multiple_choice", bb.name),
            "dataset_path": "json",
            "dataset_kwargs": { "data_files": { "default": path.to_string_lossy() } },
            "output_type": "multiple_choice",
            "test_split": "default",
            "doc_to_text": "inputs",
            "doc_to_target": "{{multiple_choice_targets.index(targets[0])}}",
            "doc_to_choice": "{{multiple_choice_targets}}",
            "metric_list": [{ "metric": "acc" }],
            "metadata": { "version": 1.0 },
        });
        let serde_json::Value::Object(map) = yaml else { unreachable!("a literal map") };
        let config = TaskConfig::from_map(path, map, String::new())?;
        let task = Self { config, splits: [("default".to_string(), split)].into() };
        Ok(task)
    }

    /// The task's name.
    pub fn name(&self) -> &str {
        &self.config.task
    }

    fn split(&self, name: &Option<String>) -> Option<&Split> {
        name.as_ref().and_then(|n| self.splits.get(n))
    }

    fn eval_split_name(&self) -> Result<&str> {
        for (field, name) in [("test_split", &self.config.test_split), ("validation_split", &self.config.validation_split)] {
            if let Some(n) = name {
                return match self.splits.get(n) {
                    Some(_) => Ok(n.as_str()),
                    None => Err(self.config.error(field, format!("split `{n}` is not in dataset_kwargs.data_files"))),
                };
            }
        }
        Err(self.config.error("test_split", "missing: name the split to evaluate (test_split or validation_split)"))
    }

    /// The documents evaluated: the test split, else the validation split.
    pub fn eval_docs(&self) -> &Split {
        let name = self.eval_split_name().expect("checked at load");
        &self.splits[name]
    }

    /// The documents few-shot examples come from (`fewshot_config.split`, inline samples,
    /// then training, validation, test, as lm-eval falls back).
    pub fn fewshot_docs(&self) -> Result<Split> {
        let f = &self.config.fewshot;
        if let Some(name) = &f.split {
            return self.splits.get(name).cloned().ok_or_else(|| self.config.error("fewshot_split", format!("split `{name}` is not in data_files")));
        }
        if let Some(samples) = &f.samples {
            let origin = (0..samples.len()).map(|i| (self.config.path.clone(), i + 1)).collect();
            return Ok(Split { docs: samples.clone(), origin });
        }
        for name in [&self.config.training_split, &self.config.validation_split, &self.config.test_split] {
            if let Some(s) = self.split(name) {
                return Ok(s.clone());
            }
        }
        Err(self.config.error("fewshot_split", "no split to draw few-shot examples from"))
    }

    /// Whether the few-shot pool is the evaluated split (lm-eval then leaves the evaluated
    /// document out of its own examples): `fewshot_config.split == test_split`.
    pub fn fewshot_from_eval_split(&self) -> bool {
        self.config.fewshot.split.is_some() && self.config.fewshot.split == self.config.test_split
    }

    /// Renders `field` for row `i` of `split`: a column's value, or the template's output.
    fn resolve(&self, field: &DocField, split: &Split, i: usize, name: &str) -> Result<serde_json::Value> {
        let doc = &split.docs[i];
        match field {
            DocField::Index(n) => Ok(serde_json::Value::from(*n)),
            DocField::List(items) => Ok(serde_json::Value::from(items.clone())),
            DocField::Text(t) if split.columns().iter().any(|c| c == t) => {
                doc.get(t).cloned().ok_or_else(|| split.row_error(i, t, format!("missing (`{name}` reads this column)")))
            }
            DocField::Text(t) => {
                let env = template::environment();
                let rendered = env
                    .render_str(t, minijinja::Value::from_serialize(doc))
                    .map_err(|e| split.row_error(i, name, format!("template `{t}`: {e}")))?;
                Ok(serde_json::Value::String(rendered))
            }
        }
    }

    /// `doc_to_text`.
    pub fn doc_to_text(&self, field: &DocField, split: &Split, i: usize) -> Result<String> {
        match self.resolve(field, split, i, "doc_to_text")? {
            serde_json::Value::String(s) if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() && self.config.doc_to_choice.is_some() => {
                Err(split.row_error(i, "doc_to_text", "gives an index: multiple-input tasks (choices in the context) are not supported"))
            }
            serde_json::Value::String(s) => Ok(s),
            serde_json::Value::Number(_) => Err(split.row_error(i, "doc_to_text", "gives an index: multiple-input tasks are not supported")),
            other => Ok(config::json_str(&other)),
        }
    }

    /// `doc_to_target`.
    pub fn doc_to_target(&self, field: &DocField, split: &Split, i: usize) -> Result<Target> {
        let from_template = matches!(field, DocField::Text(t) if !split.columns().iter().any(|c| c == t));
        Ok(match self.resolve(field, split, i, "doc_to_target")? {
            serde_json::Value::Number(n) => Target::Index(n.as_i64().ok_or_else(|| split.row_error(i, "doc_to_target", format!("{n} is not an index")))?),
            serde_json::Value::String(s) if from_template => {
                if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && self.config.doc_to_choice.is_some() {
                    Target::Index(s.parse().map_err(|_| split.row_error(i, "doc_to_target", format!("{s} is not an index")))?)
                } else if s.len() >= 2 && s.starts_with('[') && s.ends_with(']') {
                    match literal_eval(&s) {
                        Ok(PyLiteral::List(items)) => Target::List(items),
                        _ => Target::Text(s),
                    }
                } else {
                    Target::Text(s)
                }
            }
            serde_json::Value::String(s) => Target::Text(s),
            serde_json::Value::Array(items) => Target::List(items.iter().map(json_literal).collect()),
            other => return Err(split.row_error(i, "doc_to_target", format!("{other} is not a target"))),
        })
    }

    /// `doc_to_choice`.
    pub fn doc_to_choice(&self, field: &DocField, split: &Split, i: usize) -> Result<Vec<String>> {
        let from_template = matches!(field, DocField::Text(t) if !split.columns().iter().any(|c| c == t));
        let choices: Vec<String> = match self.resolve(field, split, i, "doc_to_choice")? {
            serde_json::Value::String(s) if from_template => match literal_eval(&s) {
                Ok(PyLiteral::List(items)) => items.iter().map(PyLiteral::py_str).collect(),
                Ok(_) | Err(_) => return Err(split.row_error(i, "doc_to_choice", format!("the template gives `{s}`, not a list"))),
            },
            serde_json::Value::Array(items) => items.iter().map(config::json_str).collect(),
            serde_json::Value::Object(m) => m.values().map(config::json_str).collect(),
            other => return Err(split.row_error(i, "doc_to_choice", format!("{other} is not a list of choices"))),
        };
        if choices.is_empty() {
            return Err(split.row_error(i, "doc_to_choice", "an empty list of choices"));
        }
        Ok(choices)
    }
}

fn json_literal(v: &serde_json::Value) -> PyLiteral {
    match v {
        serde_json::Value::String(s) => PyLiteral::Str(s.clone()),
        serde_json::Value::Number(n) => n.as_i64().map(PyLiteral::Int).unwrap_or(PyLiteral::Float(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::Bool(b) => PyLiteral::Bool(*b),
        serde_json::Value::Null => PyLiteral::None,
        serde_json::Value::Array(a) => PyLiteral::List(a.iter().map(json_literal).collect()),
        serde_json::Value::Object(_) => PyLiteral::Str(config::json_str(v)),
    }
}

/// Reads every task YAML in `dir` (not recursing) whose `task` is in `names` (all when empty).
pub fn load_tasks(dir: impl AsRef<Path>, names: &[String]) -> Result<Vec<Task>> {
    let dir = dir.as_ref();
    let mut found = vec![];
    let entries = std::fs::read_dir(dir).map_err(|e| LlmError::io(dir, e))?;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml")).collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(|e| LlmError::io(&p, e))?;
        // Bases meant only for `include:` have no `task:` of their own.
        if !text.lines().any(|l| l.starts_with("task:")) {
            continue;
        }
        let task = Task::load(&p)?;
        if names.is_empty() || names.iter().any(|n| n == task.name()) {
            found.push(task);
        }
    }
    for n in names {
        if !found.iter().any(|t| t.name() == n) {
            return Err(LlmError::task(dir, None, "tasks", format!("no task `{n}` in this folder")));
        }
    }
    Ok(found)
}
