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

/// The inputs that used to take 1-18 s and up to a gigabyte in one minijinja instruction
/// (now in `fuzz/regressions/chat_template/`): each ends in an error, quickly.
#[test]
fn one_instruction_can_no_longer_take_seconds_or_a_gigabyte() {
    // A lazily repeated list of 168 million messages, printed by `~`.
    assert_fails_fast("{{ messages * 42048628 ~ 1 }}", "items");
    // The same inside a loop header, as the fuzzer wrote it.
    assert_fails_fast("{% for m in messages*00042048628~1//000001615 %}x{% endfor %}", "items");
    // Within the list limit, the printed form is what is refused.
    assert_fails_fast("{{ messages * 1000000 ~ 1 }}", "bytes");
    // A 100 MB repetition per iteration, never written.
    assert_fails_fast(r#"{% for i in range(100000) %}{% set x = "a" * 99999999 %}{% endfor %}"#, "bytes");
    // A string doubled through a namespace: 2^64 bytes, with `~` and with `+`.
    assert_fails_fast("{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "bytes");
    assert_fails_fast("{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "bytes");
    // A list doubled lazily, then printed.
    assert_fails_fast("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}", "items");
}

#[test]
fn filters_and_methods_cannot_amplify_past_the_limits() {
    // 100,000 references to one 10 MB string, joined (1 TB), mapped, printed, compared.
    let big = r#"{% set s = "a" * 10000000 %}{% set l = [s] * 100000 %}"#;
    for tail in ["{{ l|join }}", "{{ l|map('upper')|list|length }}", "{{ l|tojson }}", "{{ l|string|length }}", "{{ l in 'abc' }}", "{{ ','.join(l) }}"] {
        assert_fails_fast(&format!("{big}{tail}"), "bytes");
    }
    // Arguments that pad: a width, an indent, a format width, JSON indentation.
    for source in [
        "{{ 'x'|indent(1000000000) }}",
        "{{ 'x'|center(1000000000) }}",
        "{{ '%999999999s'|format(1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ messages|tojson(indent=1000000000) }}",
        "{{ ('a' * 1000000)|replace('a', 'b' * 1000) }}",
        "{% filter indent(1000000000) %}x\ny{% endfilter %}",
    ] {
        assert_fails_fast(source, "bytes");
    }
}

#[test]
fn work_past_the_budget_ends_quickly() {
    // Each copy is 10 MB and within the limits; 100,000 of them would be a terabyte of memcpy.
    assert_fails_fast(r#"{% set s = "a" * 10000000 %}{% for i in range(100000) %}{% set t = s ~ "" %}{% endfor %}"#, "work budget");
    // Slicing, indexing and scanning a 10 MB string, 100,000 times.
    for body in ["{% set t = s[::-1] %}", "{% set t = s[5] %}", "{% set t = s.count('b') %}", "{% set t = s|length %}", "{% if 'b' in s %}{% endif %}"] {
        assert_fails_fast(&format!(r#"{{% set s = "a" * 10000000 %}}{{% for i in range(100000) %}}{body}{{% endfor %}}"#), "work budget");
    }
    // Template text inside a captured block counts as output (100 MB here, never written).
    let text = "x".repeat(1000);
    assert_fails_fast(&format!("{{% set c %}}{{% for i in range(100000) %}}{text}{{% endfor %}}{{% endset %}}ok"), "bytes");
}

#[test]
fn guard_names_are_reserved() {
    assert_fails_fast("{{ __llm_op('*', 'a', 10) }}", "reserved");
    assert_fails_fast("{% macro __llm_filter(a, b) %}{% endmacro %}", "reserved");
}

#[test]
fn the_guards_keep_jinja_semantics() {
    let cases = [
        ("{{ 'a' + 'b' }}|{{ 1 + 2 }}|{{ 1.5 + 1 }}|{{ [1] + [2] }}", "ab|3|2.5|[1, 2]"),
        ("{{ 'ab' * 3 }}|{{ 3 * 'x' }}|{{ 2 * 3 }}|{{ [1, 2] * 2 }}|{{ 2.5 * 2 }}", "ababab|xxx|6|[1, 2, 1, 2]|5.0"),
        ("{{ 1 ~ 'a' ~ none ~ [1] }}|{{ 'ell' in 'hello' }}|{{ 3 not in [1, 2] }}|{{ 1 < 2 < 3 }}", "1aNone[1]|True|True|True"),
        ("{{ messages|map(attribute='role')|join(',') }}|{{ 'a,b'.split(',')|length }}|{{ ' x '.strip() }}", "user|2|x"),
        ("{{ {'a': 1}.items()|list }}|{{ 'x'|indent(2, true) }}|{{ [3, 1, 2]|sort|first }}|{{ messages[0].content|upper }}", "[[\"a\", 1]]|  x|1|HELLO"),
        ("{% filter upper %}a{% filter lower %}B{% endfilter %}c{% endfilter %}|{% set x | upper %}q{% endset %}{{ x }}", "ABC|Q"),
        ("{{ undefined_thing is defined }}|{{ messages[0].missing is defined }}|{{ (messages|length) is even }}", "False|False|False"),
        ("{% for m in messages %}{{ loop.index }}{{ loop.cycle('a', 'b') }}{% endfor %}|{% macro f(x) %}[{{ x }}{{ caller() }}]{% endmacro %}{% call f(1) %}c{% endcall %}", "1a|[1c]"),
        ("{{ {'a': [1]}|tojson(indent=2) }}|{{ 'x\ny'|indent(width=2, first=true) }}|{{ 'abc'[1:] }}{{ 'abc'[0] }}{{ [1, 2, 3][-1] }}|{{ 'a b'|list|length }}", "{\n  \"a\": [\n    1\n  ]\n}|  x\n  y|bca3|3"),
        ("{{ '%s-%d'|format('a', 3) }}|{{ '{}+{}'.format(1, 2) }}|{{ messages|tojson }}", "a-3|1+2|[{\"role\":\"user\",\"content\":\"hello\"}]"),
    ];
    for (source, want) in cases {
        let (out, _) = render(source);
        assert_eq!(out.unwrap_or_else(|e| panic!("{source}: {e}")), want, "{source}");
    }
    // An unsupported operation is still the engine's error.
    let (out, _) = render("{{ 'a' * 'b' }}");
    assert!(out.unwrap_err().to_string().contains("multiplied"));
}

/// A long conversation (2,000 messages, 2 MB) through a template in the style of Qwen2.5's
/// (a reverse scan with a namespace, a look back per message, tools as JSON): the guards'
/// charges stay far inside the default budget.
#[test]
fn a_long_conversation_renders_within_the_default_limits() {
    let source = r#"{%- set ns = namespace(last_user=0) -%}
{%- for m in messages[::-1] -%}{%- if m.role == 'user' and ns.last_user == 0 -%}{%- set ns.last_user = messages|length - 1 - loop.index0 -%}{%- endif -%}{%- endfor -%}
{%- if tools %}<|im_start|>system
{{ tools|tojson }}<|im_end|>
{% endif -%}
{%- for m in messages -%}
{%- if loop.index0 > 0 and messages[loop.index0 - 1].role == m.role %}(again){% endif -%}
<|im_start|>{{ m.role + '\n' + m['content'] | trim }}{{ ' [last user]' if loop.index0 == ns.last_user else '' }}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif -%}"#;
    let content = "w".repeat(999);
    let messages: Vec<Message> = (0..2000).map(|i| Message::new(if i % 2 == 0 { "user" } else { "assistant" }, format!("{i:04}{content}"))).collect();
    let tools = serde_json::json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let ctx = RenderContext { messages: &messages, add_generation_prompt: true, bos_token: "", eos_token: "", tools: Some(&tools) };
    let started = Instant::now();
    let out = ChatTemplate::new("long.jinja", source).and_then(|t| t.render(&ctx)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
    assert_eq!(out.matches("<|im_start|>user\n").count(), 1000);
    assert!(out.contains("1998wwww") && out.contains(" [last user]<|im_end|>\n<|im_start|>assistant\n1999"));
    assert!(out.ends_with("<|im_start|>assistant\n") && !out.contains("(again)"));
}
