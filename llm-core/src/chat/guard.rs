//! The guard functions a rewritten template calls ([`super::rewrite`]), and the budget of one
//! render they charge.
//!
//! Each guard measures its operands before the engine runs the operation, so nothing it lets
//! through can allocate more than the render's limits:
//! - no string a guarded operation builds has more than `max_value_bytes`, and no list more
//!   than `max_items` entries (a repeated list is lazy, so its length is what is checked);
//! - a filter or method call is refused when its input and arguments could build more than
//!   the remaining work budget: the estimate is `(1 + input) * (1 + arguments)`, sizes in
//!   bytes (lists and maps by the length of their printed form), where a number argument
//!   counts its value (`indent(10**9)`), and a format string its widths (`"%999999s"`);
//! - every operand measured, and every value built, is charged to the render's work budget,
//!   so a loop of cheap-looking operations on large values ends too.
//!
//! Measuring a list or a map prints it into a counter that stops at the limit: nothing is
//! allocated and the time is bounded by the limit.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use minijinja::value::{Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value};

use super::rewrite::{DEEP, FILTER, INDEX, METHOD, OP, SHALLOW};

/// Filters whose output shares the input's values or is small: their list inputs are measured
/// by length, not by printed size. Every other filter (built-in or not) is measured deeply.
const SHALLOW_FILTERS: [&str; 29] = [
    "length", "count", "first", "last", "default", "d", "bool", "int", "float", "abs", "round", "attr", "list", "batch", "slice", "reverse",
    "sort", "unique", "dictsort", "items", "select", "reject", "selectattr", "rejectattr", "groupby", "chain", "zip", "min", "max",
];

/// Filters and methods that can turn each character of a string into a value of its own.
const PER_CHARACTER: [&str; 9] = ["list", "split", "lines", "splitlines", "batch", "slice", "reverse", "sort", "unique"];

/// What one render may build and spend.
pub(super) struct Guard {
    max_value_bytes: u64,
    max_items: u64,
    work_left: AtomicU64,
}

type R<T> = Result<T, Error>;

impl Guard {
    /// A budget of `work` bytes for one render.
    pub(super) fn new(max_value_bytes: usize, max_items: usize, work: u64) -> Arc<Self> {
        Arc::new(Self { max_value_bytes: max_value_bytes as u64, max_items: max_items as u64, work_left: AtomicU64::new(work) })
    }

    /// Registers the guard functions the rewrite calls.
    pub(super) fn install(self: &Arc<Self>, env: &mut Environment<'_>) {
        let g = self.clone();
        env.add_function(OP, move |state: &State, args: Rest<Value>| g.op(state, &args));
        let g = self.clone();
        env.add_function(FILTER, move |state: &State, args: Rest<Value>| g.filter(state, &args));
        let g = self.clone();
        env.add_function(METHOD, move |state: &State, args: Rest<Value>| g.method(state, &args));
        let g = self.clone();
        env.add_function(DEEP, move |value: Value| g.deep(value));
        let g = self.clone();
        env.add_function(SHALLOW, move |value: Value| g.charge(shallow(&value)).map(|_| value));
        let g = self.clone();
        env.add_function(INDEX, move |value: Value| g.charge(value.as_str().map_or(1, |s| s.len() as u64)).map(|_| value));
    }

    /// `+`, `*`, `~`: strings are built here under the size limit; lists and numbers are left
    /// to the engine once the list's length is known to fit (repetition and concatenation of
    /// lists are lazy there).
    fn op(&self, state: &State, args: &[Value]) -> R<Value> {
        let [op, a, b] = args else { return Err(internal("__llm_op takes 3 arguments")) };
        match (op.as_str().unwrap_or(""), a.as_str(), b.as_str()) {
            ("~", _, _) => self.concat(a, b),
            ("+", Some(x), Some(y)) => {
                self.fits_bytes(x.len() as u64 + y.len() as u64, "+")?;
                Ok(Value::from([x, y].concat()))
            }
            ("+", _, _) => {
                if let (true, true, Some(n), Some(m)) = (is_list(a), is_list(b), a.len(), b.len()) {
                    self.fits_items(n as u64 + m as u64, "+")?;
                }
                self.engine(state, "a + b", a, b)
            }
            ("*", Some(s), _) | ("*", _, Some(s)) => {
                let times = if a.as_str().is_some() { b } else { a };
                match times.as_usize() {
                    Some(n) => {
                        self.fits_bytes((s.len() as u64).saturating_mul(n as u64), "*")?;
                        Ok(Value::from(s.repeat(n)))
                    }
                    None => self.engine(state, "a * b", a, b),
                }
            }
            ("*", _, _) => {
                let (list, times) = if is_list(a) { (a, b) } else { (b, a) };
                if let (true, Some(len), Some(n)) = (is_list(list), list.len(), times.as_usize()) {
                    self.fits_items((len as u64).saturating_mul(n as u64), "*")?;
                }
                self.engine(state, "a * b", a, b)
            }
            (other, _, _) => Err(internal(&format!("__llm_op: unknown operator {other:?}"))),
        }
    }

    /// `a ~ b`, printed into a string that may not pass the size limit.
    fn concat(&self, a: &Value, b: &Value) -> R<Value> {
        let mut out = Bounded { text: String::new(), limit: self.max_value_bytes as usize };
        if write!(out, "{a}{b}").is_err() {
            return Err(too_large(&format!("`~` builds a string of more than {} bytes", self.max_value_bytes)));
        }
        self.charge(out.text.len() as u64)?;
        Ok(Value::from(out.text))
    }

    /// `value | name(args)`: measured, applied by the engine, its result checked.
    fn filter(&self, state: &State, args: &[Value]) -> R<Value> {
        let (Some(name), Some(input)) = (args.first().and_then(Value::as_str), args.get(1)) else {
            return Err(internal("__llm_filter takes a name and a value"));
        };
        let deep = !SHALLOW_FILTERS.contains(&name);
        let input_size = if input.kind() == ValueKind::Number { 1 } else { self.weight(input, deep, name == "format")? };
        self.bound(&format!("filter `{name}`"), name, input, input_size, &args[2..])?;
        let out = state.apply_filter(name, &args[1..])?;
        self.built(&out, &format!("filter `{name}`"))?;
        Ok(out)
    }

    /// `object.name(args)`: measured, called by the engine, its result checked.
    fn method(&self, state: &State, args: &[Value]) -> R<Value> {
        let (Some(object), Some(name)) = (args.first(), args.get(1).and_then(Value::as_str)) else {
            return Err(internal("__llm_method takes an object and a name"));
        };
        let object_size = if object.kind() == ValueKind::Number { 1 } else { self.weight(object, false, name == "format")? };
        self.bound(&format!("method `{name}`"), name, object, object_size, &args[2..])?;
        let out = object.call_method(state, name, &args[2..])?;
        self.built(&out, &format!("method `{name}`"))?;
        Ok(out)
    }

    /// Refuses a call whose input and arguments could build more than the work left, and
    /// charges their sizes (most filters walk their input once).
    fn bound(&self, what: &str, name: &str, value: &Value, input: u64, args: &[Value]) -> R<()> {
        let mut args_size = 0u64;
        for a in args {
            args_size = args_size.saturating_add(self.weight(a, true, false)?);
        }
        let mut estimate = input.saturating_add(1).saturating_mul(args_size.saturating_add(1));
        if value.as_str().is_some() && PER_CHARACTER.contains(&name) {
            estimate = estimate.saturating_mul(std::mem::size_of::<Value>() as u64);
        }
        let left = self.work_left.load(Ordering::Relaxed);
        if estimate > left {
            return Err(too_large(&format!("{what} on {input} bytes with arguments of {args_size} could build {estimate} bytes, more than the {left} left of the work budget")));
        }
        self.charge(input.saturating_add(args_size))
    }

    /// A value a guarded call built: within the size limits, and charged.
    fn built(&self, value: &Value, what: &str) -> R<()> {
        if let Some(s) = value.as_str() {
            self.fits_bytes(s.len() as u64, what)?;
        } else if let (true, Some(n)) = (is_list(value) || value.kind() == ValueKind::Map, value.len()) {
            self.fits_items(n as u64, what)?;
        }
        self.charge(shallow(value))
    }

    /// The size a value counts for: a number argument its value, a string its bytes (and a
    /// format string its widths), a list or map its printed size (`deep`) or its length.
    fn weight(&self, value: &Value, deep: bool, format: bool) -> R<u64> {
        if value.is_kwargs() {
            let mut total = 0u64;
            for key in value.try_iter()? {
                total = total.saturating_add(self.weight(&value.get_item(&key)?, deep, false)?);
            }
            return Ok(total);
        }
        Ok(match value.kind() {
            ValueKind::Number => number(value),
            ValueKind::String if format => value.as_str().map_or(0, |s| s.len() as u64 + digit_runs(s)),
            ValueKind::String | ValueKind::Bytes => shallow(value),
            ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain if deep => self.printed(value)?,
            _ => shallow(value),
        })
    }

    /// `__llm_deep(x)`: `x`, its printed size charged (and within the value limit).
    fn deep(&self, value: Value) -> R<Value> {
        match value.as_str() {
            Some(s) => self.charge(s.len() as u64)?,
            None if matches!(value.kind(), ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain) => {
                self.printed(&value)?;
            }
            None => self.charge(1)?,
        }
        Ok(value)
    }

    /// The length of `value`'s printed form, counted (not stored) up to the value limit, and
    /// charged.
    fn printed(&self, value: &Value) -> R<u64> {
        let mut out = Counter { count: 0, limit: self.max_value_bytes as usize };
        let fits = write!(out, "{value}").is_ok();
        let n = out.count as u64;
        self.charge(n)?;
        if !fits {
            return Err(too_large(&format!("a value prints to more than {} bytes", self.max_value_bytes)));
        }
        Ok(n)
    }

    fn charge(&self, units: u64) -> R<()> {
        let units = units.max(1);
        let mut left = self.work_left.load(Ordering::Relaxed);
        loop {
            let Some(rest) = left.checked_sub(units) else {
                return Err(too_large("the template's work budget is spent (it builds or walks too much data)"));
            };
            match self.work_left.compare_exchange_weak(left, rest, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(now) => left = now,
            }
        }
    }

    fn fits_bytes(&self, n: u64, what: &str) -> R<()> {
        if n > self.max_value_bytes {
            return Err(too_large(&format!("{what} builds a string of {n} bytes; the limit is {}", self.max_value_bytes)));
        }
        self.charge(n)
    }

    fn fits_items(&self, n: u64, what: &str) -> R<()> {
        if n > self.max_items {
            return Err(too_large(&format!("{what} builds a list of {n} items; the limit is {}", self.max_items)));
        }
        Ok(())
    }

    /// The engine's own operator, on operands already measured.
    fn engine(&self, state: &State, expression: &str, a: &Value, b: &Value) -> R<Value> {
        let compiled = state.env().compile_expression(expression)?;
        compiled.eval(minijinja::context! { a => a.clone(), b => b.clone() })
    }
}

fn is_list(v: &Value) -> bool {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// A string's bytes, a list's or map's length, 1 for anything else.
fn shallow(v: &Value) -> u64 {
    match v.kind() {
        ValueKind::String => v.as_str().map_or(0, |s| s.len() as u64),
        ValueKind::Bytes => v.as_bytes().map_or(0, |b| b.len() as u64),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => v.len().unwrap_or(1) as u64,
        _ => 1,
    }
}

/// A number's magnitude (how much an argument like `indent(n)` can build).
fn number(v: &Value) -> u64 {
    if let Some(n) = v.as_i64() {
        return n.unsigned_abs();
    }
    match f64::try_from(v.clone()) {
        Ok(x) if x.is_finite() => x.abs().min(u64::MAX as f64) as u64,
        _ => u64::MAX,
    }
}

/// The sum of the decimal numbers in a format string: the widths and precisions it may pad to.
fn digit_runs(s: &str) -> u64 {
    let mut total = 0u64;
    let mut run = 0u64;
    for c in s.chars() {
        match c.to_digit(10) {
            Some(d) => run = run.saturating_mul(10).saturating_add(d as u64),
            None => {
                total = total.saturating_add(run);
                run = 0;
            }
        }
    }
    total.saturating_add(run)
}

/// A `fmt::Write` that keeps what is written, failing past `limit` bytes.
struct Bounded {
    text: String,
    limit: usize,
}

impl Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.text.len() + s.len() > self.limit {
            return Err(std::fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

/// A `fmt::Write` that only counts, failing past `limit` bytes (then `count` is `limit + 1`).
pub(super) struct Counter {
    pub(super) count: usize,
    pub(super) limit: usize,
}

impl Write for Counter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.count + s.len() > self.limit {
            self.count = self.limit.saturating_add(1);
            return Err(std::fmt::Error);
        }
        self.count += s.len();
        Ok(())
    }
}

fn too_large(message: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.to_string())
}

fn internal(message: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.to_string())
}
