//! lm-eval's `filter_list`: named pipelines that turn a generation into the answer a metric
//! scores (`remove_whitespace`, `regex`, `lowercase`...). Each pipeline is scored on its own
//! and reported under its name (the table's Filter column); a task without `filter_list` has
//! the single pipeline `none` (`take_first`).

use regex::Regex;
use serde_json::{Map, Value};

use crate::eval::metrics::pystr::is_py_space;

/// One step of a pipeline, as lm-eval's filter registry names it.
#[derive(Debug, Clone)]
pub enum FilterStep {
    /// `take_first`: the first of the repeats (greedy decoding has one: a no-op wherever it
    /// stands; lm-eval's tasks put it last, since a filter after it there would see the
    /// answer's characters instead of the answers).
    TakeFirst,
    /// `remove_whitespace`: Python's `str.strip()`.
    RemoveWhitespace,
    /// `lowercase`: `str.lower()`.
    Lowercase,
    /// `uppercase`: `str.upper()`.
    Uppercase,
    /// `regex`: `re.findall(regex_pattern, text)[group_select]` (with several groups, the
    /// first non-empty one), stripped; `fallback` when nothing matches.
    Regex {
        /// The compiled `regex_pattern`.
        pattern: Regex,
        /// Which match to keep; negative counts from the end as in Python.
        group_select: i64,
        /// The answer when nothing matches.
        fallback: String,
    },
}

/// A named `filter_list` entry.
#[derive(Debug, Clone)]
pub struct FilterPipeline {
    /// `name`: the results' filter key (`exact_match,<name>`).
    pub name: String,
    /// `filter`: the steps, in order.
    pub steps: Vec<FilterStep>,
}

/// lm-eval's default `regex_pattern` (GSM8K's `#### answer`).
const DEFAULT_REGEX: &str = r"#### (\-?[0-9\.\,]+)";

impl FilterPipeline {
    /// The pipeline lm-eval uses without `filter_list`: `none` = `take_first`.
    pub fn none() -> Self {
        Self { name: "none".into(), steps: vec![FilterStep::TakeFirst] }
    }

    /// The generation as this pipeline's metrics see it.
    pub fn apply(&self, text: &str) -> String {
        self.steps.iter().fold(text.to_string(), |s, step| step.apply(&s))
    }

    /// Parses `filter_list` (`[{name, filter: [{function, ...kwargs}]}]`). Errors are
    /// `(field, message)` with the field's path (`filter_list[0].filter[1].function`).
    pub fn parse_list(v: &Value) -> std::result::Result<Vec<Self>, (String, String)> {
        let items = v.as_array().ok_or(("filter_list".to_string(), "expected a list of {name, filter}".to_string()))?;
        if items.is_empty() {
            return Err(("filter_list".into(), "empty: name at least one filter pipeline".into()));
        }
        let mut out: Vec<Self> = vec![];
        for (i, item) in items.iter().enumerate() {
            let pipeline = Self::parse(item, &format!("filter_list[{i}]"))?;
            // Results are keyed by the name: two pipelines of one name would share a score.
            if out.iter().any(|p| p.name == pipeline.name) {
                return Err((format!("filter_list[{i}].name"), format!("`{}` names an earlier pipeline too", pipeline.name)));
            }
            out.push(pipeline);
        }
        Ok(out)
    }

    fn parse(v: &Value, at: &str) -> std::result::Result<Self, (String, String)> {
        let m = v.as_object().ok_or((at.to_string(), "expected a mapping with `name` and `filter`".to_string()))?;
        let name = m.get("name").and_then(Value::as_str).ok_or((format!("{at}.name"), "missing or not a string".to_string()))?;
        let steps = m.get("filter").and_then(Value::as_array).ok_or((format!("{at}.filter"), "missing or not a list of steps".to_string()))?;
        let steps = steps.iter().enumerate().map(|(k, s)| FilterStep::parse(s, &format!("{at}.filter[{k}]"))).collect::<Result<_, _>>()?;
        Ok(Self { name: name.to_string(), steps })
    }
}

impl FilterStep {
    fn apply(&self, s: &str) -> String {
        match self {
            Self::TakeFirst => s.to_string(),
            Self::RemoveWhitespace => s.trim_matches(is_py_space).to_string(),
            Self::Lowercase => s.to_lowercase(),
            Self::Uppercase => s.to_uppercase(),
            Self::Regex { pattern, group_select, fallback } => find_all(pattern, s, *group_select).unwrap_or_else(|| fallback.clone()),
        }
    }

    fn parse(v: &Value, at: &str) -> std::result::Result<Self, (String, String)> {
        let m = v.as_object().ok_or((at.to_string(), "expected a mapping with `function`".to_string()))?;
        let function = m.get("function").and_then(Value::as_str).ok_or((format!("{at}.function"), "missing or not a name".to_string()))?;
        let allowed: &[&str] = if function == "regex" { &["function", "regex_pattern", "group_select", "fallback"] } else { &["function"] };
        if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err((format!("{at}.{k}"), format!("`{k}` is not an option of the `{function}` filter")));
        }
        Ok(match function {
            "take_first" => Self::TakeFirst,
            "remove_whitespace" => Self::RemoveWhitespace,
            "lowercase" => Self::Lowercase,
            "uppercase" => Self::Uppercase,
            "regex" => Self::parse_regex(m, at)?,
            other => {
                return Err((
                    format!("{at}.function"),
                    format!("`{other}` is not supported; supported: take_first, remove_whitespace, lowercase, uppercase, regex"),
                ))
            }
        })
    }

    fn parse_regex(m: &Map<String, Value>, at: &str) -> std::result::Result<Self, (String, String)> {
        let source = match m.get("regex_pattern") {
            None => DEFAULT_REGEX,
            Some(v) => v.as_str().ok_or((format!("{at}.regex_pattern"), "expected a string".to_string()))?,
        };
        let pattern = Regex::new(source).map_err(|e| (format!("{at}.regex_pattern"), format!("`{source}`: {e}")))?;
        let group_select = match m.get("group_select") {
            None => 0,
            Some(v) => v.as_i64().ok_or((format!("{at}.group_select"), "expected an integer".to_string()))?,
        };
        let fallback = match m.get("fallback") {
            None => "[invalid]".to_string(),
            Some(v) => v.as_str().ok_or((format!("{at}.fallback"), "expected a string".to_string()))?.to_string(),
        };
        Ok(Self::Regex { pattern, group_select, fallback })
    }
}

/// `re.findall(pattern, s)[select]` reduced as lm-eval's `RegexFilter` does: the whole match
/// without groups, the group with one, the first non-empty group with several; stripped.
/// `None` when nothing matches (or `select` is out of range, where Python would raise).
fn find_all(pattern: &Regex, s: &str, select: i64) -> Option<String> {
    let found: Vec<Vec<String>> = pattern
        .captures_iter(s)
        .map(|c| match c.len() {
            1 => vec![c[0].to_string()],
            n => (1..n).map(|g| c.get(g).map_or(String::new(), |m| m.as_str().to_string())).collect(),
        })
        .collect();
    if found.is_empty() {
        return None;
    }
    let index = if select < 0 { found.len() as i64 + select } else { select };
    let groups = found.get(usize::try_from(index).ok()?)?;
    let text = if groups.len() == 1 { groups[0].clone() } else { groups.iter().find(|g| !g.is_empty())?.clone() };
    Some(text.trim_matches(is_py_space).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pipeline(v: Value) -> FilterPipeline {
        FilterPipeline::parse_list(&json!([{ "name": "p", "filter": v }])).unwrap().remove(0)
    }

    #[test]
    fn remove_whitespace_strips_both_ends_as_python() {
        let p = pipeline(json!([{ "function": "remove_whitespace" }, { "function": "take_first" }]));
        assert_eq!(p.apply(" Paris\u{1f}\n"), "Paris");
    }

    #[test]
    fn regex_takes_groups_as_findall_does() {
        let p = pipeline(json!([{ "function": "regex" }]));
        assert_eq!(p.apply("so #### 1,234 and #### 7"), "1,234");
        assert_eq!(p.apply("no answer"), "[invalid]");
        let last = pipeline(json!([{ "function": "regex", "regex_pattern": "(\\d+)|x(\\w)", "group_select": -1, "fallback": "?" }]));
        assert_eq!(last.apply("12 then xy"), "y", "several groups: the first non-empty one");
        let whole = pipeline(json!([{ "function": "regex", "regex_pattern": "[A-D]" }]));
        assert_eq!(whole.apply("answer: B or C"), "B");
    }

    #[test]
    fn unknown_functions_and_options_name_their_field() {
        let err = FilterPipeline::parse_list(&json!([{ "name": "x", "filter": [{ "function": "majority_vote" }] }])).unwrap_err();
        assert_eq!(err.0, "filter_list[0].filter[0].function");
        let err = FilterPipeline::parse_list(&json!([{ "name": "x", "filter": [{ "function": "lowercase", "k": 2 }] }])).unwrap_err();
        assert_eq!(err.0, "filter_list[0].filter[0].k");
        let err = FilterPipeline::parse_list(&json!([{ "filter": [] }])).unwrap_err();
        assert_eq!(err.0, "filter_list[0].name");
        let twice = json!([{ "name": "x", "filter": [] }, { "name": "x", "filter": [{ "function": "lowercase" }] }]);
        assert_eq!(FilterPipeline::parse_list(&twice).unwrap_err().0, "filter_list[1].name");
    }
}
