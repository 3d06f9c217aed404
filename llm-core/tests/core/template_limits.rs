//! Untrusted chat templates end in an error, quickly: loops past the instruction budget,
//! output past its byte limit (written or captured), recursion past the depth limit, and
//! `strftime_now` with a format chrono cannot print. Real templates still render.

use std::time::{Duration, Instant};

use llm_core::chat::{ChatTemplate, Message, RenderContext};
use llm_core::LlmError;

fn render(source: &str) -> (Result<String, LlmError>, Duration) {
    let messages = [Message::new("user", "hello")];
    let ctx = RenderContext { messages: &messages, add_generation_prompt: true, bos_token: "<s>", eos_token: "</s>", tools: None };
    let started = Instant::now();
    let out = ChatTemplate::new("limits.jinja", source).and_then(|t| t.render(&ctx));
    (out, started.elapsed())
}

fn assert_fails_fast(source: &str, says: &str) {
    let (out, took) = render(source);
    let err = out.expect_err(source);
    assert!(matches!(err, LlmError::Template { .. }), "{err:?}");
    assert!(err.to_string().contains(says), "{source}: {err}");
    assert!(took < Duration::from_secs(1), "{source} took {took:?}");
}

#[test]
fn nested_loops_run_out_of_fuel() {
    assert_fails_fast("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "fuel");
}

#[test]
fn a_ten_gigabyte_output_is_refused() {
    // 100 x 100 MB, written out.
    assert_fails_fast(r#"{% for i in range(100) %}{{ "a" * 100000000 }}{% endfor %}"#, "bytes");
    // The same into a captured block, never written.
    assert_fails_fast(r#"{% set x %}{% for i in range(100) %}{{ "a" * 100000000 }}{% endfor %}{% endset %}ok"#, "bytes");
}

#[test]
fn unbounded_recursion_is_an_error() {
    assert_fails_fast("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion");
}

#[test]
fn an_invalid_strftime_format_is_an_error_not_a_panic() {
    assert_fails_fast(r#"{{ strftime_now("%Q") }}"#, "strftime_now");
}

#[test]
fn a_huge_template_source_is_refused() {
    assert_fails_fast(&"x".repeat(2 << 20), "limit");
}

#[test]
fn ordinary_templates_render_within_the_limits() {
    let (out, _) = render("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}{{ strftime_now('%Y') | length }}");
    assert_eq!(out.unwrap(), "<|user|>hello4");
}
