//! Reading a judge's replies leniently: verdicts (JSON as Ragas asks for it, or `yes`/`no`,
//! `1`/`0`, `Verdict: ...` lines), statements and generated questions; and sentence splitting.

use serde_json::Value;

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
