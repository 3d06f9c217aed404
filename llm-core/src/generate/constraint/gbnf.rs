//! llama.cpp's GBNF (`grammars/README.md`) read and written out as llguidance's Lark dialect.
//!
//! GBNF: `name ::= alternatives`, one rule per line (a rule continues after `::=`, after `|`
//! and inside parentheses), `"literals"` with `\n \t \r \\ \" \xHH \uHHHH \UHHHHHHHH`, character
//! classes `[a-z]` / `[^...]`, `.` for any character, grouping, `* + ? {m} {m,} {m,n}`, `#`
//! comments; `root` is the start. Every rule becomes a Lark rule (`r_<name>`, lower case, as
//! an upper-case Lark name would be a terminal), literals become JSON-escaped strings and
//! classes regular expressions with every non-alphanumeric character written `\x{..}`.

use std::collections::{BTreeMap, HashMap};

use crate::error::{LlmError, Result};

/// Converts a GBNF grammar to Lark; errors name the line and column.
pub fn gbnf_to_lark(source: &str) -> Result<String> {
    let mut p = Parser { chars: source.chars().collect(), pos: 0 };
    let rules = p.grammar()?;
    let names = lark_names(rules.keys());
    for (name, body) in &rules {
        for used in body.rule_refs() {
            if !rules.contains_key(used) {
                return Err(gbnf_err(format!("rule `{name}` uses `{used}`, which is not defined")));
            }
        }
    }
    let root = names.get("root").ok_or_else(|| gbnf_err("no `root ::= ...` rule".into()))?;
    let mut out = format!("start: {root}\n");
    for (name, body) in &rules {
        out += &format!("{}: {}\n", names[name.as_str()], body.lark(&names, true));
    }
    Ok(out)
}

fn gbnf_err(message: String) -> LlmError {
    LlmError::Constraint { kind: "gbnf grammar".into(), message }
}

/// `r_` + the name in lower case, with a number added where two names differ only in case.
fn lark_names<'a>(names: impl Iterator<Item = &'a String>) -> HashMap<String, String> {
    let mut taken: HashMap<String, usize> = HashMap::new();
    names
        .map(|n| {
            let base = format!("r_{}", n.to_lowercase());
            let count = taken.entry(base.clone()).or_default();
            *count += 1;
            let lark = if *count == 1 { base } else { format!("{base}_{count}") };
            (n.clone(), lark)
        })
        .collect()
}

#[derive(Debug, Clone)]
enum Node {
    Literal(String),
    /// Class items (single characters and ranges), negated or not.
    Class { negated: bool, items: Vec<(char, char)> },
    Any,
    Rule(String),
    Seq(Vec<Node>),
    Alt(Vec<Node>),
    Repeat { node: Box<Node>, min: usize, max: Option<usize> },
}

impl Node {
    fn rule_refs(&self) -> Vec<&String> {
        match self {
            Node::Rule(n) => vec![n],
            Node::Seq(v) | Node::Alt(v) => v.iter().flat_map(Node::rule_refs).collect(),
            Node::Repeat { node, .. } => node.rule_refs(),
            _ => vec![],
        }
    }

    fn lark(&self, names: &HashMap<String, String>, top: bool) -> String {
        match self {
            Node::Literal(s) => serde_json::to_string(s).expect("a string serialises"),
            Node::Class { negated, items } => {
                let body: String = items
                    .iter()
                    .map(|&(a, b)| if a == b { class_char(a) } else { format!("{}-{}", class_char(a), class_char(b)) })
                    .collect();
                format!("/[{}{body}]/", if *negated { "^" } else { "" })
            }
            Node::Any => "/(?s:.)/".into(),
            Node::Rule(n) => names[n.as_str()].clone(),
            Node::Seq(v) if v.is_empty() => "\"\"".into(),
            Node::Seq(v) => {
                let s = v.iter().map(|n| n.lark(names, false)).collect::<Vec<_>>().join(" ");
                if top || v.len() == 1 {
                    s
                } else {
                    format!("({s})")
                }
            }
            Node::Alt(v) => {
                let s = v.iter().map(|n| n.lark(names, true)).collect::<Vec<_>>().join(" | ");
                if top {
                    s
                } else {
                    format!("({s})")
                }
            }
            Node::Repeat { node, min, max } => {
                let inner = node.lark(names, false);
                let inner = if matches!(**node, Node::Seq(ref v) if v.len() > 1) { inner } else { format!("({inner})") };
                match (min, max) {
                    (0, None) => format!("{inner}*"),
                    (1, None) => format!("{inner}+"),
                    (0, Some(1)) => format!("{inner}?"),
                    (m, None) => format!("{inner}{{{m},}}"),
                    (m, Some(n)) => format!("{inner}{{{m},{n}}}"),
                }
            }
        }
    }
}

/// A character inside a regex class: letters and digits as they are, the rest as `\x{..}` so
/// that `]`, `-`, `^`, `\` and `/` never need thought.
fn class_char(c: char) -> String {
    if c.is_ascii_alphanumeric() {
        c.to_string()
    } else {
        format!("\\x{{{:x}}}", c as u32)
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn err(&self, message: impl std::fmt::Display) -> LlmError {
        let before = &self.chars[..self.pos.min(self.chars.len())];
        let line = before.iter().filter(|&&c| c == '\n').count() + 1;
        let col = before.iter().rev().take_while(|&&c| c != '\n').count() + 1;
        gbnf_err(format!("line {line}, column {col}: {message}"))
    }

    /// Spaces, tabs and comments; newlines too when `newlines`.
    fn space(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' => self.pos += 1,
                '\n' | '\r' if newlines => self.pos += 1,
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn grammar(&mut self) -> Result<BTreeMap<String, Node>> {
        let mut rules = BTreeMap::new();
        loop {
            self.space(true);
            if self.peek().is_none() {
                return Ok(rules);
            }
            let name = self.name()?;
            self.space(false);
            if !self.chars[self.pos..].starts_with(&[':', ':', '=']) {
                return Err(self.err(format!("expected `::=` after rule name `{name}`")));
            }
            self.pos += 3;
            self.space(true);
            let body = self.alternates(false)?;
            if rules.insert(name.clone(), body).is_some() {
                return Err(self.err(format!("rule `{name}` is defined twice")));
            }
            match self.peek() {
                None | Some('\n' | '\r') => {}
                Some(c) => return Err(self.err(format!("unexpected `{c}`"))),
            }
        }
    }

    fn name(&mut self) -> Result<String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err("expected a rule name"));
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn alternates(&mut self, nested: bool) -> Result<Node> {
        let mut alts = vec![self.sequence(nested)?];
        while self.peek() == Some('|') {
            self.pos += 1;
            self.space(true);
            alts.push(self.sequence(nested)?);
        }
        Ok(if alts.len() == 1 { alts.pop().expect("one") } else { Node::Alt(alts) })
    }

    fn sequence(&mut self, nested: bool) -> Result<Node> {
        let mut items = vec![];
        loop {
            let item = match self.peek() {
                None | Some('|' | ')' | '\n' | '\r') => break,
                Some('"') => self.literal()?,
                Some('[') => self.class()?,
                Some('.') => {
                    self.pos += 1;
                    Node::Any
                }
                Some('(') => {
                    self.pos += 1;
                    self.space(true);
                    let inner = self.alternates(true)?;
                    if self.peek() != Some(')') {
                        return Err(self.err("expected `)`"));
                    }
                    self.pos += 1;
                    inner
                }
                Some(c) if c.is_ascii_alphanumeric() || c == '-' || c == '_' => Node::Rule(self.name()?),
                Some(c) => return Err(self.err(format!("unexpected `{c}`"))),
            };
            self.space(nested);
            let item = self.postfix(item)?;
            self.space(nested);
            items.push(item);
        }
        Ok(if items.len() == 1 { items.pop().expect("one") } else { Node::Seq(items) })
    }

    fn postfix(&mut self, mut node: Node) -> Result<Node> {
        loop {
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => {
                    self.pos += 1;
                    let range = self.braces()?;
                    node = Node::Repeat { node: Box::new(node), min: range.0, max: range.1 };
                    continue;
                }
                _ => return Ok(node),
            };
            self.pos += 1;
            node = Node::Repeat { node: Box::new(node), min, max };
        }
    }

    /// `{m}`, `{m,}`, `{m,n}` after the `{`.
    fn braces(&mut self) -> Result<(usize, Option<usize>)> {
        let number = |p: &mut Self| -> Result<Option<usize>> {
            p.space(false);
            let start = p.pos;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.pos += 1;
            }
            let digits: String = p.chars[start..p.pos].iter().collect();
            p.space(false);
            if digits.is_empty() {
                Ok(None)
            } else {
                digits.parse().map(Some).map_err(|_| p.err(format!("repetition count `{digits}` is too large")))
            }
        };
        let min = number(self)?.ok_or_else(|| self.err("expected a repetition count"))?;
        let max = match self.peek() {
            Some(',') => {
                self.pos += 1;
                number(self)?
            }
            _ => Some(min),
        };
        if self.peek() != Some('}') {
            return Err(self.err("expected `}`"));
        }
        self.pos += 1;
        if max.is_some_and(|m| m < min) {
            return Err(self.err(format!("repetition {{{min},{}}} has max below min", max.unwrap_or(0))));
        }
        Ok((min, max))
    }

    fn literal(&mut self) -> Result<Node> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => return Err(self.err("unterminated string")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(Node::Literal(s));
                }
                Some(_) => s.push(self.char_in()?),
            }
        }
    }

    fn class(&mut self) -> Result<Node> {
        self.pos += 1;
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut items = vec![];
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated character class")),
                Some(']') => {
                    self.pos += 1;
                    return Ok(Node::Class { negated, items });
                }
                Some(_) => {
                    let lo = self.char_in()?;
                    let hi = if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|&c| c != ']') {
                        self.pos += 1;
                        self.char_in()?
                    } else {
                        lo
                    };
                    if hi < lo {
                        return Err(self.err(format!("class range {lo:?}-{hi:?} is reversed")));
                    }
                    items.push((lo, hi));
                }
            }
        }
    }

    /// One (possibly escaped) character of a literal or class.
    fn char_in(&mut self) -> Result<char> {
        let c = self.peek().ok_or_else(|| self.err("unexpected end"))?;
        self.pos += 1;
        if c != '\\' {
            return Ok(c);
        }
        let e = self.peek().ok_or_else(|| self.err("unexpected end after `\\`"))?;
        self.pos += 1;
        let hex = |p: &mut Self, n: usize| -> Result<char> {
            let digits: String = p.chars.get(p.pos..p.pos + n).map(|d| d.iter().collect()).unwrap_or_default();
            p.pos += n;
            u32::from_str_radix(&digits, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| p.err(format!("bad escape `\\{e}{digits}`")))
        };
        Ok(match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gbnf_grammar_becomes_lark_rules() {
        let lark = gbnf_to_lark("root ::= item (\",\" item)*\nitem ::= [a-z]+ | \"-\"\n").unwrap();
        assert_eq!(lark, "start: r_root\nr_item: (/[a-z]/)+ | \"-\"\nr_root: r_item (\",\" r_item)*\n");
    }

    #[test]
    fn undefined_rules_and_bad_syntax_are_named() {
        let e = gbnf_to_lark("root ::= thing\n").unwrap_err().to_string();
        assert!(e.contains("`thing`"), "{e}");
        let e = gbnf_to_lark("root ::= \"a\nb\"\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("unterminated"), "{e}");
    }
}
