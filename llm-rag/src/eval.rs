//! Retrieval metrics on labelled queries: hit-rate@k, MRR and nDCG@k (binary relevance); and
//! Ragas' LLM-judged RAG metrics, computed locally with any [`Llm`] as the judge and any
//! [`Embedder`]: context precision, context recall, faithfulness and answer relevancy.
//!
//! The judge's replies are read leniently ([`parse_verdicts`]: JSON as Ragas asks for it, or
//! `yes`/`no`, `1`/`0`, `Verdict: ...` lines). A reply that cannot be read is asked once more,
//! then counted as unparsed and scored 0; a sample with nothing to judge (no contexts, zero
//! statements) scores 0 with [`Score::empty`] set. No score is ever NaN, where Ragas gives NaN
//! for both.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::embed::{cosine, Embedder};
use crate::error::Result;
use crate::query::Llm;

/// Means over queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrievalMetrics {
    /// Queries with a relevant id among the first `k`.
    pub hit_rate: f64,
    /// Mean of `1 / rank` of the first relevant id (0 when none is retrieved).
    pub mrr: f64,
    /// Mean nDCG@k: `Σ_{relevant at rank r ≤ k} 1/log2(r + 1)` over the ideal ordering's value.
    pub ndcg: f64,
    /// The `k`.
    pub k: usize,
    /// Number of queries.
    pub queries: usize,
}

/// Metrics of `ranked[q]` (ids, best first) against `relevant[q]`.
pub fn retrieval_metrics(ranked: &[Vec<String>], relevant: &[HashSet<String>], k: usize) -> RetrievalMetrics {
    let n = ranked.len().min(relevant.len());
    let (mut hit, mut mrr, mut ndcg) = (0.0, 0.0, 0.0);
    for (list, rel) in ranked.iter().zip(relevant).take(n) {
        if let Some(pos) = list.iter().position(|id| rel.contains(id)) {
            mrr += 1.0 / (pos + 1) as f64;
            if pos < k {
                hit += 1.0;
            }
        }
        let dcg: f64 = list.iter().take(k).enumerate().filter(|(_, id)| rel.contains(*id)).map(|(r, _)| 1.0 / ((r + 2) as f64).log2()).sum();
        let ideal: f64 = (0..rel.len().min(k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
        if ideal > 0.0 {
            ndcg += dcg / ideal;
        }
    }
    let d = n.max(1) as f64;
    RetrievalMetrics { hit_rate: hit / d, mrr: mrr / d, ndcg: ndcg / d, k, queries: n }
}

/// One sample to judge (Ragas' `SingleTurnSample`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RagasSample {
    /// The user's question (`user_input`).
    pub question: String,
    /// The generated answer (`response`).
    pub answer: String,
    /// The retrieved contexts, best first (`retrieved_contexts`).
    pub contexts: Vec<String>,
    /// The ground-truth answer (`reference`).
    pub reference: String,
}

/// One metric on one sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    /// Never NaN; in `[0, 1]` (answer relevancy is a mean cosine, in `[-1, 1]`).
    pub value: f64,
    /// What was judged: contexts, statements or generated questions.
    pub items: usize,
    /// Of `items`, those whose judgement never parsed, even when asked again; each scored 0.
    pub unparsed: usize,
    /// Nothing to judge (no contexts, zero statements): `value` is 0, where Ragas gives NaN.
    pub empty: bool,
}

impl Score {
    fn of(value: f64, items: usize, unparsed: usize) -> Self {
        Self { value: if value.is_finite() { value } else { 0.0 }, items, unparsed, empty: items == 0 }
    }

    /// The fraction of `n` statements judged true; all `n` unparsed when the verdicts are missing.
    fn fraction(verdicts: Option<Vec<bool>>, n: usize) -> Self {
        match verdicts {
            Some(v) => Self::of(v.iter().filter(|&&b| b).count() as f64 / n as f64, n, 0),
            None => Self::of(0.0, n, n),
        }
    }
}

/// The four metrics of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RagasScores {
    /// Ranked usefulness of the contexts for the reference ([`average_precision`] of verdicts).
    pub context_precision: Score,
    /// Fraction of the reference's sentences attributable to the contexts.
    pub context_recall: Score,
    /// Fraction of the answer's statements supported by the contexts.
    pub faithfulness: Score,
    /// Mean cosine of questions generated from the answer to the question.
    pub answer_relevancy: Score,
}

impl RagasScores {
    /// The four scores, in field order.
    pub fn all(&self) -> [Score; 4] {
        [self.context_precision, self.context_recall, self.faithfulness, self.answer_relevancy]
    }
}

/// Means over samples of each metric; samples where the metric had nothing to judge are left
/// out (Ragas' NaNs, which its `nanmean` skips), and a metric empty everywhere means 0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RagasMeans {
    /// Mean context precision.
    pub context_precision: f64,
    /// Mean context recall.
    pub context_recall: f64,
    /// Mean faithfulness.
    pub faithfulness: f64,
    /// Mean answer relevancy.
    pub answer_relevancy: f64,
}

/// Scores of a set of samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RagasReport {
    /// Per sample, in input order.
    pub samples: Vec<RagasScores>,
    /// Means over samples.
    pub mean: RagasMeans,
    /// Judgements that never parsed, over all samples and metrics.
    pub unparsed: usize,
    /// Sample-metric pairs with nothing to judge.
    pub empty: usize,
}

impl RagasReport {
    /// Totals and means of `samples`.
    pub fn new(samples: Vec<RagasScores>) -> Self {
        let mean = |pick: fn(&RagasScores) -> Score| {
            let kept: Vec<f64> = samples.iter().map(pick).filter(|s| !s.empty).map(|s| s.value).collect();
            if kept.is_empty() { 0.0 } else { kept.iter().sum::<f64>() / kept.len() as f64 }
        };
        let mean = RagasMeans {
            context_precision: mean(|s| s.context_precision),
            context_recall: mean(|s| s.context_recall),
            faithfulness: mean(|s| s.faithfulness),
            answer_relevancy: mean(|s| s.answer_relevancy),
        };
        let scores = || samples.iter().flat_map(RagasScores::all);
        let (unparsed, empty) = (scores().map(|s| s.unparsed).sum::<usize>(), scores().filter(|s| s.empty).count());
        Self { samples, mean, unparsed, empty }
    }
}

/// Ragas' average precision of ranked usefulness verdicts:
/// `Σ_i precision@i · v_i / Σ_i v_i` (0 when nothing is useful). `[1, 0, 1]` gives
/// `(1/1 + 2/3) / 2`.
pub fn average_precision(verdicts: &[bool]) -> f64 {
    let (mut useful, mut sum) = (0usize, 0.0);
    for (i, _) in verdicts.iter().enumerate().filter(|(_, v)| **v) {
        useful += 1;
        sum += useful as f64 / (i + 1) as f64;
    }
    if useful == 0 { 0.0 } else { sum / useful as f64 }
}

/// Ragas' metrics with `llm` as the judge and `embedder` for answer relevancy.
pub struct RagasJudge<'a> {
    /// The judge.
    pub llm: &'a dyn Llm,
    /// Embeds questions for answer relevancy.
    pub embedder: &'a dyn Embedder,
    /// Questions generated per answer for answer relevancy (Ragas' `strictness`, 3). The
    /// questions only differ when the judge samples.
    pub strictness: usize,
}

impl<'a> RagasJudge<'a> {
    /// A judge with Ragas' default strictness (3).
    pub fn new(llm: &'a dyn Llm, embedder: &'a dyn Embedder) -> Self {
        Self { llm, embedder, strictness: 3 }
    }

    /// Asks `prompt`, and once more when `parse` reads nothing from the reply.
    fn ask<T>(&self, prompt: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>> {
        for _ in 0..2 {
            if let Some(t) = parse(&self.llm.complete(prompt)?) {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// Each context judged useful or not for reaching the reference (one call per context),
    /// scored by [`average_precision`] in rank order (Ragas' `LLMContextPrecisionWithReference`).
    pub fn context_precision(&self, sample: &RagasSample) -> Result<Score> {
        let (mut verdicts, mut unparsed) = (vec![], 0);
        for context in &sample.contexts {
            let input = json!({"question": sample.question, "context": context, "answer": sample.reference});
            let verdict = self.ask(&prompt(&PRECISION, input), parse_verdict)?;
            unparsed += usize::from(verdict.is_none());
            verdicts.push(verdict.unwrap_or(false));
        }
        Ok(Score::of(average_precision(&verdicts), verdicts.len(), unparsed))
    }

    /// The reference's [`sentences`] classified as attributable to the contexts or not, in one
    /// call (Ragas' `LLMContextRecall`; Ragas lets the judge split the reference, here it is
    /// split beforehand so a reply with the wrong number of verdicts is caught).
    pub fn context_recall(&self, sample: &RagasSample) -> Result<Score> {
        let statements = sentences(&sample.reference);
        if statements.is_empty() {
            return Ok(Score::of(0.0, 0, 0));
        }
        let input = json!({"question": sample.question, "context": sample.contexts.join("\n"), "statements": statements});
        let verdicts = self.ask(&prompt(&RECALL, input), |r| parse_verdicts(r, statements.len()))?;
        Ok(Score::fraction(verdicts, statements.len()))
    }

    /// The answer broken into statements by the judge, then each statement judged as inferable
    /// from the contexts or not, in one call (Ragas' `Faithfulness`).
    pub fn faithfulness(&self, sample: &RagasSample) -> Result<Score> {
        let statements = if sample.answer.trim().is_empty() {
            vec![]
        } else {
            let input = json!({"question": sample.question, "answer": sample.answer});
            self.ask(&prompt(&STATEMENTS, input), parse_statements)?.unwrap_or_default()
        };
        if statements.is_empty() {
            return Ok(Score::of(0.0, 0, 0));
        }
        let input = json!({"context": sample.contexts.join("\n"), "statements": statements});
        let verdicts = self.ask(&prompt(&NLI, input), |r| parse_verdicts(r, statements.len()))?;
        Ok(Score::fraction(verdicts, statements.len()))
    }

    /// `strictness` questions generated from the answer; the mean cosine of their embeddings to
    /// the question's, unparsed generations counting 0, and 0 when every generation calls the
    /// answer noncommittal (Ragas' `AnswerRelevancy`).
    pub fn answer_relevancy(&self, sample: &RagasSample) -> Result<Score> {
        let mut generated = vec![];
        for _ in 0..self.strictness {
            generated.push(self.ask(&prompt(&RELEVANCY, json!({"response": sample.answer})), parse_question)?);
        }
        let parsed: Vec<&(String, bool)> = generated.iter().flatten().collect();
        let unparsed = self.strictness - parsed.len();
        if parsed.is_empty() || parsed.iter().all(|(_, noncommittal)| *noncommittal) {
            return Ok(Score::of(0.0, self.strictness, unparsed));
        }
        let texts: Vec<&str> = std::iter::once(sample.question.as_str()).chain(parsed.iter().map(|(q, _)| q.as_str())).collect();
        let vectors = self.embedder.embed(&texts)?;
        let similarity: f64 = vectors.iter().skip(1).map(|v| cosine(&vectors[0], v) as f64).sum();
        Ok(Score::of(similarity / self.strictness as f64, self.strictness, unparsed))
    }

    /// All four metrics of one sample.
    pub fn score(&self, sample: &RagasSample) -> Result<RagasScores> {
        Ok(RagasScores {
            context_precision: self.context_precision(sample)?,
            context_recall: self.context_recall(sample)?,
            faithfulness: self.faithfulness(sample)?,
            answer_relevancy: self.answer_relevancy(sample)?,
        })
    }

    /// All four metrics of every sample, with means and counts.
    pub fn evaluate(&self, samples: &[RagasSample]) -> Result<RagasReport> {
        Ok(RagasReport::new(samples.iter().map(|s| self.score(s)).collect::<Result<_>>()?))
    }
}

/// A Ragas prompt: the task, the JSON shape of the output, one worked example.
struct PromptSpec {
    instruction: &'static str,
    shape: &'static str,
    example_input: &'static str,
    example_output: &'static str,
}

/// The prompt in Ragas' layout, with `input` as JSON.
fn prompt(spec: &PromptSpec, input: Value) -> String {
    format!(
        "{}\nPlease return the output in a JSON format that complies with the following schema: {}\n\
Do not use single quotes in your response but double quotes, properly escaped with a backslash.\n\n\
--------EXAMPLES-----------\nExample 1\nInput: {}\nOutput: {}\n-----------------------------\n\n\
Now perform the same with the following input\ninput: {input}\nOutput: ",
        spec.instruction, spec.shape, spec.example_input, spec.example_output
    )
}

const PRECISION: PromptSpec = PromptSpec {
    instruction: "Given question, answer and context verify if the context was useful in arriving at the given answer. \
Give verdict as \"1\" if useful and \"0\" if not with json output.",
    shape: r#"{"reason": string, "verdict": 0 or 1}"#,
    example_input: r#"{"question": "What is the tallest mountain in the world?", "context": "The Andes is the longest continental mountain range in the world, located in South America.", "answer": "Mount Everest."}"#,
    example_output: r#"{"reason": "The context discusses the Andes, which does not include Mount Everest or relate to the world's tallest mountain.", "verdict": 0}"#,
};

const RECALL: PromptSpec = PromptSpec {
    instruction: "Given a context and the statements of an answer, analyze each statement and classify if the statement can be \
attributed to the given context or not. Use only binary classification: 1 if the statement can be attributed to the context, \
0 if it cannot. Classify every statement, in the order given. Provide detailed reasoning for each classification.",
    shape: r#"{"classifications": [{"statement": string, "reason": string, "attributed": 0 or 1}]}"#,
    example_input: r#"{"question": "What can you tell me about Albert Einstein?", "context": "Albert Einstein (14 March 1879 - 18 April 1955) was a German-born theoretical physicist. He received the 1921 Nobel Prize in Physics.", "statements": ["Albert Einstein, born on 14 March 1879, was a German-born theoretical physicist.", "He published 4 papers in 1905."]}"#,
    example_output: r#"{"classifications": [{"statement": "Albert Einstein, born on 14 March 1879, was a German-born theoretical physicist.", "reason": "The date of birth and the profession are stated in the context.", "attributed": 1}, {"statement": "He published 4 papers in 1905.", "reason": "The context does not mention papers.", "attributed": 0}]}"#,
};

const STATEMENTS: PromptSpec = PromptSpec {
    instruction: "Given a question and an answer, analyze the complexity of each sentence in the answer. Break down each \
sentence into one or more fully understandable statements. Ensure that no pronouns are used in any statement.",
    shape: r#"{"statements": [string]}"#,
    example_input: r#"{"question": "Who was Albert Einstein and what is he best known for?", "answer": "He was a German-born theoretical physicist. He was best known for developing the theory of relativity."}"#,
    example_output: r#"{"statements": ["Albert Einstein was a German-born theoretical physicist.", "Albert Einstein was best known for developing the theory of relativity."]}"#,
};

const NLI: PromptSpec = PromptSpec {
    instruction: "Your task is to judge the faithfulness of a series of statements based on a given context. For each statement \
you must return verdict as 1 if the statement can be directly inferred based on the context or 0 if the statement can not be \
directly inferred based on the context.",
    shape: r#"{"statements": [{"statement": string, "reason": string, "verdict": 0 or 1}]}"#,
    example_input: r#"{"context": "John is a student at XYZ University. He is pursuing a degree in Computer Science.", "statements": ["John is majoring in Biology.", "John is a student."]}"#,
    example_output: r#"{"statements": [{"statement": "John is majoring in Biology.", "reason": "John's major is Computer Science.", "verdict": 0}, {"statement": "John is a student.", "reason": "The context says John is a student at XYZ University.", "verdict": 1}]}"#,
};

const RELEVANCY: PromptSpec = PromptSpec {
    instruction: "Generate a question for the given answer and identify if the answer is noncommittal. Give noncommittal as 1 if \
the answer is noncommittal (evasive, vague, or ambiguous) and 0 if the answer is substantive. Examples of noncommittal answers: \
\"I don't know\", \"I'm not sure\", \"It depends\".",
    shape: r#"{"question": string, "noncommittal": 0 or 1}"#,
    example_input: r#"{"response": "Albert Einstein was born in Germany."}"#,
    example_output: r#"{"question": "Where was Albert Einstein born?", "noncommittal": 0}"#,
};

/// Sentences of `text`: cut after `.`, `!` or `?` followed by whitespace, and at line breaks;
/// trimmed, empty ones dropped.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at_space = chars.peek().is_none_or(|(_, next)| next.is_whitespace());
        if c == '\n' || (matches!(c, '.' | '!' | '?') && at_space) {
            out.push(text[start..i + c.len_utf8()].trim().to_string());
            start = i + c.len_utf8();
        }
    }
    out.push(text[start..].trim().to_string());
    out.retain(|s| !s.is_empty());
    out
}

/// Object fields that carry a verdict, as Ragas' prompts and judges spell them.
const VERDICT_KEYS: [&str; 6] = ["verdict", "attributed", "useful", "supported", "faithful", "answer"];
/// Labels a verdict line may start with (`Verdict: yes`, `Statement 2: 0`).
const LINE_LABELS: [&str; 9] = ["verdict", "answer", "judgement", "judgment", "attributed", "classification", "statement", "context", "result"];

/// One verdict: see [`parse_verdicts`]; of several verdict lines the first counts.
pub fn parse_verdict(reply: &str) -> Option<bool> {
    if let Some(v) = first_json(reply).and_then(|j| json_verdicts(&j)) {
        return (v.len() == 1).then(|| v[0]);
    }
    reply.lines().find_map(line_verdict)
}

/// Exactly `n` verdicts from a judge's reply, else `None`. Read from the first JSON value in the
/// reply (`{"statements": [{.., "verdict": 1}]}`, `{"classifications": [{.., "attributed": 0}]}`,
/// `[1, 0]`, `{"verdict": "yes"}`), else from the lines that start with a verdict (`yes`/`no`,
/// `1`/`0`, `true`/`false`, after an optional list marker or label: `2. No`,
/// `**Verdict:** 1`, `Statement 3: yes`).
pub fn parse_verdicts(reply: &str, n: usize) -> Option<Vec<bool>> {
    let verdicts = match first_json(reply) {
        Some(json) => json_verdicts(&json)?,
        None => reply.lines().filter_map(line_verdict).collect(),
    };
    (verdicts.len() == n).then_some(verdicts)
}

/// The first JSON value in `text` (replies wrap JSON in prose and code fences): a leading
/// object or array, else the first object that parses. An array in mid-prose is not taken, so
/// a citation like `see [1]` is not read as a verdict.
fn first_json(text: &str) -> Option<Value> {
    let body = text.trim_start().trim_start_matches("```json").trim_start_matches("```").trim_start();
    let lead = body.starts_with(['{', '[']).then_some(text.len() - body.len());
    let objects = text.match_indices('{').map(|(i, _)| i);
    lead.into_iter().chain(objects).find_map(|i| serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>().next()?.ok())
}

fn json_verdicts(json: &Value) -> Option<Vec<bool>> {
    match json {
        Value::Array(items) => items.iter().map(json_verdict).collect(),
        Value::Object(o) => match VERDICT_KEYS.iter().find_map(|k| o.get(*k)) {
            Some(v) => Some(vec![verdict_value(v)?]),
            None => o.values().find_map(Value::as_array)?.iter().map(json_verdict).collect(),
        },
        _ => None,
    }
}

fn json_verdict(item: &Value) -> Option<bool> {
    match item {
        Value::Object(o) => verdict_value(VERDICT_KEYS.iter().find_map(|k| o.get(*k))?),
        v => verdict_value(v),
    }
}

fn verdict_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64()? {
            1.0 => Some(true),
            0.0 => Some(false),
            _ => None,
        },
        Value::String(s) => verdict_word(s),
        _ => None,
    }
}

/// `yes`/`no`, `1`/`0`, `true`/`false` as the first word of `s`, any case.
fn verdict_word(s: &str) -> Option<bool> {
    let word: String = s.trim_start().chars().take_while(|c| c.is_alphanumeric()).collect();
    match word.to_lowercase().as_str() {
        "yes" | "1" | "true" => Some(true),
        "no" | "0" | "false" => Some(false),
        _ => None,
    }
}

fn line_verdict(line: &str) -> Option<bool> {
    let s = strip_marker(line);
    match LINE_LABELS.iter().find(|l| s.get(..l.len()).is_some_and(|p| p.eq_ignore_ascii_case(l))) {
        Some(label) => verdict_word(strip_marker(&s[label.len()..])),
        None => verdict_word(s),
    }
}

/// `s` without leading punctuation (`-`, `*`, `#`, `:`, quotes) and list number (`3. `, `2) `,
/// `1: `); a bare number is kept, as it may be the verdict itself, and so is `3.5 million`.
fn strip_marker(s: &str) -> &str {
    let junk = |c: char| c.is_whitespace() || matches!(c, '-' | '*' | '•' | '#' | '>' | ':' | '=' | '"' | '\'' | '`');
    let s = s.trim_start_matches(junk);
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    match s[digits..].strip_prefix(['.', ')', ':']) {
        Some(rest) if digits > 0 && rest.starts_with(char::is_whitespace) && !rest.trim_start_matches(junk).is_empty() => {
            rest.trim_start_matches(junk)
        }
        _ => s,
    }
}

/// Statements from the judge: the strings of the first JSON value (`{"statements": [..]}`, a
/// list, or Ragas 0.1's `[{"simpler_statements": [..]}]`), else the reply's lines without list
/// markers (lines ending in `:` are taken for headings). `None` when there are none.
pub fn parse_statements(reply: &str) -> Option<Vec<String>> {
    let statements: Vec<String> = match first_json(reply) {
        Some(json) => json_strings(&json),
        None => reply
            .lines()
            .map(|l| strip_marker(l).trim_end())
            .filter(|l| !l.is_empty() && !l.ends_with(':') && !l.starts_with("```"))
            .map(str::to_string)
            .collect(),
    };
    (!statements.is_empty()).then_some(statements)
}

fn json_strings(json: &Value) -> Vec<String> {
    match json {
        Value::String(s) if !s.trim().is_empty() => vec![s.trim().to_string()],
        Value::Array(items) => items.iter().flat_map(json_strings).collect(),
        Value::Object(o) => ["statements", "simpler_statements", "statement"]
            .iter()
            .find_map(|k| o.get(*k))
            .or_else(|| o.values().find(|v| v.is_array()))
            .map(json_strings)
            .unwrap_or_default(),
        _ => vec![],
    }
}

/// A question generated from an answer and its noncommittal flag: JSON
/// `{"question": .., "noncommittal": 0}`, else the first non-empty line (a `Question:` label
/// dropped, noncommittal taken as 0).
pub fn parse_question(reply: &str) -> Option<(String, bool)> {
    if let Some(Value::Object(o)) = first_json(reply) {
        let question = o.get("question")?.as_str()?.trim();
        let noncommittal = o.get("noncommittal").and_then(verdict_value).unwrap_or(false);
        return (!question.is_empty()).then(|| (question.to_string(), noncommittal));
    }
    let line = reply.lines().map(strip_marker).find(|l| !l.trim().is_empty())?;
    let question = line.strip_prefix("Question").map_or(line, |rest| rest.trim_start_matches([':', ' '])).trim();
    (!question.is_empty()).then(|| (question.to_string(), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        let ranked = vec![vec!["a".to_string(), "b".into(), "c".into()], vec!["x".to_string(), "y".into(), "z".into()]];
        let relevant = vec![HashSet::from(["b".to_string()]), HashSet::from(["q".to_string()])];
        let m = retrieval_metrics(&ranked, &relevant, 2);
        assert_eq!(m.hit_rate, 0.5);
        assert_eq!(m.mrr, 0.25);
        assert!((m.ndcg - 0.5 / 3f64.log2()).abs() < 1e-12);
    }
}
