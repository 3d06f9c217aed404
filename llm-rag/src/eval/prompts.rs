//! Ragas' prompts: the task, the JSON shape of the output and one worked example each.

use serde_json::{json, Value};

/// A Ragas prompt: the task, the JSON shape of the output, one worked example.
pub(super) struct PromptSpec {
    instruction: &'static str,
    shape: &'static str,
    example_input: &'static str,
    example_output: &'static str,
    /// The shape as a JSON Schema for `n` items (statements to classify), which a local judge
    /// is constrained to: its reply always parses.
    pub(super) schema: fn(usize) -> Value,
}

/// Longest reason or statement a constrained judge may write, in characters: with at most
/// [`STATEMENTS_MAX`] items a judgement stays under ~1,000 tokens, which the judge's
/// `max_new_tokens` must allow (a reply cut short does not parse).
const TEXT_MAX: usize = 200;

/// Statements a constrained judge may split an answer into.
const STATEMENTS_MAX: usize = 8;

/// A non-empty string (the parsers skip empty ones, so an empty one would read as malformed).
fn text() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": TEXT_MAX})
}

fn object(props: Value) -> Value {
    let required: Vec<&String> = props.as_object().map(|p| p.keys().collect()).unwrap_or_default();
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn bit() -> Value {
    json!({"enum": [0, 1]})
}

fn exactly(n: usize, item: Value) -> Value {
    json!({"type": "array", "items": item, "minItems": n, "maxItems": n})
}

/// The prompt in Ragas' layout, with `input` as JSON.
pub(super) fn prompt(spec: &PromptSpec, input: Value) -> String {
    format!(
        "{}\nPlease return the output in a JSON format that complies with the following schema: {}\n\
Do not use single quotes in your response but double quotes, properly escaped with a backslash.\n\n\
--------EXAMPLES-----------\nExample 1\nInput: {}\nOutput: {}\n-----------------------------\n\n\
Now perform the same with the following input\ninput: {input}\nOutput: ",
        spec.instruction, spec.shape, spec.example_input, spec.example_output
    )
}

pub(super) const PRECISION: PromptSpec = PromptSpec {
    instruction: "Given question, answer and context verify if the context was useful in arriving at the given answer. \
Give verdict as \"1\" if useful and \"0\" if not with json output.",
    shape: r#"{"reason": string, "verdict": 0 or 1}"#,
    example_input: r#"{"question": "What is the tallest mountain in the world?", "context": "The Andes is the longest continental mountain range in the world, located in South America.", "answer": "Mount Everest."}"#,
    example_output: r#"{"reason": "The context discusses the Andes, which does not include Mount Everest or relate to the world's tallest mountain.", "verdict": 0}"#,
    schema: |_| object(json!({"reason": text(), "verdict": bit()})),
};

pub(super) const RECALL: PromptSpec = PromptSpec {
    instruction: "Given a context and the statements of an answer, analyze each statement and classify if the statement can be \
attributed to the given context or not. Use only binary classification: 1 if the statement can be attributed to the context, \
0 if it cannot. Classify every statement, in the order given. Provide detailed reasoning for each classification.",
    shape: r#"{"classifications": [{"statement": string, "reason": string, "attributed": 0 or 1}]}"#,
    example_input: r#"{"question": "What can you tell me about Albert Einstein?", "context": "Albert Einstein (14 March 1879 - 18 April 1955) was a German-born theoretical physicist. He received the 1921 Nobel Prize in Physics.", "statements": ["Albert Einstein, born on 14 March 1879, was a German-born theoretical physicist.", "He published 4 papers in 1905."]}"#,
    example_output: r#"{"classifications": [{"statement": "Albert Einstein, born on 14 March 1879, was a German-born theoretical physicist.", "reason": "The date of birth and the profession are stated in the context.", "attributed": 1}, {"statement": "He published 4 papers in 1905.", "reason": "The context does not mention papers.", "attributed": 0}]}"#,
    schema: |n| object(json!({"classifications": exactly(n, object(json!({"statement": text(), "reason": text(), "attributed": bit()})))})),
};

pub(super) const STATEMENTS: PromptSpec = PromptSpec {
    instruction: "Given a question and an answer, analyze the complexity of each sentence in the answer. Break down each \
sentence into one or more fully understandable statements. Ensure that no pronouns are used in any statement.",
    shape: r#"{"statements": [string]}"#,
    example_input: r#"{"question": "Who was Albert Einstein and what is he best known for?", "answer": "He was a German-born theoretical physicist. He was best known for developing the theory of relativity."}"#,
    example_output: r#"{"statements": ["Albert Einstein was a German-born theoretical physicist.", "Albert Einstein was best known for developing the theory of relativity."]}"#,
    schema: |_| object(json!({"statements": {"type": "array", "items": text(), "minItems": 1, "maxItems": STATEMENTS_MAX}})),
};

pub(super) const NLI: PromptSpec = PromptSpec {
    instruction: "Your task is to judge the faithfulness of a series of statements based on a given context. For each statement \
you must return verdict as 1 if the statement can be directly inferred based on the context or 0 if the statement can not be \
directly inferred based on the context.",
    shape: r#"{"statements": [{"statement": string, "reason": string, "verdict": 0 or 1}]}"#,
    example_input: r#"{"context": "John is a student at XYZ University. He is pursuing a degree in Computer Science.", "statements": ["John is majoring in Biology.", "John is a student."]}"#,
    example_output: r#"{"statements": [{"statement": "John is majoring in Biology.", "reason": "John's major is Computer Science.", "verdict": 0}, {"statement": "John is a student.", "reason": "The context says John is a student at XYZ University.", "verdict": 1}]}"#,
    schema: |n| object(json!({"statements": exactly(n, object(json!({"statement": text(), "reason": text(), "verdict": bit()})))})),
};

pub(super) const RELEVANCY: PromptSpec = PromptSpec {
    instruction: "Generate a question for the given answer and identify if the answer is noncommittal. Give noncommittal as 1 if \
the answer is noncommittal (evasive, vague, or ambiguous) and 0 if the answer is substantive. Examples of noncommittal answers: \
\"I don't know\", \"I'm not sure\", \"It depends\".",
    shape: r#"{"question": string, "noncommittal": 0 or 1}"#,
    example_input: r#"{"response": "Albert Einstein was born in Germany."}"#,
    example_output: r#"{"question": "Where was Albert Einstein born?", "noncommittal": 0}"#,
    schema: |_| object(json!({"question": text(), "noncommittal": bit()})),
};
