//! lm-eval's task YAML (`TaskConfig`): read, `include:`d bases merged, defaults applied and
//! every field checked up front, so a bad task fails before any model runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{LlmError, Result};
use super::filter::FilterPipeline;

/// What a task asks of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputType {
    /// One `loglikelihood` request per choice; scored by acc / acc_norm / acc_bytes.
    MultipleChoice,
    /// One `loglikelihood` of the target after the context; perplexity and acc (is_greedy).
    Loglikelihood,
    /// The target's whole-text log-likelihood; word/byte perplexity, bits per byte.
    LoglikelihoodRolling,
    /// Greedy text until a stop string; exact_match, BLEU, chrF, TER.
    GenerateUntil,
}

impl OutputType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "multiple_choice" => Self::MultipleChoice,
            "loglikelihood" => Self::Loglikelihood,
            "loglikelihood_rolling" => Self::LoglikelihoodRolling,
            "generate_until" => Self::GenerateUntil,
            _ => return None,
        })
    }

    /// lm-eval's name (`multiple_choice`...).
    pub fn name(self) -> &'static str {
        match self {
            Self::MultipleChoice => "multiple_choice",
            Self::Loglikelihood => "loglikelihood",
            Self::LoglikelihoodRolling => "loglikelihood_rolling",
            Self::GenerateUntil => "generate_until",
        }
    }

    /// lm-eval's default metrics for the type (`DEFAULT_METRIC_REGISTRY`).
    fn default_metrics(self) -> &'static [&'static str] {
        match self {
            Self::MultipleChoice => &["acc", "acc_norm"],
            Self::Loglikelihood => &["perplexity", "acc"],
            Self::LoglikelihoodRolling => &["word_perplexity", "byte_perplexity", "bits_per_byte"],
            Self::GenerateUntil => &["exact_match"],
        }
    }
}

/// A `doc_to_text` / `doc_to_target` / `doc_to_choice` value: a column name or a Jinja
/// template (told apart against the dataset's columns, as lm-eval does), an integer, or a
/// literal list of choices.
#[derive(Debug, Clone, PartialEq)]
pub enum DocField {
    /// A column name or a template.
    Text(String),
    /// A fixed index.
    Index(i64),
    /// Fixed choices.
    List(Vec<String>),
}

/// One `metric_list` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// `acc`, `acc_norm`, `acc_bytes`, `exact_match`, `perplexity`, `word_perplexity`,
    /// `byte_perplexity`, `bits_per_byte`, `bleu`, `chrf`, `ter`.
    pub metric: String,
    /// Whether larger is better (the table's arrow).
    pub higher_is_better: bool,
    /// Options passed to the metric (`ignore_case`, `ignore_punctuation`, `regexes_to_ignore`...).
    pub kwargs: Map<String, Value>,
}

/// `generation_kwargs` of a `generate_until` task (greedy only).
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationKwargs {
    /// Stop strings.
    pub until: Vec<String>,
    /// New tokens at most (lm-eval's default 256).
    pub max_gen_toks: usize,
}

/// How few-shot examples are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SamplerKind {
    /// `random.Random(seed).sample` over the few-shot docs (`default`).
    Random,
    /// The first n docs (`first_n`).
    FirstN,
}

/// `fewshot_config` with the task's values filled in where it is silent.
#[derive(Debug, Clone, PartialEq)]
pub struct FewshotConfig {
    /// The sampler.
    pub sampler: SamplerKind,
    /// The split examples come from (`fewshot_split`); else training, validation, test.
    pub split: Option<String>,
    /// Examples given inline (`fewshot_config.samples`).
    pub samples: Option<Vec<Map<String, Value>>>,
    /// `doc_to_text` for examples.
    pub doc_to_text: DocField,
    /// `doc_to_target` for examples.
    pub doc_to_target: DocField,
    /// `doc_to_choice` for examples.
    pub doc_to_choice: Option<DocField>,
    /// Between question and answer.
    pub target_delimiter: String,
    /// After each example.
    pub fewshot_delimiter: String,
    /// `gen_prefix` of examples.
    pub gen_prefix: Option<String>,
}

/// A validated task YAML.
#[derive(Debug, Clone)]
pub struct TaskConfig {
    /// The YAML file.
    pub path: PathBuf,
    /// `task`: the task's name.
    pub task: String,
    /// `metadata.version` (the table's Version column).
    pub version: Option<String>,
    /// `output_type`.
    pub output_type: OutputType,
    /// Split name -> files (`dataset_kwargs.data_files`), resolved against the working
    /// directory (where lm-eval resolves them), then the YAML's folder and the folders above it.
    pub data_files: BTreeMap<String, Vec<PathBuf>>,
    /// `test_split`.
    pub test_split: Option<String>,
    /// `validation_split`.
    pub validation_split: Option<String>,
    /// `training_split`.
    pub training_split: Option<String>,
    /// `doc_to_text`.
    pub doc_to_text: DocField,
    /// `doc_to_target`.
    pub doc_to_target: DocField,
    /// `doc_to_choice`.
    pub doc_to_choice: Option<DocField>,
    /// `description`: a template put before everything (as the system turn with a chat template).
    pub description: Option<String>,
    /// `target_delimiter` (default `" "`).
    pub target_delimiter: String,
    /// `fewshot_delimiter` (default `"\n\n"`).
    pub fewshot_delimiter: String,
    /// `gen_prefix`: the start of the assistant's answer.
    pub gen_prefix: Option<String>,
    /// `num_fewshot` (the run's `--num-fewshot` overrides it).
    pub num_fewshot: Option<usize>,
    /// `fewshot_config`, completed from the task's fields.
    pub fewshot: FewshotConfig,
    /// `metric_list`, or the output type's defaults.
    pub metrics: Vec<MetricSpec>,
    /// `generation_kwargs`.
    pub generation: GenerationKwargs,
    /// `filter_list`, or the single pipeline `none` (`take_first`).
    pub filters: Vec<FilterPipeline>,
    source: String,
}

/// Keys lm-eval reads that change nothing here (names, grouping, bookkeeping).
const IGNORED: &[&str] = &["task_alias", "tag", "group", "dataset_name", "should_decontaminate", "doc_to_decontamination_query", "unsafe_code"];
/// Keys whose Python-only or model-side features are not supported: refused unless empty.
const REFUSED: &[&str] = &["process_docs", "process_results", "doc_to_image", "doc_to_audio", "use_prompt", "class", "custom_dataset"];

impl TaskConfig {
    /// Reads a task YAML (and the bases it `include:`s).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (map, source) = read_merged(path, 0)?;
        Self::from_map(path, map, source)
    }

    /// The 1-based line where `field` (a top-level key) is written, when it is.
    pub fn line_of(&self, field: &str) -> Option<usize> {
        line_of(&self.source, field)
    }

    /// A typed error about `field` of this YAML.
    pub fn error(&self, field: &str, message: impl Into<String>) -> LlmError {
        let key = field.split(['.', '[']).next().unwrap_or(field);
        LlmError::task(&self.path, self.line_of(key), field, message)
    }

    pub(crate) fn from_map(path: &Path, m: Map<String, Value>, source: String) -> Result<Self> {
        let err = |field: &str, msg: String| LlmError::task(path, line_of(&source, field.split(['.', '[']).next().unwrap_or(field)), field, msg);
        for (k, v) in &m {
            if REFUSED.contains(&k.as_str()) && !is_empty(v) {
                return Err(err(k, "not supported (Python functions, filters and multimodal inputs are not run here)".into()));
            }
            if !KNOWN.contains(&k.as_str()) && !IGNORED.contains(&k.as_str()) && !REFUSED.contains(&k.as_str()) {
                tracing::warn!(file = %path.display(), key = %k, "unknown task key ignored");
            }
        }
        let str_of = |k: &str| -> Result<Option<String>> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(err(k, format!("expected a string, got {other}"))),
            }
        };
        let task = str_of("task")?.ok_or_else(|| err("task", "missing: every task needs a name".into()))?;
        let output_type = match str_of("output_type")? {
            None => OutputType::GenerateUntil,
            Some(s) => OutputType::parse(&s).ok_or_else(|| {
                err("output_type", format!("`{s}`: expected multiple_choice, loglikelihood, loglikelihood_rolling or generate_until"))
            })?,
        };
        match str_of("dataset_path")?.as_deref() {
            Some("json") => {}
            Some(other) => return Err(err("dataset_path", format!("`{other}`: only local JSON datasets (`dataset_path: json` with `dataset_kwargs.data_files`) are read; the Hub is not reachable"))),
            None => return Err(err("dataset_path", "missing: use `json` with `dataset_kwargs.data_files`".into())),
        }
        let data_files = data_files(path, m.get("dataset_kwargs")).map_err(|msg| err("dataset_kwargs.data_files", msg))?;
        let field = |k: &str| -> Result<Option<DocField>> { doc_field(m.get(k)).map_err(|msg| err(k, msg)) };
        let doc_to_text = field("doc_to_text")?;
        let doc_to_target = field("doc_to_target")?;
        let doc_to_choice = field("doc_to_choice")?;
        let needs_text = output_type != OutputType::LoglikelihoodRolling;
        let doc_to_text = match doc_to_text {
            Some(f) => f,
            None if !needs_text => DocField::Text(String::new()),
            None => return Err(err("doc_to_text", "missing".into())),
        };
        let doc_to_target = doc_to_target.ok_or_else(|| err("doc_to_target", "missing".into()))?;
        if output_type == OutputType::MultipleChoice && doc_to_choice.is_none() {
            return Err(err("doc_to_choice", "missing: a multiple_choice task needs its choices".into()));
        }
        let target_delimiter = str_of("target_delimiter")?.unwrap_or_else(|| " ".into());
        let fewshot_delimiter = str_of("fewshot_delimiter")?.unwrap_or_else(|| "\n\n".into());
        let num_fewshot = match m.get("num_fewshot") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| err("num_fewshot", format!("expected a count, got {v}")))? as usize),
        };
        if let Some(r) = m.get("repeats").filter(|r| r.as_u64() != Some(1)) {
            return Err(err("repeats", format!("{r}: only 1 repeat (greedy) is supported")));
        }
        let gen_prefix = str_of("gen_prefix")?;
        let fewshot_split = str_of("fewshot_split")?;
        let fewshot = fewshot_config(m.get("fewshot_config"), &FewshotConfig {
            sampler: SamplerKind::Random,
            split: fewshot_split,
            samples: None,
            doc_to_text: doc_to_text.clone(),
            doc_to_target: doc_to_target.clone(),
            doc_to_choice: doc_to_choice.clone(),
            target_delimiter: target_delimiter.clone(),
            fewshot_delimiter: fewshot_delimiter.clone(),
            gen_prefix: gen_prefix.clone(),
        })
        .map_err(|(f, msg)| err(&format!("fewshot_config.{f}"), msg))?;
        let metrics = metric_list(m.get("metric_list"), output_type).map_err(|(f, msg)| err(&f, msg))?;
        let generation = generation_kwargs(m.get("generation_kwargs"), &fewshot_delimiter).map_err(|(f, msg)| err(&f, msg))?;
        let filters = match m.get("filter_list").filter(|v| !v.is_null()) {
            None => vec![FilterPipeline::none()],
            Some(_) if output_type != OutputType::GenerateUntil => {
                return Err(err("filter_list", "filters apply to generate_until tasks only".into()));
            }
            Some(v) => FilterPipeline::parse_list(v).map_err(|(f, msg)| err(&f, msg))?,
        };
        let version = m.get("metadata").and_then(|md| md.get("version")).map(|v| match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.as_f64().map(crate::eval::task::template::py_float).unwrap_or_else(|| n.to_string()),
            other => other.to_string(),
        });
        Ok(Self {
            path: path.to_path_buf(),
            task,
            version,
            output_type,
            data_files,
            test_split: str_of("test_split")?,
            validation_split: str_of("validation_split")?,
            training_split: str_of("training_split")?,
            doc_to_text,
            doc_to_target,
            doc_to_choice,
            description: str_of("description")?,
            target_delimiter,
            fewshot_delimiter,
            gen_prefix,
            num_fewshot,
            fewshot,
            metrics,
            generation,
            filters,
            source,
        })
    }
}

/// Every key lm-eval's `TaskConfig` has that is read here.
const KNOWN: &[&str] = &[
    "task", "dataset_path", "dataset_kwargs", "training_split", "validation_split", "test_split", "fewshot_split",
    "doc_to_text", "doc_to_target", "doc_to_choice", "description", "target_delimiter", "fewshot_delimiter",
    "fewshot_config", "num_fewshot", "metric_list", "output_type", "generation_kwargs", "repeats", "gen_prefix",
    "metadata", "include", "filter_list",
];

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// The YAML as a JSON map with its `include:` chain merged (the including file wins), and the
/// including file's text for line numbers.
fn read_merged(path: &Path, depth: usize) -> Result<(Map<String, Value>, String)> {
    if depth > 8 {
        return Err(LlmError::task(path, None, "include", "more than 8 nested includes (a cycle?)"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| LlmError::io(path, e))?;
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| LlmError::task(path, e.location().map(|l| l.line()), "yaml", e.to_string()))?;
    let json = yaml_to_json(&yaml, "").map_err(|(field, msg)| LlmError::task(path, line_of(&text, &field), field, msg))?;
    let Value::Object(mut map) = json else {
        return Err(LlmError::task(path, Some(1), "yaml", "a task file must be a mapping of keys"));
    };
    if let Some(include) = map.remove("include") {
        let Value::String(base) = include else {
            return Err(LlmError::task(path, line_of(&text, "include"), "include", "expected a file name"));
        };
        let base_path = path.parent().unwrap_or(Path::new(".")).join(base);
        let (mut merged, _) = read_merged(&base_path, depth + 1)?;
        merged.extend(map);
        return Ok((merged, text));
    }
    Ok((map, text))
}

/// YAML to JSON; a tag (`!function utils.process_docs`) is refused, naming its key.
fn yaml_to_json(v: &serde_yaml_ng::Value, key: &str) -> std::result::Result<Value, (String, String)> {
    use serde_yaml_ng::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(items.iter().map(|i| yaml_to_json(i, key)).collect::<std::result::Result<_, _>>()?),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let k = match k {
                    Y::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
                };
                let child = if key.is_empty() { k.clone() } else { key.to_string() };
                out.insert(k, yaml_to_json(v, &child)?);
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            return Err((key.to_string(), format!("`{} {}`: Python functions are not supported", t.tag, serde_yaml_ng::to_string(&t.value).unwrap_or_default().trim())))
        }
    })
}

/// The 1-based line of the first top-level `key:` in a YAML text.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines().position(|l| l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':'))).map(|i| i + 1)
}

fn doc_field(v: Option<&Value>) -> std::result::Result<Option<DocField>, String> {
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(DocField::Text(s.clone())),
        Some(Value::Number(n)) => Some(DocField::Index(n.as_i64().ok_or_else(|| format!("{n} is not an integer index"))?)),
        Some(Value::Array(items)) => Some(DocField::List(items.iter().map(json_str).collect())),
        Some(Value::Object(o)) => Some(DocField::List(o.values().map(json_str).collect())),
        Some(other) => return Err(format!("expected a column name, a template, an index or a list, got {other}")),
    })
}

/// Python's `str()` of a JSON value.
pub(crate) fn json_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => super::template::py_str(&minijinja::Value::from_serialize(other)),
    }
}

fn data_files(yaml: &Path, kwargs: Option<&Value>) -> std::result::Result<BTreeMap<String, Vec<PathBuf>>, String> {
    let files = kwargs.and_then(|k| k.get("data_files")).ok_or("missing: name the JSON files, e.g. `data_files: {test: test.jsonl}`")?;
    let list = |v: &Value| -> std::result::Result<Vec<PathBuf>, String> {
        match v {
            Value::String(s) => Ok(vec![resolve(yaml, s)]),
            Value::Array(a) => a.iter().map(|x| x.as_str().map(|s| resolve(yaml, s)).ok_or(format!("{x} is not a file name"))).collect(),
            other => Err(format!("{other} is not a file name or a list of them")),
        }
    };
    let mut out = BTreeMap::new();
    match files {
        // A bare file or list is the `train` split, as in `datasets`.
        Value::String(_) | Value::Array(_) => {
            out.insert("train".to_string(), list(files)?);
        }
        Value::Object(splits) => {
            for (split, v) in splits {
                out.insert(split.clone(), list(v)?);
            }
        }
        other => return Err(format!("{other}: expected a file, a list or a map of split -> files")),
    }
    Ok(out)
}

/// A data file as written (absolute, or relative to the working directory, where lm-eval
/// resolves it) when it exists there; else beside the YAML; else under the nearest folder
/// above the YAML that has it, up to the repository holding the YAML (a folder with `.git`):
/// a path written from a repository's root works from anywhere in it, and nothing outside
/// the repository is picked up. A file found nowhere keeps the path as written, for the error
/// to name.
fn resolve(yaml: &Path, file: &str) -> PathBuf {
    let written = PathBuf::from(file);
    if written.exists() {
        return written;
    }
    let dir = yaml.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    for d in dir.ancestors() {
        let candidate = d.join(file);
        if candidate.exists() {
            tracing::debug!(yaml = %yaml.display(), file, resolved = %candidate.display(), "data file found above the working directory");
            return candidate;
        }
        if d.join(".git").exists() {
            break;
        }
    }
    written
}

fn fewshot_config(v: Option<&Value>, base: &FewshotConfig) -> std::result::Result<FewshotConfig, (String, String)> {
    let mut c = base.clone();
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(c) };
    let m = v.as_object().ok_or(("fewshot_config".to_string(), "expected a mapping".to_string()))?;
    for (k, v) in m {
        let s = || v.as_str().map(str::to_string).ok_or((k.clone(), format!("expected a string, got {v}")));
        match k.as_str() {
            "sampler" => {
                c.sampler = match s()?.as_str() {
                    "default" => SamplerKind::Random,
                    "first_n" => SamplerKind::FirstN,
                    other => return Err((k.clone(), format!("`{other}`: expected default or first_n"))),
                }
            }
            "split" => c.split = Some(s()?),
            "samples" => {
                let rows = v.as_array().ok_or((k.clone(), "expected a list of documents".to_string()))?;
                c.samples = Some(rows.iter().map(|r| r.as_object().cloned().ok_or((k.clone(), format!("{r} is not a document")))).collect::<std::result::Result<_, _>>()?);
            }
            "doc_to_text" => c.doc_to_text = doc_field(Some(v)).map_err(|e| (k.clone(), e))?.unwrap_or(c.doc_to_text),
            "doc_to_target" => c.doc_to_target = doc_field(Some(v)).map_err(|e| (k.clone(), e))?.unwrap_or(c.doc_to_target),
            "doc_to_choice" => c.doc_to_choice = doc_field(Some(v)).map_err(|e| (k.clone(), e))?.or(c.doc_to_choice),
            "target_delimiter" => c.target_delimiter = s()?,
            "fewshot_delimiter" => c.fewshot_delimiter = s()?,
            "gen_prefix" => c.gen_prefix = Some(s()?),
            other => return Err((other.to_string(), "not supported".to_string())),
        }
    }
    Ok(c)
}

fn metric_list(v: Option<&Value>, output_type: OutputType) -> std::result::Result<Vec<MetricSpec>, (String, String)> {
    let Some(items) = v.filter(|v| !v.is_null()) else {
        return Ok(output_type
            .default_metrics()
            .iter()
            .map(|m| MetricSpec { metric: m.to_string(), higher_is_better: higher_is_better(m), kwargs: Map::new() })
            .collect());
    };
    let items = items.as_array().ok_or(("metric_list".to_string(), "expected a list".to_string()))?;
    if items.is_empty() {
        return Err(("metric_list".to_string(), "empty: name at least one metric".to_string()));
    }
    let mut out = vec![];
    for (i, item) in items.iter().enumerate() {
        let f = |k: &str| format!("metric_list[{i}].{k}");
        let m = item.as_object().ok_or((format!("metric_list[{i}]"), "expected a mapping with `metric`".to_string()))?;
        let metric = m.get("metric").and_then(Value::as_str).ok_or((f("metric"), "missing or not a name".to_string()))?;
        if !SUPPORTED_METRICS.contains(&metric) {
            return Err((f("metric"), format!("`{metric}` is not supported; supported: {}", SUPPORTED_METRICS.join(", "))));
        }
        if let Some(agg) = m.get("aggregation").and_then(Value::as_str) {
            if agg != default_aggregation(metric) {
                return Err((f("aggregation"), format!("`{agg}`: {metric} aggregates by {}", default_aggregation(metric))));
            }
        }
        if !metric_fits(metric, output_type) {
            return Err((f("metric"), format!("`{metric}` does not score a {} task", output_type.name())));
        }
        let higher = m.get("higher_is_better").and_then(Value::as_bool).unwrap_or_else(|| higher_is_better(metric));
        let kwargs: Map<String, Value> =
            m.iter().filter(|(k, _)| !["metric", "aggregation", "higher_is_better"].contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in &kwargs {
            if !["ignore_case", "ignore_punctuation", "ignore_numbers", "regexes_to_ignore"].contains(&k.as_str()) || metric != "exact_match" {
                return Err((f(k), format!("`{k}` is not an option of {metric}")));
            }
            check_exact_match_option(k, v).map_err(|msg| (f(k), msg))?;
        }
        out.push(MetricSpec { metric: metric.to_string(), higher_is_better: higher, kwargs });
    }
    Ok(out)
}

/// Whether `metric` scores tasks of `output_type` in lm-eval (its metric registry's
/// `output_type`, and `acc` / `perplexity` for single `loglikelihood` requests).
fn metric_fits(metric: &str, output_type: OutputType) -> bool {
    use OutputType::*;
    match metric {
        "acc" => matches!(output_type, MultipleChoice | Loglikelihood),
        "acc_norm" | "acc_bytes" => output_type == MultipleChoice,
        "exact_match" => matches!(output_type, MultipleChoice | GenerateUntil),
        "perplexity" => output_type == Loglikelihood,
        "word_perplexity" | "byte_perplexity" | "bits_per_byte" => output_type == LoglikelihoodRolling,
        _ => output_type == GenerateUntil,
    }
}

/// `exact_match`'s options: booleans, and `regexes_to_ignore` a list of patterns that compile
/// (lm-eval raises on a bad pattern).
fn check_exact_match_option(key: &str, v: &Value) -> std::result::Result<(), String> {
    if key != "regexes_to_ignore" {
        return v.as_bool().map(|_| ()).ok_or(format!("{v}: expected true or false"));
    }
    let patterns = v.as_array().ok_or(format!("{v}: expected a list of regular expressions"))?;
    for p in patterns {
        let p = p.as_str().ok_or(format!("{p}: expected a regular expression"))?;
        regex::Regex::new(p).map_err(|e| format!("`{p}`: {e}"))?;
    }
    Ok(())
}

/// The metrics [`crate::eval::harness`] computes.
pub const SUPPORTED_METRICS: &[&str] =
    &["acc", "acc_norm", "acc_bytes", "exact_match", "perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "bleu", "chrf", "ter"];

fn default_aggregation(metric: &str) -> &'static str {
    match metric {
        "perplexity" => "perplexity",
        "word_perplexity" | "byte_perplexity" => "weighted_perplexity",
        "bits_per_byte" => "bits_per_byte",
        "bleu" => "bleu",
        "chrf" => "chrf",
        "ter" => "ter",
        _ => "mean",
    }
}

fn higher_is_better(metric: &str) -> bool {
    !matches!(metric, "perplexity" | "word_perplexity" | "byte_perplexity" | "bits_per_byte" | "ter")
}

fn generation_kwargs(v: Option<&Value>, fewshot_delimiter: &str) -> std::result::Result<GenerationKwargs, (String, String)> {
    let mut g = GenerationKwargs { until: vec![fewshot_delimiter.to_string()], max_gen_toks: 256 };
    let Some(v) = v.filter(|v| !v.is_null()) else { return Ok(g) };
    let m = v.as_object().ok_or(("generation_kwargs".to_string(), "expected a mapping".to_string()))?;
    let f = |k: &str| format!("generation_kwargs.{k}");
    for (k, v) in m {
        match k.as_str() {
            "until" => {
                g.until = match v {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_string).ok_or((f(k), format!("{x} is not a string")))).collect::<std::result::Result<_, _>>()?,
                    other => return Err((f(k), format!("{other}: expected a string or a list of strings"))),
                }
            }
            "max_gen_toks" => g.max_gen_toks = v.as_u64().filter(|&n| n > 0).ok_or((f(k), format!("{v}: expected a positive count")))? as usize,
            "do_sample" if v.as_bool() == Some(false) => {}
            "temperature" if v.as_f64() == Some(0.0) => {}
            "do_sample" | "temperature" => return Err((f(k), format!("{v}: only greedy decoding (do_sample: false, temperature: 0) is supported"))),
            other => return Err((f(other), "not supported".to_string())),
        }
    }
    Ok(g)
}
