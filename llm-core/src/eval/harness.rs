//! Runs tasks against a [`LanguageModel`] and scores them as lm-eval's
//! `ConfigurableTask.process_results` and its aggregations do; prints lm-eval's table.

use std::collections::BTreeMap;

use serde::Serialize;

use super::metrics;
use super::lm::{GenerateRequest, LanguageModel, Loglikelihood, LoglikelihoodRequest};
use super::task::{DocRequests, Instance, MetricSpec, PromptOptions, Target, Task};
use crate::error::{LlmError, Result};
use crate::tokenizer::Tokenizer;

/// What the model answered for one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// `loglikelihood`: (log-prob, is_greedy).
    Loglikelihood {
        /// Sum of log-probabilities.
        logprob: f64,
        /// Greedy decoding gives the continuation.
        is_greedy: bool,
    },
    /// `loglikelihood_rolling`.
    Rolling {
        /// Sum of log-probabilities of the whole text.
        logprob: f64,
    },
    /// `generate_until`.
    Text {
        /// The generated text, cut at the stop strings.
        text: String,
    },
}

/// One request with its answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestRecord {
    /// The prompt (empty for rolling requests).
    pub context: String,
    /// The continuation scored (empty for generation).
    pub continuation: String,
    /// The model's answer.
    pub response: Response,
}

/// One document's requests and scores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocResult {
    /// Index in the evaluated split.
    pub doc_id: usize,
    /// `doc_to_target` as text.
    pub target: String,
    /// Requests in lm-eval's order (one per choice for multiple choice).
    pub requests: Vec<RequestRecord>,
    /// The filter pipeline these metrics went through (`none` without `filter_list`); a
    /// generation task with several pipelines has one record per document and pipeline, as
    /// lm-eval's samples do.
    pub filter: String,
    /// The generation after the filter pipeline (what the metrics scored); `None` for
    /// log-likelihood requests.
    pub filtered: Option<String>,
    /// Per-document metric values (corpus metrics, BLEU, chrF and TER, have none: their score
    /// is the corpus's, from `target` and `filtered`).
    pub metrics: BTreeMap<String, f64>,
}

/// A metric over the task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricValue {
    /// The metric's name.
    pub metric: String,
    /// The filter pipeline it scored (`none` without `filter_list`).
    pub filter: String,
    /// Its aggregate.
    pub value: f64,
    /// Standard error of a mean (sample standard deviation / sqrt(n)); `None` where lm-eval
    /// prints N/A (perplexities, corpus metrics).
    pub stderr: Option<f64>,
    /// Whether larger is better.
    pub higher_is_better: bool,
}

/// A task's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskResult {
    /// The task's name.
    pub task: String,
    /// `metadata.version`.
    pub version: Option<String>,
    /// Few-shot examples per prompt.
    pub num_fewshot: usize,
    /// Aggregated metrics in `metric_list` order.
    pub metrics: Vec<MetricValue>,
    /// Per-document records.
    pub docs: Vec<DocResult>,
}

/// Runs `task` with `lm`: builds every document's requests, asks the model for each request
/// type in one call (the model batches them), then scores and aggregates.
pub fn evaluate_task(lm: &dyn LanguageModel, task: &Task, options: &PromptOptions, tokenizer: Option<&Tokenizer>) -> Result<TaskResult> {
    let instances = task.build_requests(options, tokenizer)?;
    let answers = answer_all(lm, task, &instances)?;
    let mut docs = vec![];
    for (inst, records) in instances.iter().zip(answers) {
        docs.extend(score_doc(task, inst, records)?);
    }
    let num_fewshot = options.num_fewshot.or(task.config.num_fewshot).unwrap_or(0);
    let mut metrics = vec![];
    for filter in &task.config.filters {
        let docs: Vec<&DocResult> = docs.iter().filter(|d| d.filter == filter.name).collect();
        for spec in &task.config.metrics {
            metrics.push(aggregate(spec, &filter.name, &docs, &instances)?);
        }
    }
    Ok(TaskResult { task: task.name().to_string(), version: task.config.version.clone(), num_fewshot, metrics, docs })
}

/// Every instance's requests answered, grouped per instance.
fn answer_all(lm: &dyn LanguageModel, task: &Task, instances: &[Instance]) -> Result<Vec<Vec<RequestRecord>>> {
    let mut ll = vec![];
    let mut rolling = vec![];
    let mut generate = vec![];
    let g = &task.config.generation;
    for inst in instances {
        match &inst.requests {
            DocRequests::Choices { context, continuations, .. } => {
                ll.extend(continuations.iter().map(|c| LoglikelihoodRequest { context: context.clone(), continuation: c.clone() }))
            }
            DocRequests::Loglikelihood { context, continuation } => ll.push(LoglikelihoodRequest { context: context.clone(), continuation: continuation.clone() }),
            DocRequests::Rolling { text } => rolling.push(text.clone()),
            DocRequests::Generate { context, .. } => generate.push(GenerateRequest { context: context.clone(), until: g.until.clone(), max_gen_toks: g.max_gen_toks }),
        }
    }
    let mut ll_out = answered(lm.loglikelihood(&ll)?, ll.len(), "loglikelihood", lm)?.into_iter().zip(ll);
    let mut rolling_out = answered(lm.loglikelihood_rolling(&rolling)?, rolling.len(), "loglikelihood_rolling", lm)?.into_iter().zip(rolling);
    let mut gen_out = answered(lm.generate_until(&generate)?, generate.len(), "generate_until", lm)?.into_iter().zip(generate);
    let record = |(Loglikelihood { logprob, is_greedy }, r): (Loglikelihood, LoglikelihoodRequest)| RequestRecord {
        context: r.context,
        continuation: r.continuation,
        response: Response::Loglikelihood { logprob, is_greedy },
    };
    let mut out = vec![];
    for inst in instances {
        out.push(match &inst.requests {
            DocRequests::Choices { continuations, .. } => ll_out.by_ref().take(continuations.len()).map(record).collect(),
            DocRequests::Loglikelihood { .. } => ll_out.next().map(record).into_iter().collect(),
            DocRequests::Rolling { .. } => rolling_out
                .next()
                .map(|(logprob, text)| RequestRecord { context: String::new(), continuation: text, response: Response::Rolling { logprob } })
                .into_iter()
                .collect(),
            DocRequests::Generate { .. } => gen_out
                .next()
                .map(|(text, r)| RequestRecord { context: r.context, continuation: String::new(), response: Response::Text { text } })
                .into_iter()
                .collect(),
        });
    }
    Ok(out)
}

/// `answers`, when the model gave one per request (a [`LanguageModel`] that drops or adds
/// answers would misalign every document after it).
fn answered<T>(answers: Vec<T>, requests: usize, kind: &str, lm: &dyn LanguageModel) -> Result<Vec<T>> {
    if answers.len() != requests {
        return Err(LlmError::Shape {
            what: format!("{} answers to {kind} requests", lm.name()),
            expected: format!("one per request ({requests})"),
            got: vec![answers.len()],
        });
    }
    Ok(answers)
}

/// `np.argmax`: the first index of the largest value.
fn argmax(xs: impl Iterator<Item = f64>) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, x) in xs.enumerate() {
        if x > best.1 || i == 0 {
            best = (i, x);
        }
    }
    best.0
}

fn lls(records: &[RequestRecord]) -> Vec<(f64, bool)> {
    records
        .iter()
        .map(|r| match r.response {
            Response::Loglikelihood { logprob, is_greedy } => (logprob, is_greedy),
            Response::Rolling { logprob } => (logprob, false),
            Response::Text { .. } => (f64::NAN, false),
        })
        .collect()
}

/// The gold choice indices of a multiple-choice document (several for a list target).
fn gold_indices(task: &Task, doc_id: usize, gold: &Target, choices: &[String]) -> Result<Vec<usize>> {
    let err = |m: String| task.eval_docs().row_error(doc_id, "doc_to_target", m);
    let one = |g: &Target| -> Result<usize> {
        match g {
            Target::Index(i) if *i >= 0 && (*i as usize) < choices.len() => Ok(*i as usize),
            Target::Index(i) => Err(err(format!("gold index {i} is outside the {} choices", choices.len()))),
            Target::Text(s) => choices.iter().position(|c| c == s).ok_or_else(|| err(format!("gold `{s}` is not one of the choices {choices:?}"))),
            Target::List(_) => unreachable!(),
        }
    };
    match gold {
        Target::List(items) => items
            .iter()
            .map(|x| match x {
                super::task::template::PyLiteral::Int(i) => one(&Target::Index(*i)),
                other => one(&Target::Text(other.py_str())),
            })
            .collect(),
        g => Ok(vec![one(g)?]),
    }
}

/// A document's records: one, or one per filter pipeline for a generation task.
fn score_doc(task: &Task, inst: &Instance, requests: Vec<RequestRecord>) -> Result<Vec<DocResult>> {
    if let DocRequests::Generate { gold, choices, .. } = &inst.requests {
        return score_generation(task, inst, requests, gold, choices.as_deref());
    }
    let mut metrics = BTreeMap::new();
    let wants = |m: &str| task.config.metrics.iter().any(|s| s.metric == m);
    let target = match &inst.requests {
        DocRequests::Choices { choices, gold, .. } => {
            let lls = lls(&requests);
            let golds = gold_indices(task, inst.doc_id, gold, choices)?;
            let pred = argmax(lls.iter().map(|l| l.0));
            let pred_norm = argmax(lls.iter().zip(choices).map(|(l, c)| l.0 / c.chars().count() as f64));
            let pred_bytes = argmax(lls.iter().zip(choices).map(|(l, c)| l.0 / c.len() as f64));
            let hit = |p: usize| if golds.contains(&p) { 1.0 } else { 0.0 };
            for (m, v) in [("acc", hit(pred)), ("acc_norm", hit(pred_norm)), ("acc_bytes", hit(pred_bytes))] {
                if wants(m) {
                    metrics.insert(m.to_string(), v);
                }
            }
            if wants("exact_match") {
                metrics.insert("exact_match".into(), if golds.iter().any(|&g| lls[g].1) { 1.0 } else { 0.0 });
            }
            gold.to_text()
        }
        DocRequests::Loglikelihood { continuation, .. } => {
            let (ll, greedy) = lls(&requests)[0];
            if wants("perplexity") {
                metrics.insert("perplexity".into(), ll);
            }
            if wants("acc") {
                metrics.insert("acc".into(), if greedy { 1.0 } else { 0.0 });
            }
            continuation.clone()
        }
        DocRequests::Rolling { text } => {
            let ll = lls(&requests)[0].0;
            for m in ["word_perplexity", "byte_perplexity", "bits_per_byte"] {
                if wants(m) {
                    metrics.insert(m.to_string(), ll);
                }
            }
            text.clone()
        }
        DocRequests::Generate { .. } => unreachable!("scored by score_generation"),
    };
    Ok(vec![DocResult { doc_id: inst.doc_id, target, requests, filter: "none".into(), filtered: None, metrics }])
}

/// A generation scored through each filter pipeline: exact match per document; BLEU, chrF
/// and TER are corpus scores, computed in [`aggregate`] from the records' target and filtered
/// text.
fn score_generation(task: &Task, inst: &Instance, requests: Vec<RequestRecord>, gold: &Target, choices: Option<&[String]>) -> Result<Vec<DocResult>> {
    let Response::Text { text } = &requests[0].response else { unreachable!("generation answers are text") };
    let golds = generation_golds(task, inst.doc_id, gold, choices)?;
    let corpus = task.config.metrics.iter().find(|m| CORPUS_METRICS.contains(&m.metric.as_str()));
    if let (Some(m), true) = (corpus, golds.len() != 1) {
        let msg = format!("{} scores one reference per document; this target is a list of {}", m.metric, golds.len());
        return Err(task.eval_docs().row_error(inst.doc_id, "doc_to_target", msg));
    }
    let mut out = vec![];
    for filter in &task.config.filters {
        let filtered = filter.apply(text);
        let mut metrics = BTreeMap::new();
        for spec in task.config.metrics.iter().filter(|m| m.metric == "exact_match") {
            let hit = golds.iter().any(|g| exact_match(&filtered, g, spec));
            metrics.insert("exact_match".into(), if hit { 1.0 } else { 0.0 });
        }
        out.push(DocResult {
            doc_id: inst.doc_id,
            target: golds.first().cloned().unwrap_or_default(),
            requests: requests.clone(),
            filter: filter.name.clone(),
            filtered: Some(filtered),
            metrics,
        });
    }
    Ok(out)
}

/// Metrics whose score is the corpus's (sacrebleu's `corpus_*`), not a mean over documents.
const CORPUS_METRICS: &[&str] = &["bleu", "chrf", "ter"];

/// The texts a generation may equal: the gold choice, every target of a list, or the text.
fn generation_golds(task: &Task, doc_id: usize, gold: &Target, choices: Option<&[String]>) -> Result<Vec<String>> {
    Ok(match (gold, choices) {
        (Target::Index(_), Some(c)) => gold_indices(task, doc_id, gold, c)?.into_iter().map(|i| c[i].clone()).collect(),
        (Target::List(items), _) => items.iter().map(|x| x.py_str()).collect(),
        (g, _) => vec![g.to_text()],
    })
}

/// lm-eval's `exact_match` (`exact_match_hf_evaluate`): regexes removed, then optional case,
/// punctuation and digit folding, then equality.
pub fn exact_match(prediction: &str, reference: &str, spec: &MetricSpec) -> bool {
    let flag = |k: &str| spec.kwargs.get(k).and_then(serde_json::Value::as_bool).unwrap_or(false);
    let norm = |s: &str| -> String {
        let mut s = s.to_string();
        if let Some(serde_json::Value::Array(res)) = spec.kwargs.get("regexes_to_ignore") {
            for r in res.iter().filter_map(serde_json::Value::as_str) {
                if let Ok(re) = regex::Regex::new(r) {
                    s = re.replace_all(&s, "").into_owned();
                }
            }
        }
        if flag("ignore_case") {
            s = s.to_lowercase();
        }
        if flag("ignore_punctuation") {
            s.retain(|c| !c.is_ascii_punctuation());
        }
        if flag("ignore_numbers") {
            s.retain(|c| !c.is_ascii_digit());
        }
        s
    };
    norm(prediction) == norm(reference)
}

fn aggregate(spec: &MetricSpec, filter: &str, docs: &[&DocResult], instances: &[Instance]) -> Result<MetricValue> {
    let values: Vec<f64> = docs.iter().filter_map(|d| d.metrics.get(&spec.metric).copied()).collect();
    let text_of = |i: &Instance| match &i.requests {
        DocRequests::Rolling { text } => Some(text.clone()),
        _ => None,
    };
    let (value, stderr) = match spec.metric.as_str() {
        "perplexity" => ((-mean(&values)).exp(), None),
        "word_perplexity" | "byte_perplexity" | "bits_per_byte" => {
            let texts: Vec<String> = instances.iter().filter_map(text_of).collect();
            let ll: f64 = values.iter().sum();
            let words: usize = texts.iter().map(|t| python_word_count(t)).sum();
            let bytes: usize = texts.iter().map(String::len).sum();
            let v = match spec.metric.as_str() {
                "word_perplexity" => (-ll / words as f64).exp(),
                "byte_perplexity" => (-ll / bytes as f64).exp(),
                _ => -ll / bytes as f64 / std::f64::consts::LN_2,
            };
            (v, None)
        }
        "bleu" | "chrf" | "ter" => (corpus_score(&spec.metric, docs)?, None),
        _ => (mean(&values), Some(mean_stderr(&values))),
    };
    Ok(MetricValue { metric: spec.metric.clone(), filter: filter.to_string(), value, stderr, higher_is_better: spec.higher_is_better })
}

/// lm-eval's `bleu` / `chrf` / `ter` aggregations: sacrebleu's corpus score of the filtered
/// generations against one reference stream (lm-eval's bootstrap stderr is random: not given).
fn corpus_score(metric: &str, docs: &[&DocResult]) -> Result<f64> {
    let hyps: Vec<&str> = docs.iter().map(|d| d.filtered.as_deref().unwrap_or("")).collect();
    let refs: Vec<[&str; 1]> = docs.iter().map(|d| [d.target.as_str()]).collect();
    Ok(match metric {
        "bleu" => metrics::corpus_bleu(&hyps, &refs)?.score,
        "chrf" => metrics::corpus_chrf(&hyps, &refs)?.score,
        _ => metrics::corpus_ter(&hyps, &refs)?.score,
    })
}

/// `len(re.split(r"\s+", text))`: a leading or trailing run of whitespace counts an empty word.
fn python_word_count(text: &str) -> usize {
    let mut n = 1;
    let mut in_space = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if !in_space {
                n += 1;
            }
            in_space = true;
        } else {
            in_space = false;
        }
    }
    n
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// `sample_stddev / sqrt(n)` (ddof 1), as lm-eval's `mean_stderr`.
fn mean_stderr(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64;
    (var / xs.len() as f64).sqrt()
}

/// lm-eval's results table (`make_table`: pytablewriter's Markdown) character for character:
/// one row per task, metric and filter, metrics sorted by `metric,filter`, the task and its
/// version on its first row, headers centred, numbers right-aligned, `   N/A` where a metric
/// has no standard error.
pub fn results_table(results: &[TaskResult]) -> String {
    let mut rows = vec![];
    for r in results {
        let mut metrics: Vec<&MetricValue> = r.metrics.iter().collect();
        metrics.sort_by_key(|m| format!("{},{}", m.metric, m.filter));
        for (k, m) in metrics.into_iter().enumerate() {
            let first = k == 0;
            rows.push([
                if first { r.task.clone() } else { String::new() },
                if first { table_version(r.version.as_deref()) } else { String::new() },
                m.filter.clone(),
                r.num_fewshot.to_string(),
                m.metric.clone(),
                if m.higher_is_better { "↑".into() } else { "↓".into() },
                format!("{:.4}", m.value),
                "±".into(),
                m.stderr.filter(|s| s.is_finite()).map_or("   N/A".into(), |s| format!("{s:.4}")),
            ]);
        }
    }
    let header = ["Tasks", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr"];
    // pytablewriter right-aligns the columns whose cells are numbers.
    let right = [false, true, false, true, false, false, true, false, false];
    let width = |c: usize| rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count(), 3]).max().unwrap_or(3);
    let widths: Vec<usize> = (0..9).map(width).collect();
    let pad = |s: &str, c: usize, align: Align| {
        let room = widths[c] - s.chars().count();
        let left = match align {
            Align::Left => 0,
            Align::Right => room,
            Align::Center => room / 2,
        };
        format!("{}{s}{}", " ".repeat(left), " ".repeat(room - left))
    };
    let line = |cells: Vec<String>| format!("|{}|\n", cells.join("|"));
    let mut out = line((0..9).map(|c| pad(header[c], c, Align::Center)).collect());
    out += &line((0..9).map(|c| if right[c] { format!("{}:", "-".repeat(widths[c] - 1)) } else { "-".repeat(widths[c]) }).collect());
    for r in &rows {
        out += &line((0..9).map(|c| pad(&r[c], c, if right[c] { Align::Right } else { Align::Left })).collect());
    }
    out
}

enum Align {
    Left,
    Right,
    Center,
}

/// `metadata.version` as the table prints it: a whole number without its `.0` (pytablewriter
/// writes the float 1.0 as `1`), `    N/A` without one.
fn table_version(version: Option<&str>) -> String {
    match version {
        None => "    N/A".into(),
        Some(v) => match v.parse::<f64>() {
            Ok(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{}", x as i64),
            _ => v.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_lm_evals_make_table() {
        let m = |metric: &str, filter: &str, value: f64, stderr: Option<f64>, higher_is_better: bool| MetricValue {
            metric: metric.into(),
            filter: filter.into(),
            value,
            stderr,
            higher_is_better,
        };
        let task = |task: &str, num_fewshot: usize, metrics: Vec<MetricValue>| TaskResult { task: task.into(), version: Some("1.0".into()), num_fewshot, metrics, docs: vec![] };
        let results = [
            task("capitals_gen", 3, vec![m("exact_match", "strip", 0.7333333333333333, Some(0.0821), true), m("bleu", "strip", 12.5, None, true)]),
            task("rolling_text", 0, vec![m("word_perplexity", "none", 60.2115, None, false), m("bits_per_byte", "none", 1.0933, None, false)]),
        ];
        // lm_eval.utils.make_table (0.4.13) on the same values.
        let want = "|   Tasks    |Version|Filter|n-shot|    Metric     |   | Value |   |Stderr|
|------------|------:|------|-----:|---------------|---|------:|---|------|
|capitals_gen|      1|strip |     3|bleu           |↑  |12.5000|±  |   N/A|
|            |       |strip |     3|exact_match    |↑  | 0.7333|±  |0.0821|
|rolling_text|      1|none  |     0|bits_per_byte  |↓  | 1.0933|±  |   N/A|
|            |       |none  |     0|word_perplexity|↓  |60.2115|±  |   N/A|
";
        assert_eq!(results_table(&results), want);
    }

    #[test]
    fn word_count_is_pythons_split() {
        // len(re.split(r"\s+", s)) for these strings
        assert_eq!(python_word_count("a b  c"), 3);
        assert_eq!(python_word_count(" a b "), 4);
        assert_eq!(python_word_count(""), 1);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax([1.0, 3.0, 3.0].into_iter()), 1);
        assert_eq!(argmax([f64::NEG_INFINITY, f64::NEG_INFINITY].into_iter()), 0);
    }
}
