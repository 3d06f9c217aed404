//! The syntax-tree rewrite that puts every costly template operation behind a guard.
//!
//! minijinja's fuel counts instructions, and one instruction can repeat a string 100 million
//! times, repeat a list lazily past any length, join a million 16 MB strings or stringify a
//! repeated list. The engine has no hook inside those operations, so the template is parsed,
//! and each node that can build a large value or walk a long one is replaced by a call to one
//! of the guard functions of [`super::guard`], which measure the operands first and refuse what
//! would pass the render's limits:
//! - `a + b`, `a * b`, `a ~ b` become `__llm_op("+", a, b)` (and `"*"`, `"~"`);
//! - `x | f(args)` becomes `__llm_filter("f", x, args)`, `x.m(args)` becomes
//!   `__llm_method(x, "m", args)` (except on `self`, `loop` and `caller`, whose methods are
//!   the template's own blocks and loops);
//! - the operands of `in`, of comparisons and of tests are passed through `__llm_deep`, and
//!   sliced values through `__llm_shallow` and indexed ones through `__llm_index`, which
//!   charge their size (an indexed list costs 1: only a string's characters are walked);
//! - template text becomes `{{ "text" }}`, so it passes the output counter like any other
//!   expression, into the prompt or into a captured block;
//! - `{% filter f %}body{% endfilter %}` and `{% set x | f %}body{% endset %}` become a capture
//!   of the body followed by the guarded filter call on it.
//!
//! The rewritten tree has the original spans, so errors name the template's own lines.
//! Everything else is rebuilt as it was. Names starting with `__llm_` are reserved.

use minijinja::machinery::ast::{self, CallArg, Expr, Spanned, Stmt};
use minijinja::machinery::Span;
use minijinja::{Error, ErrorKind, Value};

/// Guarded `+`, `*` and `~`: `__llm_op(op, left, right)`.
pub(super) const OP: &str = "__llm_op";
/// Guarded filter: `__llm_filter(name, value, args...)`.
pub(super) const FILTER: &str = "__llm_filter";
/// Guarded method call: `__llm_method(object, name, args...)`.
pub(super) const METHOD: &str = "__llm_method";
/// Charges the deep size of its argument (strings inside lists and maps) and returns it.
pub(super) const DEEP: &str = "__llm_deep";
/// Charges the shallow size of its argument (a string's bytes, a list's length) and returns it.
pub(super) const SHALLOW: &str = "__llm_shallow";
/// Charges a string's bytes (indexing one walks its characters), 1 for anything else.
pub(super) const INDEX: &str = "__llm_index";
/// The variable a rewritten `{% filter %}` block captures into.
const CAPTURE: &str = "__llm_capture";
const RESERVED: &str = "__llm_";

/// Variables whose method calls stay as they are: blocks (`self.name()`), loops, callers.
const OWN_METHODS: [&str; 3] = ["self", "loop", "caller"];

type R<T> = Result<T, Error>;

/// The rewritten form of a parsed template (`Stmt::Template`).
pub(super) fn template<'a>(root: &Stmt<'a>) -> R<Stmt<'a>> {
    let mut out = Vec::with_capacity(1);
    stmt(root, &mut out)?;
    Ok(out.pop().expect("a template rewrites to one statement"))
}

fn stmts<'a>(body: &[Stmt<'a>]) -> R<Vec<Stmt<'a>>> {
    let mut out = Vec::with_capacity(body.len());
    for s in body {
        stmt(s, &mut out)?;
    }
    Ok(out)
}

fn stmt<'a>(s: &Stmt<'a>, out: &mut Vec<Stmt<'a>>) -> R<()> {
    let rebuilt = match s {
        Stmt::Template(t) => Stmt::Template(Spanned::new(ast::Template { children: stmts(&t.children)? }, t.span())),
        Stmt::EmitExpr(e) => emit(expr(&e.expr)?, e.span()),
        Stmt::EmitRaw(r) => emit(constant(Value::from(r.raw), r.span()), r.span()),
        Stmt::ForLoop(f) => Stmt::ForLoop(Spanned::new(
            ast::ForLoop {
                target: expr(&f.target)?,
                iter: expr(&f.iter)?,
                filter_expr: opt(f.filter_expr.as_ref())?,
                recursive: f.recursive,
                body: stmts(&f.body)?,
                else_body: stmts(&f.else_body)?,
            },
            f.span(),
        )),
        Stmt::IfCond(i) => Stmt::IfCond(Spanned::new(
            ast::IfCond { expr: expr(&i.expr)?, true_body: stmts(&i.true_body)?, false_body: stmts(&i.false_body)? },
            i.span(),
        )),
        Stmt::WithBlock(w) => {
            let assignments = w.assignments.iter().map(|(t, v)| Ok((expr(t)?, expr(v)?))).collect::<R<_>>()?;
            Stmt::WithBlock(Spanned::new(ast::WithBlock { assignments, body: stmts(&w.body)? }, w.span()))
        }
        Stmt::Set(x) => Stmt::Set(Spanned::new(ast::Set { target: expr(&x.target)?, expr: expr(&x.expr)? }, x.span())),
        Stmt::SetBlock(x) => match &x.filter {
            None => Stmt::SetBlock(Spanned::new(ast::SetBlock { target: expr(&x.target)?, filter: None, body: stmts(&x.body)? }, x.span())),
            Some(filter) => {
                out.push(capture(&x.body, x.span())?);
                let value = filter_chain(filter, var(CAPTURE, x.span()))?;
                Stmt::Set(Spanned::new(ast::Set { target: expr(&x.target)?, expr: value }, x.span()))
            }
        },
        Stmt::AutoEscape(a) => Stmt::AutoEscape(Spanned::new(ast::AutoEscape { enabled: expr(&a.enabled)?, body: stmts(&a.body)? }, a.span())),
        Stmt::FilterBlock(f) => {
            out.push(capture(&f.body, f.span())?);
            emit(filter_chain(&f.filter, var(CAPTURE, f.span()))?, f.span())
        }
        Stmt::Block(b) => Stmt::Block(Spanned::new(ast::Block { name: b.name, required: b.required, body: stmts(&b.body)? }, b.span())),
        Stmt::Import(i) => Stmt::Import(Spanned::new(ast::Import { expr: expr(&i.expr)?, name: expr(&i.name)? }, i.span())),
        Stmt::FromImport(i) => {
            let names = i.names.iter().map(|(n, alias)| Ok((expr(n)?, opt(alias.as_ref())?))).collect::<R<_>>()?;
            Stmt::FromImport(Spanned::new(ast::FromImport { expr: expr(&i.expr)?, names }, i.span()))
        }
        Stmt::Extends(e) => Stmt::Extends(Spanned::new(ast::Extends { name: expr(&e.name)? }, e.span())),
        Stmt::Include(i) => Stmt::Include(Spanned::new(ast::Include { name: expr(&i.name)?, ignore_missing: i.ignore_missing }, i.span())),
        Stmt::Macro(m) => Stmt::Macro(macro_decl(m)?),
        Stmt::CallBlock(c) => Stmt::CallBlock(Spanned::new(ast::CallBlock { call: plain_call(&c.call)?, macro_decl: macro_decl(&c.macro_decl)? }, c.span())),
        Stmt::Continue(c) => Stmt::Continue(Spanned::new(ast::Continue, c.span())),
        Stmt::Break(b) => Stmt::Break(Spanned::new(ast::Break, b.span())),
        Stmt::Do(d) => Stmt::Do(Spanned::new(ast::Do { call: plain_call(&d.call)? }, d.span())),
    };
    out.push(rebuilt);
    Ok(())
}

fn macro_decl<'a>(m: &Spanned<ast::Macro<'a>>) -> R<Spanned<ast::Macro<'a>>> {
    reserved(m.name, m.span())?;
    let args = m.args.iter().map(expr).collect::<R<_>>()?;
    let defaults = m.defaults.iter().map(expr).collect::<R<_>>()?;
    Ok(Spanned::new(ast::Macro { name: m.name, args, defaults, body: stmts(&m.body)? }, m.span()))
}

/// `{% set __llm_capture %}body{% endset %}`.
fn capture<'a>(body: &[Stmt<'a>], span: Span) -> R<Stmt<'a>> {
    Ok(Stmt::SetBlock(Spanned::new(ast::SetBlock { target: var(CAPTURE, span), filter: None, body: stmts(body)? }, span)))
}

/// A block's filter chain (`f | g(x)`, innermost without input) applied to `input`.
fn filter_chain<'a>(chain: &Expr<'a>, input: Expr<'a>) -> R<Expr<'a>> {
    let Expr::Filter(f) = chain else { return expr(chain) };
    let value = match &f.expr {
        None => input,
        Some(inner) => filter_chain(inner, input)?,
    };
    guarded_filter(f.name, value, &f.args, f.span())
}

fn expr<'a>(e: &Expr<'a>) -> R<Expr<'a>> {
    Ok(match e {
        Expr::Var(v) => {
            reserved(v.id, v.span())?;
            var(v.id, v.span())
        }
        Expr::Const(c) => constant(c.value.clone(), c.span()),
        // Slicing copies and indexing a string walks it: the sliced value is charged.
        Expr::Slice(s) => Expr::Slice(Spanned::new(
            ast::Slice { expr: charged(SHALLOW, expr(&s.expr)?), start: opt(s.start.as_ref())?, stop: opt(s.stop.as_ref())?, step: opt(s.step.as_ref())? },
            s.span(),
        )),
        Expr::UnaryOp(u) => {
            // UnaryOpKind is not Copy; clippy reads the identity match as needless.
            #[allow(clippy::needless_match)]
            let op = match u.op {
                ast::UnaryOpKind::Not => ast::UnaryOpKind::Not,
                ast::UnaryOpKind::Neg => ast::UnaryOpKind::Neg,
            };
            Expr::UnaryOp(Spanned::new(ast::UnaryOp { op, expr: expr(&u.expr)? }, u.span()))
        }
        Expr::BinOp(b) => bin_op(b)?,
        Expr::Compare(c) => {
            let ops = c.ops.iter().map(|o| Ok(ast::CompareOp { op: o.op, expr: charged(DEEP, expr(&o.expr)?) })).collect::<R<_>>()?;
            Expr::Compare(Spanned::new(ast::Compare { expr: charged(DEEP, expr(&c.expr)?), ops }, c.span()))
        }
        Expr::IfExpr(i) => Expr::IfExpr(Spanned::new(
            ast::IfExpr { test_expr: expr(&i.test_expr)?, true_expr: expr(&i.true_expr)?, false_expr: opt(i.false_expr.as_ref())? },
            i.span(),
        )),
        Expr::Filter(f) => match &f.expr {
            Some(value) => guarded_filter(f.name, expr(value)?, &f.args, f.span())?,
            // Only filter blocks have a filter without input, and they are rewritten above.
            None => Expr::Filter(Spanned::new(ast::Filter { name: f.name, expr: None, args: args(&f.args)? }, f.span())),
        },
        // `x is in(text)` prints `x`: tests measure their operand deeply, as `in` does.
        Expr::Test(t) => Expr::Test(Spanned::new(ast::Test { name: t.name, expr: charged(DEEP, expr(&t.expr)?), args: args(&t.args)? }, t.span())),
        Expr::GetAttr(g) => Expr::GetAttr(Spanned::new(ast::GetAttr { expr: expr(&g.expr)?, name: g.name }, g.span())),
        Expr::GetItem(g) => Expr::GetItem(Spanned::new(ast::GetItem { expr: charged(INDEX, expr(&g.expr)?), subscript_expr: expr(&g.subscript_expr)? }, g.span())),
        Expr::Call(c) => match &c.expr {
            Expr::GetAttr(g) if !matches!(&g.expr, Expr::Var(v) if OWN_METHODS.contains(&v.id)) => {
                let mut all = vec![CallArg::Pos(expr(&g.expr)?), CallArg::Pos(constant(Value::from(g.name), g.span()))];
                all.extend(args(&c.args)?);
                call(METHOD, all, c.span())
            }
            _ => Expr::Call(plain_call(c)?),
        },
        Expr::List(l) => Expr::List(Spanned::new(ast::List { items: l.items.iter().map(expr).collect::<R<_>>()? }, l.span())),
        Expr::Map(m) => Expr::Map(Spanned::new(
            ast::Map { keys: m.keys.iter().map(expr).collect::<R<_>>()?, values: m.values.iter().map(expr).collect::<R<_>>()? },
            m.span(),
        )),
    })
}

fn bin_op<'a>(b: &Spanned<ast::BinOp<'a>>) -> R<Expr<'a>> {
    let symbol = match b.op {
        ast::BinOpKind::Add => "+",
        ast::BinOpKind::Mul => "*",
        ast::BinOpKind::Concat => "~",
        ast::BinOpKind::In => {
            let op = ast::BinOp { op: b.op, left: charged(DEEP, expr(&b.left)?), right: charged(SHALLOW, expr(&b.right)?) };
            return Ok(Expr::BinOp(Spanned::new(op, b.span())));
        }
        _ => return Ok(Expr::BinOp(Spanned::new(ast::BinOp { op: b.op, left: expr(&b.left)?, right: expr(&b.right)? }, b.span()))),
    };
    let all = vec![CallArg::Pos(constant(Value::from(symbol), b.span())), CallArg::Pos(expr(&b.left)?), CallArg::Pos(expr(&b.right)?)];
    Ok(call(OP, all, b.span()))
}

fn guarded_filter<'a>(name: &'a str, value: Expr<'a>, filter_args: &[CallArg<'a>], span: Span) -> R<Expr<'a>> {
    let mut all = vec![CallArg::Pos(constant(Value::from(name), span)), CallArg::Pos(value)];
    all.extend(args(filter_args)?);
    Ok(call(FILTER, all, span))
}

/// A call kept as a call (functions, macros, `loop(...)`, `self.block()`), its arguments rewritten.
fn plain_call<'a>(c: &Spanned<ast::Call<'a>>) -> R<Spanned<ast::Call<'a>>> {
    let callee = match &c.expr {
        // Keep `x.m` as the callee of `{% call x.m() %}` and `self.block()`: only the object is rewritten.
        Expr::GetAttr(g) => Expr::GetAttr(Spanned::new(ast::GetAttr { expr: expr(&g.expr)?, name: g.name }, g.span())),
        other => expr(other)?,
    };
    Ok(Spanned::new(ast::Call { expr: callee, args: args(&c.args)? }, c.span()))
}

fn args<'a>(list: &[CallArg<'a>]) -> R<Vec<CallArg<'a>>> {
    list.iter()
        .map(|a| {
            Ok(match a {
                CallArg::Pos(e) => CallArg::Pos(expr(e)?),
                CallArg::Kwarg(name, e) => CallArg::Kwarg(name, expr(e)?),
                CallArg::PosSplat(e) => CallArg::PosSplat(expr(e)?),
                CallArg::KwargSplat(e) => CallArg::KwargSplat(expr(e)?),
            })
        })
        .collect()
}

fn opt<'a>(e: Option<&Expr<'a>>) -> R<Option<Expr<'a>>> {
    e.map(expr).transpose()
}

fn emit<'a>(e: Expr<'a>, span: Span) -> Stmt<'a> {
    Stmt::EmitExpr(Spanned::new(ast::EmitExpr { expr: e }, span))
}

fn var<'a>(id: &'a str, span: Span) -> Expr<'a> {
    Expr::Var(Spanned::new(ast::Var { id }, span))
}

fn constant<'a>(value: Value, span: Span) -> Expr<'a> {
    Expr::Const(Spanned::new(ast::Const { value }, span))
}

fn call<'a>(function: &'static str, args: Vec<CallArg<'a>>, span: Span) -> Expr<'a> {
    Expr::Call(Spanned::new(ast::Call { expr: var(function, span), args }, span))
}

/// `guard(e)`: the value of `e`, its size charged first.
fn charged<'a>(guard: &'static str, e: Expr<'a>) -> Expr<'a> {
    let span = e.span();
    call(guard, vec![CallArg::Pos(e)], span)
}

fn reserved(name: &str, span: Span) -> R<()> {
    if name.starts_with(RESERVED) {
        let message = format!("line {}: names starting with {RESERVED} are reserved ({name})", span.start_line);
        return Err(Error::new(ErrorKind::SyntaxError, message));
    }
    Ok(())
}
