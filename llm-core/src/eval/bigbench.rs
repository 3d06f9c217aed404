//! BIG-bench's JSON tasks (`task.json`), read into the rows of the Hugging Face `bigbench`
//! datasets (`hails/bigbench`, `tasksource/bigbench`) that lm-eval's
//! `bigbench_*_multiple_choice` tasks read: `inputs` is the prompt, the choices are
//! `multiple_choice_targets`, the answer is `targets[0]`.
//!
//! The datasets were made by BIG-bench's own code, 0-shot, over every example (the `default`
//! split), and this follows it step by step:
//! 1. `JsonTask.load_and_process_json` drops repeated examples (equal as `json.dumps` writes
//!    them, so key order counts), keeping the first;
//! 2. `json_task.default_format_fn` appends the choices to the input, **sorted, then permuted by
//!    `np.random.RandomState(42)`** (a fresh generator per example, so every example with the
//!    same number of choices gets the same permutation), wraps it in
//!    `example_input_prefix`/`example_output_prefix`, and takes as target the first choice with
//!    the highest score when the example has no `target`;
//! 3. the dataset builder prepends `task_prefix`, strips every string (Python's `str.strip`) and
//!    numbers the rows; the choices keep their `target_scores` order, not the prompt's.
//!
//! Tasks split into subtasks (no `examples`, a `task.json` per subdirectory) are read one
//! subtask file at a time; the datasets put a split task's subtasks one after another, each
//! numbered from 0.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::pyrandom::Mt19937;
use crate::error::{LlmError, Result};

/// The seed `JsonTask` gives `default_format_fn` (its `random_seed` default).
const CHOICE_PERMUTATION_SEED: u32 = 42;

/// A BIG-bench JSON task, every example converted to a dataset row.
#[derive(Debug, Clone, PartialEq)]
pub struct BigBenchTask {
    /// The task's `name`.
    pub name: String,
    /// The task's `description`.
    pub description: String,
    /// One row per distinct example, in file order.
    pub docs: Vec<BigBenchDoc>,
}

/// One row of the Hugging Face `bigbench` datasets.
#[derive(Debug, Clone, PartialEq)]
pub struct BigBenchDoc {
    /// The prompt: task prefix, input prefix, input, the choices, output prefix; stripped.
    pub inputs: String,
    /// The example's `target` (one or several), or else the first highest-scoring choice.
    pub targets: Vec<String>,
    /// The choices, in `target_scores` order.
    pub multiple_choice_targets: Vec<String>,
    /// Each choice's score, as in `target_scores` (1 for correct, 0 for wrong in most tasks).
    pub multiple_choice_scores: Vec<f64>,
    /// The row's position among the task's distinct examples.
    pub idx: usize,
}

impl BigBenchDoc {
    /// The row as the dataset holds it; whole scores are written as integers, like the
    /// dataset's int32 column.
    pub fn to_json(&self) -> serde_json::Value {
        let scores: Vec<serde_json::Value> = self
            .multiple_choice_scores
            .iter()
            .map(|&s| if s.fract() == 0.0 && s.abs() < 1e15 { serde_json::json!(s as i64) } else { serde_json::json!(s) })
            .collect();
        serde_json::json!({
            "idx": self.idx,
            "inputs": self.inputs,
            "targets": self.targets,
            "multiple_choice_targets": self.multiple_choice_targets,
            "multiple_choice_scores": scores,
        })
    }
}

/// Reads a multiple-choice BIG-bench `task.json` into the dataset's rows.
///
/// Errors: [`LlmError::Io`] when the file cannot be read, [`LlmError::Json`] when it is not
/// JSON, [`LlmError::Task`] naming the field (`examples[3].target_scores`) when it lacks what a
/// multiple-choice task needs.
pub fn read_bigbench_task(path: &Path) -> Result<BigBenchTask> {
    let text = std::fs::read_to_string(path).map_err(|e| LlmError::io(path, e))?;
    let root: Json = serde_json::from_str(&text).map_err(|source| LlmError::Json { path: path.to_path_buf(), source })?;
    let bad = |field: &str, message: &str| bad_shape(path, field, message);

    let task = root.as_object().ok_or_else(|| bad("(file)", "not a JSON object"))?;
    let name = required_str(task, "name").map_err(|m| bad("name", m))?.to_owned();
    let description = required_str(task, "description").map_err(|m| bad("description", m))?.to_owned();
    let format = Format::read(task).map_err(|(field, m)| bad(field, m))?;
    let examples = match get(task, "examples") {
        Some(Json::Array(examples)) => examples,
        Some(_) => return Err(bad("examples", "not an array")),
        None => return Err(bad("examples", "missing: a task split into subtasks is read one subtask's task.json at a time")),
    };

    let mut seen = HashSet::new();
    let mut docs = Vec::new();
    for (i, example) in examples.iter().enumerate() {
        if !seen.insert(example) {
            continue;
        }
        let mut doc = format.doc(example).map_err(|(field, m)| bad(&format!("examples[{i}]{field}"), &m))?;
        doc.idx = docs.len();
        docs.push(doc);
    }
    Ok(BigBenchTask { name, description, docs })
}

/// The task-level fields that shape every prompt, with `JsonTask`'s defaults.
struct Format<'a> {
    task_prefix: &'a str,
    input_prefix: &'a str,
    output_prefix: &'a str,
    choice_prefix: &'a str,
    append_choices: bool,
}

impl<'a> Format<'a> {
    fn read(task: &'a [(String, Json)]) -> std::result::Result<Self, (&'static str, &'static str)> {
        let text = |field: &'static str, default: &'static str| match get(task, field) {
            None => Ok(default),
            Some(Json::String(s)) => Ok(s.as_str()),
            Some(_) => Err((field, "not a string")),
        };
        let append_choices = match get(task, "append_choices_to_input") {
            None => true,
            Some(Json::Bool(b)) => *b,
            Some(_) => return Err(("append_choices_to_input", "not a boolean")),
        };
        Ok(Self {
            task_prefix: text("task_prefix", "")?,
            input_prefix: text("example_input_prefix", "\nQ: ")?,
            output_prefix: text("example_output_prefix", "\nA: ")?,
            choice_prefix: text("choice_prefix", "\n  choice: ")?,
            append_choices,
        })
    }

    /// One example as a row (`idx` left 0). Errors are (field under the example, message).
    fn doc(&self, example: &Json) -> std::result::Result<BigBenchDoc, (String, String)> {
        let fail = |field: &str, message: &str| (field.to_owned(), message.to_owned());
        let example = example.as_object().ok_or_else(|| fail("", "not an object"))?;
        let input = required_str(example, "input").map_err(|m| fail(".input", m))?;
        let scored = match get(example, "target_scores") {
            Some(Json::Object(scored)) => scored,
            Some(_) => return Err(fail(".target_scores", "not an object of choice: score")),
            None => return Err(fail(".target_scores", "missing: not a multiple-choice example")),
        };
        if scored.is_empty() {
            return Err(fail(".target_scores", "no choices"));
        }
        let mut choices = Vec::with_capacity(scored.len());
        let mut scores = Vec::with_capacity(scored.len());
        for (choice, score) in scored {
            let Some(score) = (match score {
                Json::Number(n) => n.as_f64(),
                _ => None,
            }) else {
                return Err(fail(&format!(".target_scores[{choice:?}]"), "not a number"));
            };
            choices.push(choice.as_str());
            scores.push(score);
        }
        let targets = match get(example, "target") {
            Some(Json::String(t)) => vec![py_strip(t).to_owned()],
            Some(Json::Array(ts)) => ts
                .iter()
                .map(|t| match t {
                    Json::String(t) => Ok(py_strip(t).to_owned()),
                    _ => Err(fail(".target", "a list with an entry that is not a string")),
                })
                .collect::<std::result::Result<_, _>>()?,
            Some(_) => return Err(fail(".target", "neither a string nor a list of strings")),
            None => vec![py_strip(best_choice(&choices, &scores).map_err(|m| fail(".target_scores", m))?).to_owned()],
        };

        let mut text = String::from(input);
        if self.append_choices {
            let mut sorted = choices.clone();
            sorted.sort_unstable(); // str order is Python's code point order
            let permuted: Vec<&str> =
                numpy_permutation(sorted.len(), CHOICE_PERMUTATION_SEED).into_iter().map(|i| sorted[i]).collect();
            text = format!("{text}{}{}", self.choice_prefix, permuted.join(self.choice_prefix));
        }
        let inputs = format!("{}{}{text}{}", self.task_prefix, self.input_prefix, self.output_prefix);
        Ok(BigBenchDoc {
            inputs: py_strip(&inputs).to_owned(),
            targets,
            multiple_choice_targets: choices.iter().map(|c| py_strip(c).to_owned()).collect(),
            multiple_choice_scores: scores,
            idx: 0,
        })
    }
}

/// The first choice with the highest score; BIG-bench refuses an example whose scores are all
/// equal (it has no correct choice).
fn best_choice<'a>(choices: &[&'a str], scores: &[f64]) -> std::result::Result<&'a str, &'static str> {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
    if max <= min {
        return Err("every choice scores the same: no correct choice, and no `target`");
    }
    let best = scores.iter().position(|&s| s == max).expect("max is one of the scores");
    Ok(choices[best])
}

/// `np.random.RandomState(seed).permutation(n)`: NumPy's legacy shuffle, Fisher-Yates from the
/// end, each index drawn by masking 32-bit words and rejecting those past the bound.
fn numpy_permutation(n: usize, seed: u32) -> Vec<usize> {
    let mut mt = Mt19937::from_u32(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let bound = i as u64;
        // Past 2^32 NumPy draws 64-bit words; no task has that many choices.
        assert!(bound <= u64::from(u32::MAX), "more choices than NumPy draws with 32-bit words");
        let mask = u64::MAX >> bound.leading_zeros();
        let j = loop {
            let candidate = u64::from(mt.next_u32()) & mask;
            if candidate <= bound {
                break candidate as usize;
            }
        };
        order.swap(i, j);
    }
    order
}

/// Python's `str.strip()`: Unicode white space plus the four ASCII information separators
/// (U+001C..U+001F), which Python counts as space and Rust's `trim` does not.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn bad_shape(path: &Path, field: &str, message: &str) -> LlmError {
    LlmError::task(path, None, field, message)
}

fn get<'a>(object: &'a [(String, Json)], key: &str) -> Option<&'a Json> {
    object.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn required_str<'a>(object: &'a [(String, Json)], key: &str) -> std::result::Result<&'a str, &'static str> {
    match get(object, key) {
        Some(Json::String(s)) => Ok(s),
        Some(_) => Err("not a string"),
        None => Err("missing"),
    }
}

/// JSON as Python's `json.load` sees it: objects keep their key order (it decides the choice
/// order, the default target and which examples are repeats), and a repeated key keeps its
/// first position with its last value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn as_object(&self) -> Option<&[(String, Json)]> {
        match self {
            Json::Object(entries) => Some(entries),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> std::result::Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, b: bool) -> std::result::Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> std::result::Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> std::result::Result<Json, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> std::result::Result<Json, E> {
        serde_json::Number::from_f64(n).map(Json::Number).ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E>(self, s: &str) -> std::result::Result<Json, E> {
        Ok(Json::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> std::result::Result<Json, E> {
        Ok(Json::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        while let Some((key, value)) = map.next_entry::<String, Json>()? {
            match entries.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => entries.push((key, value)),
            }
        }
        Ok(Json::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_task(name: &str, json: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("llm-bigbench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("task.json");
        std::fs::write(&path, json).unwrap();
        path
    }

    /// The message of the error reading `json` as a task, which must name the file.
    fn error_of(name: &str, json: &str) -> String {
        let path = write_task(name, json);
        let err = read_bigbench_task(&path).expect_err("should be refused");
        assert!(matches!(err, LlmError::Task { .. } | LlmError::Json { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message} names the file");
        message
    }

    const HEAD: &str = r#""name": "t", "description": "d""#;

    #[test]
    fn example_without_target_scores_is_refused_by_index() {
        let json = format!(
            r#"{{{HEAD}, "examples": [{{"input": "a", "target_scores": {{"x": 1, "y": 0}}}}, {{"input": "b", "target": "c"}}]}}"#
        );
        let message = error_of("generative", &json);
        assert!(message.contains("field `examples[1].target_scores`: missing: not a multiple-choice example"), "{message}");
    }

    #[test]
    fn example_with_no_choices_is_refused() {
        let json = format!(r#"{{{HEAD}, "examples": [{{"input": "a", "target_scores": {{}}}}]}}"#);
        assert!(error_of("no-choices", &json).contains("field `examples[0].target_scores`: no choices"));
    }

    #[test]
    fn example_with_no_correct_choice_is_refused() {
        let json = format!(r#"{{{HEAD}, "examples": [{{"input": "a", "target_scores": {{"x": 0, "y": 0}}}}]}}"#);
        assert!(error_of("all-equal", &json).contains("field `examples[0].target_scores`: every choice scores the same"));
    }

    #[test]
    fn non_numeric_score_is_refused_naming_the_choice() {
        let json = format!(r#"{{{HEAD}, "examples": [{{"input": "a", "target_scores": {{"x": "1", "y": 0}}}}]}}"#);
        assert!(error_of("string-score", &json).contains(r#"field `examples[0].target_scores["x"]`: not a number"#));
    }

    #[test]
    fn malformed_json_is_a_json_error() {
        let message = error_of("malformed", r#"{"name": "t", "examples": [}"#);
        assert!(message.contains("invalid JSON"), "{message}");
    }

    #[test]
    fn task_without_examples_or_name_is_refused() {
        assert!(error_of("subtasks", &format!("{{{HEAD}}}")).contains("field `examples`: missing"));
        assert!(error_of("no-name", r#"{"description": "d", "examples": []}"#).contains("field `name`: missing"));
        let json = format!(r#"{{{HEAD}, "choice_prefix": 3, "examples": []}}"#);
        assert!(error_of("bad-prefix", &json).contains("field `choice_prefix`: not a string"));
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = read_bigbench_task(Path::new("/nonexistent/task.json")).unwrap_err();
        assert!(matches!(err, LlmError::Io { .. }), "{err:?}");
    }

    #[test]
    fn prompt_lists_sorted_choices_in_numpy_order_and_targets_keep_file_order() {
        // The emoji_movie row the Hugging Face dataset card shows: the prompt lists the choices
        // sorted, then permuted by RandomState(42) ([1, 4, 2, 0, 3] for five), with the "\n" of
        // "\nQ: " and the space of "\nA: " stripped; the choices field keeps the file's order.
        let json = format!(
            r#"{{{HEAD}, "examples": [{{"input": "What movie does this emoji describe? 👦👓⚡️",
               "target_scores": {{"harry potter": 1, "shutter island": 0, "die hard": 0,
                                  "inglourious basterds": 0, "moonlight": 0}},
               "target": "harry potter"}}]}}"#
        );
        let task = read_bigbench_task(&write_task("emoji", &json)).unwrap();
        let doc = &task.docs[0];
        assert_eq!(
            doc.inputs,
            "Q: What movie does this emoji describe? 👦👓⚡️\n  choice: harry potter\n  choice: shutter island\n  \
             choice: inglourious basterds\n  choice: die hard\n  choice: moonlight\nA:"
        );
        assert_eq!(doc.multiple_choice_targets, ["harry potter", "shutter island", "die hard", "inglourious basterds", "moonlight"]);
        assert_eq!(doc.multiple_choice_scores, [1.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(doc.targets, ["harry potter"]);
    }

    #[test]
    fn repeated_examples_are_dropped_but_reordered_keys_are_not_repeats() {
        let json = format!(
            r#"{{{HEAD}, "examples": [
                {{"input": "a", "target_scores": {{"x": 1, "y": 0}}}},
                {{"input": "a", "target_scores": {{"x": 1, "y": 0}}}},
                {{"input": "a", "target_scores": {{"y": 0, "x": 1}}}},
                {{"input": "b", "target_scores": {{"x": 0, "y": 1.0}}}}]}}"#
        );
        let task = read_bigbench_task(&write_task("repeats", &json)).unwrap();
        let idx: Vec<usize> = task.docs.iter().map(|d| d.idx).collect();
        assert_eq!(idx, [0, 1, 2]);
        assert_eq!(task.docs[1].multiple_choice_targets, ["y", "x"]);
        assert_eq!(task.docs[2].targets, ["y"]);
        assert_eq!(task.docs[2].to_json()["multiple_choice_scores"], serde_json::json!([0, 1]));
    }

    #[test]
    fn numpy_permutation_matches_numpy() {
        // python3 -c "import numpy as np; print([np.random.RandomState(42).permutation(n).tolist() for n in (1, 2, 3, 4, 5, 10, 30)])"
        // (NumPy 2.4.6; the legacy RandomState stream is frozen.)
        let want: [&[usize]; 7] = [
            &[0],
            &[1, 0],
            &[0, 1, 2],
            &[1, 3, 0, 2],
            &[1, 4, 2, 0, 3],
            &[8, 1, 5, 0, 7, 2, 9, 4, 3, 6],
            &[27, 15, 23, 17, 8, 9, 28, 24, 12, 0, 4, 16, 5, 13, 11, 22, 1, 2, 25, 3, 21, 26, 18, 29, 20, 7, 10, 14, 19, 6],
        ];
        for want in want {
            assert_eq!(numpy_permutation(want.len(), 42), want);
        }
    }

    #[test]
    fn strip_removes_what_python_counts_as_space() {
        // python3 -c "print([hex(i) for i in range(0x110000) if chr(i).isspace()])"
        let python_space = [
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002,
            0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
        ];
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            let padded = format!("{c}x{c}");
            let want = if python_space.contains(&(c as u32)) { "x" } else { padded.as_str() };
            assert_eq!(py_strip(&padded), want, "U+{:04X}", c as u32);
        }
    }
}
