//! The part of jq's path language that LangChain's `JSONLoader` schemas use: `.`, `.name`,
//! `."any name"`, `.["any name"]`, `[n]` (negative from the end) and `[]` (every element of an
//! array or value of an object), chained: `.messages[].content`, `.data.items[0]`.

use serde_json::Value;
use std::fmt;

/// A parsed jq-style path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(i64),
    Iterate,
}

/// Where a path failed in a document (`.items[2].text`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    /// The concrete path reached, with array indices filled in.
    pub at: String,
    /// What was wrong there.
    pub message: String,
}

impl JsonPath {
    /// Parses `.items[].text` and the like; the error says what is wrong with the text.
    pub fn parse(path: &str) -> Result<Self, String> {
        let mut rest = path.trim().strip_prefix('.').ok_or("a path starts with `.`")?;
        let mut steps = vec![];
        let mut after_dot = true;
        while !rest.is_empty() {
            let (step, tail) = if let Some(r) = rest.strip_prefix('[') {
                bracket(r)?
            } else if after_dot {
                field(rest)?
            } else {
                rest = rest.strip_prefix('.').ok_or_else(|| format!("unexpected `{rest}`"))?;
                if rest.is_empty() {
                    return Err("a path cannot end with `.`".into());
                }
                after_dot = true;
                continue;
            };
            steps.push(step);
            rest = tail;
            after_dot = false;
        }
        Ok(Self { steps })
    }

    /// The values the path selects in `root`, each with its concrete path (`.items[1].text`),
    /// in document order. As in jq, a missing field or index gives `null`; indexing or
    /// iterating a value of the wrong type is an error.
    pub fn select<'v>(&self, root: &'v Value) -> Result<Vec<(String, &'v Value)>, PathError> {
        let mut frontier = vec![(String::new(), root)];
        for step in &self.steps {
            let mut next = Vec::with_capacity(frontier.len());
            for (at, value) in frontier {
                apply(step, at, value, &mut next)?;
            }
            frontier = next;
        }
        Ok(frontier.into_iter().map(|(at, v)| (if at.is_empty() { ".".into() } else { at }, v)).collect())
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return f.write_str(".");
        }
        self.steps.iter().try_for_each(|s| f.write_str(&s.render()))
    }
}

impl Step {
    fn render(&self) -> String {
        match self {
            Self::Field(name) if is_identifier(name) => format!(".{name}"),
            Self::Field(name) => format!(".{}", Value::from(name.as_str())),
            Self::Index(i) => format!("[{i}]"),
            Self::Iterate => "[]".into(),
        }
    }
}

fn apply<'v>(step: &Step, at: String, value: &'v Value, out: &mut Vec<(String, &'v Value)>) -> Result<(), PathError> {
    const NULL: &Value = &Value::Null;
    let fail = |message: String| PathError { at: if at.is_empty() { ".".into() } else { at.clone() }, message };
    match (step, value) {
        (Step::Field(name), Value::Object(map)) => out.push((at.clone() + &step.render(), map.get(name).unwrap_or(NULL))),
        (Step::Field(_) | Step::Index(_), Value::Null) => out.push((at.clone() + &step.render(), NULL)),
        (Step::Index(i), Value::Array(items)) => {
            let index = if *i < 0 { items.len() as i64 + i } else { *i };
            let item = usize::try_from(index).ok().and_then(|k| items.get(k)).unwrap_or(NULL);
            out.push((format!("{at}[{index}]"), item));
        }
        (Step::Iterate, Value::Array(items)) => {
            out.extend(items.iter().enumerate().map(|(k, v)| (format!("{at}[{k}]"), v)));
        }
        (Step::Iterate, Value::Object(map)) => {
            out.extend(map.iter().map(|(k, v)| (at.clone() + &Step::Field(k.clone()).render(), v)));
        }
        (Step::Iterate, v) => return Err(fail(format!("cannot iterate over {}", type_name(v)))),
        (step, v) => return Err(fail(format!("cannot index {} with `{}`", type_name(v), step.render()))),
    }
    Ok(())
}

/// jq's name for a value's type.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `name...` or `"quoted name"...` after a dot.
fn field(rest: &str) -> Result<(Step, &str), String> {
    if rest.starts_with('"') {
        let (name, tail) = quoted(rest)?;
        return Ok((Step::Field(name), tail));
    }
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    let name = &rest[..end];
    if !is_identifier(name) {
        return Err(format!("expected a field name at `{rest}` (quote other names: .\"my key\")"));
    }
    Ok((Step::Field(name.to_string()), &rest[end..]))
}

/// `]`, `"name"]` or `n]` after an opening bracket.
fn bracket(rest: &str) -> Result<(Step, &str), String> {
    if let Some(tail) = rest.strip_prefix(']') {
        return Ok((Step::Iterate, tail));
    }
    let (step, tail) = if rest.starts_with('"') {
        let (name, tail) = quoted(rest)?;
        (Step::Field(name), tail)
    } else {
        let end = rest.find(']').ok_or("`[` without `]`")?;
        let index = rest[..end].trim().parse().map_err(|_| format!("`[{}]` is not an index", &rest[..end]))?;
        (Step::Index(index), &rest[end..])
    };
    let tail = tail.strip_prefix(']').ok_or("`[` without `]`")?;
    Ok((step, tail))
}

/// A JSON string at the start of `rest`, and what follows it.
fn quoted(rest: &str) -> Result<(String, &str), String> {
    let mut strings = serde_json::Deserializer::from_str(rest).into_iter::<String>();
    match strings.next() {
        Some(Ok(name)) => Ok((name, &rest[strings.byte_offset()..])),
        _ => Err(format!("bad quoted name at `{rest}`")),
    }
}
