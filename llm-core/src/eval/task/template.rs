//! lm-eval's prompt templates: Jinja2 rendered with `StrictUndefined`, trailing newlines kept
//! and a `regex_replace` filter (`lm_eval.utils.apply_template`), values printed as Python's
//! `str()` prints them, and `ast.literal_eval` for the lists templates build.

use minijinja::value::ValueKind;
use minijinja::{Environment, Error as JinjaError, ErrorKind, UndefinedBehavior, Value};
use serde_json::Value as Json;

/// A Jinja environment configured as lm-eval's.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_unknown_method_callback(python_methods);
    env.add_filter("regex_replace", regex_replace);
    // `{{ x }}` prints as Python's str(x) (True, None, ['a', 'b']), since lm-eval parses the
    // rendered text back with ast.literal_eval.
    env.set_formatter(|out, _state, value| {
        out.write_str(&py_str(value)).map_err(|e| JinjaError::new(ErrorKind::WriteFailure, e.to_string()))
    });
    env
}

/// Python's methods on values: `list.index(x)` / `str.index(sub)` (lm-eval's templates use
/// them for gold indices, e.g. BIG-bench's `multiple_choice_targets.index(targets[0])`; a
/// missing item is Python's ValueError, an error here), then minijinja-contrib's `pycompat`
/// (`str.strip`, `dict.items`...).
fn python_methods(state: &minijinja::State, value: &Value, method: &str, args: &[Value]) -> Result<Value, JinjaError> {
    if method == "index" && args.len() == 1 {
        let not_found = || JinjaError::new(ErrorKind::InvalidOperation, format!("{}.index({}): not found", py_str(value), py_str(&args[0])));
        if let Some(s) = value.as_str() {
            let sub = args[0].as_str().ok_or_else(not_found)?;
            // Python counts characters, not bytes.
            return s.find(sub).map(|at| Value::from(s[..at].chars().count())).ok_or_else(not_found);
        }
        if value.kind() == ValueKind::Seq {
            let mut items = value.try_iter()?;
            return items.position(|item| item == args[0]).map(Value::from).ok_or_else(not_found);
        }
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

/// `re.sub(pattern, repl, string, count)`; Python's `\1` group references become `${1}`.
fn regex_replace(string: String, pattern: String, repl: String, count: Option<usize>) -> Result<String, JinjaError> {
    let re = regex::Regex::new(&pattern).map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let repl = python_replacement(&repl);
    Ok(re.replacen(&string, count.unwrap_or(0), repl.as_str()).into_owned())
}

fn python_replacement(repl: &str) -> String {
    let mut out = String::new();
    let mut chars = repl.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut n = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    n.push(*d);
                    chars.next();
                }
                out.push_str(&format!("${{{n}}}"));
            }
            '\\' if chars.peek() == Some(&'n') => {
                chars.next();
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Python's `str(value)`: strings as they are, everything else as `repr`.
pub fn py_str(value: &Value) -> String {
    match value.as_str() {
        Some(s) if value.kind() == ValueKind::String => s.to_string(),
        _ => py_repr(value),
    }
}

/// Python's `repr(value)` for the values a JSON document holds.
pub fn py_repr(value: &Value) -> String {
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => "None".into(),
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.into(),
        ValueKind::String => py_quote(value.as_str().unwrap_or_default()),
        ValueKind::Number => match (value.as_i64(), f64::try_from(value.clone())) {
            (Some(i), _) if !value.to_string().contains(['.', 'e', 'E']) => i.to_string(),
            (_, Ok(f)) => py_float(f),
            _ => value.to_string(),
        },
        ValueKind::Seq => {
            let items: Vec<String> = value.try_iter().map(|it| it.map(|v| py_repr(&v)).collect()).unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = value
                .try_iter()
                .map(|it| it.map(|k| format!("{}: {}", py_repr(&k), py_repr(&value.get_item(&k).unwrap_or_default()))).collect())
                .unwrap_or_default();
            format!("{{{}}}", items.join(", "))
        }
        _ => value.to_string(),
    }
}

/// Python's float repr: the shortest round-trip digits, `1.0` for integers, exponent form
/// below 1e-4 and from 1e16.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{f:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        return format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Python's repr of a string: single quotes unless the text holds `'` and no `"`.
pub fn py_quote(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A Python literal as `ast.literal_eval` reads it (the subset templates produce).
#[derive(Debug, Clone, PartialEq)]
pub enum PyLiteral {
    /// `'text'` or `"text"`.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// `True` / `False`.
    Bool(bool),
    /// `None`.
    None,
    /// `[...]` or `(...)`.
    List(Vec<PyLiteral>),
}

impl PyLiteral {
    /// Python's `str()` of the literal.
    pub fn py_str(&self) -> String {
        match self {
            PyLiteral::Str(s) => s.clone(),
            other => other.repr(),
        }
    }

    fn repr(&self) -> String {
        match self {
            PyLiteral::Str(s) => py_quote(s),
            PyLiteral::Int(i) => i.to_string(),
            PyLiteral::Float(f) => py_float(*f),
            PyLiteral::Bool(b) => if *b { "True" } else { "False" }.into(),
            PyLiteral::None => "None".into(),
            PyLiteral::List(items) => format!("[{}]", items.iter().map(Self::repr).collect::<Vec<_>>().join(", ")),
        }
    }

    /// The literal as JSON (a list of choices, an index, a text).
    pub fn to_json(&self) -> Json {
        match self {
            PyLiteral::Str(s) => Json::from(s.as_str()),
            PyLiteral::Int(i) => Json::from(*i),
            PyLiteral::Float(f) => Json::from(*f),
            PyLiteral::Bool(b) => Json::from(*b),
            PyLiteral::None => Json::Null,
            PyLiteral::List(items) => Json::Array(items.iter().map(Self::to_json).collect()),
        }
    }
}

/// `ast.literal_eval(text)` for strings, numbers, booleans, None and lists/tuples of them.
pub fn literal_eval(text: &str) -> std::result::Result<PyLiteral, String> {
    let mut p = Parser { s: text.trim().as_bytes(), text: text.trim(), at: 0 };
    let v = p.value()?;
    p.ws();
    if p.at != p.s.len() {
        return Err(format!("unexpected `{}` after a literal", &p.text[p.at..]));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn value(&mut self) -> std::result::Result<PyLiteral, String> {
        self.ws();
        match self.s.get(self.at) {
            Some(b'[') => self.list(b']'),
            Some(b'(') => self.list(b')'),
            Some(b'\'') | Some(b'"') => self.string(),
            Some(_) => self.word(),
            None => Err("empty literal".into()),
        }
    }

    fn list(&mut self, close: u8) -> std::result::Result<PyLiteral, String> {
        self.at += 1;
        let mut items = vec![];
        loop {
            self.ws();
            if self.s.get(self.at) == Some(&close) {
                self.at += 1;
                return Ok(PyLiteral::List(items));
            }
            items.push(self.value()?);
            self.ws();
            match self.s.get(self.at) {
                Some(b',') => self.at += 1,
                Some(c) if *c == close => {}
                _ => return Err(format!("expected `,` or `{}` in a list", close as char)),
            }
        }
    }

    fn string(&mut self) -> std::result::Result<PyLiteral, String> {
        let quote = self.text[self.at..].chars().next().unwrap_or('\'');
        self.at += 1;
        let mut out = String::new();
        let mut chars = self.text[self.at..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                c if c == quote => {
                    self.at += i + 1;
                    return Ok(PyLiteral::Str(out));
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, '0')) => out.push('\0'),
                    Some((_, 'x')) => {
                        let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                        out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).ok_or("bad \\x escape")?);
                    }
                    Some((_, 'u')) => {
                        let hex: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                        out.push(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).ok_or("bad \\u escape")?);
                    }
                    Some((_, c @ ('\\' | '\'' | '"'))) => out.push(c),
                    Some((_, c)) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }

    fn word(&mut self) -> std::result::Result<PyLiteral, String> {
        let start = self.at;
        while self.at < self.s.len() && !matches!(self.s[self.at], b',' | b']' | b')') && !self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
        let w = &self.text[start..self.at];
        match w {
            "True" => Ok(PyLiteral::Bool(true)),
            "False" => Ok(PyLiteral::Bool(false)),
            "None" => Ok(PyLiteral::None),
            _ => w
                .replace('_', "")
                .parse::<i64>()
                .map(PyLiteral::Int)
                .or_else(|_| w.parse::<f64>().map(PyLiteral::Float))
                .map_err(|_| format!("`{w}` is not a Python literal")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_python_prints() {
        let env = environment();
        let doc = serde_json::json!({"a": "x", "n": 3, "f": 0.5, "b": true, "l": ["it's", "b"], "z": null});
        let render = |t: &str| env.render_str(t, Value::from_serialize(&doc)).unwrap();
        assert_eq!(render("{{a}} {{n}} {{f}} {{b}} {{z}}"), "x 3 0.5 True None");
        assert_eq!(render("{{l}}"), "[\"it's\", 'b']");
        assert_eq!(render("{{[a, n]}}\n"), "['x', 3]\n");
        assert_eq!(render("{{ a | regex_replace('(x)', '<\\\\1>') }}"), "<x>");
        assert!(env.render_str("{{missing}}", Value::from_serialize(&doc)).is_err());
    }

    #[test]
    fn index_finds_as_python_and_fails_when_missing() {
        let env = environment();
        let doc = serde_json::json!({"label": "C", "t": ["b"], "m": ["a", "b"], "s": "héllo"});
        let render = |t: &str| env.render_str(t, Value::from_serialize(&doc));
        assert_eq!(render("{{['A', 'B', 'C', 'D'].index(label)}}").unwrap(), "2");
        assert_eq!(render("{{m.index(t[0])}}").unwrap(), "1");
        assert_eq!(render("{{s.index('llo')}}").unwrap(), "2", "characters, not bytes");
        assert!(render("{{m.index('z')}}").is_err());
        assert_eq!(render("{{s.upper()}}").unwrap(), "HÉLLO", "pycompat still answers the rest");
    }

    #[test]
    fn literal_eval_reads_what_python_writes() {
        let v = literal_eval("['a', \"it's\", 3, -1.5, True, None, ('x',)]").unwrap();
        assert_eq!(
            v,
            PyLiteral::List(vec![
                PyLiteral::Str("a".into()),
                PyLiteral::Str("it's".into()),
                PyLiteral::Int(3),
                PyLiteral::Float(-1.5),
                PyLiteral::Bool(true),
                PyLiteral::None,
                PyLiteral::List(vec![PyLiteral::Str("x".into())]),
            ])
        );
        assert_eq!(literal_eval("'a\\nb'").unwrap(), PyLiteral::Str("a\nb".into()));
        assert!(literal_eval("[1, 2").is_err());
        assert!(literal_eval("foo bar").is_err());
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(2.0), "2.0");
        assert_eq!(py_float(1e16), "1e+16");
    }
}
