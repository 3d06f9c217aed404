//! Constrained decoding: seeded sampled generations from the tiny Llama (random weights, the
//! bpe512 byte-level tokenizer) under 13 JSON Schemas, regexes and grammars; every output is
//! checked by a validator written here, independent of the engine (serde_json plus a checker
//! of the schema keywords used, the `regex` crate, a recursive-descent arithmetic parser).
//! A random model is the hard case: it puts no mass on valid text by itself.

use llm_core::generate::{Constraint, ConstraintEngine, GenerationConfig, Generator, StopReason};
use llm_core::weights::{load_model, LoadOptions};
use llm_core::{CausalLm, LlmError, Tokenizer};
use llm_testkit::*;
use serde_json::{json, Value};

fn tiny() -> CausalLm<TestBackend> {
    load_model(fixture("a_tiny_llama/llama"), LoadOptions::default(), &Default::default()).unwrap()
}

fn tokenizer() -> Tokenizer {
    Tokenizer::from_dir(fixture("b_tokenizer/bytelevel_bpe512")).unwrap()
}

/// A validator written from the JSON Schema spec for the keywords the cases use.
fn validates(v: &Value, s: &Value) -> bool {
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        return any.iter().any(|alt| validates(v, alt));
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        return options.contains(v);
    }
    let num_ok = |x: f64| {
        s.get("minimum").and_then(Value::as_f64).is_none_or(|m| x >= m) && s.get("maximum").and_then(Value::as_f64).is_none_or(|m| x <= m)
    };
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = v.as_object() else { return false };
            let props = s.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
            let required = s.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
            required.iter().all(|k| obj.contains_key(k.as_str().unwrap()))
                && obj.iter().all(|(k, val)| match props.get(k) {
                    Some(ps) => validates(val, ps),
                    None => s.get("additionalProperties") != Some(&json!(false)),
                })
        }
        Some("array") => {
            let Some(items) = v.as_array() else { return false };
            let n = items.len() as u64;
            s.get("minItems").and_then(Value::as_u64).is_none_or(|m| n >= m)
                && s.get("maxItems").and_then(Value::as_u64).is_none_or(|m| n <= m)
                && items.iter().all(|i| s.get("items").is_none_or(|is| validates(i, is)))
        }
        Some("string") => {
            let Some(text) = v.as_str() else { return false };
            let n = text.chars().count() as u64;
            s.get("minLength").and_then(Value::as_u64).is_none_or(|m| n >= m)
                && s.get("maxLength").and_then(Value::as_u64).is_none_or(|m| n <= m)
                && s.get("pattern").and_then(Value::as_str).is_none_or(|p| regex::Regex::new(p).unwrap().is_match(text))
        }
        Some("integer") => v.as_i64().is_some_and(|x| num_ok(x as f64)),
        Some("number") => v.as_f64().is_some_and(num_ok),
        Some("boolean") => v.is_boolean(),
        Some(other) => panic!("validator lacks type {other}"),
        None => true,
    }
}

/// expr := term (("+"|"-") term){0,3}; term := factor (("*"|"/") factor){0,2};
/// factor := NUMBER | "(" expr ")" with parentheses one level deep.
fn arithmetic(text: &str) -> bool {
    fn number(s: &[u8], i: &mut usize) -> bool {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() && *i - start < 3 {
            *i += 1;
        }
        *i > start && !(*i < s.len() && s[*i].is_ascii_digit())
    }
    fn factor(s: &[u8], i: &mut usize, depth: usize) -> bool {
        if s.get(*i) == Some(&b'(') && depth == 0 {
            *i += 1;
            return expr(s, i, 1) && s.get(*i) == Some(&b')') && {
                *i += 1;
                true
            };
        }
        number(s, i)
    }
    fn chain(s: &[u8], i: &mut usize, depth: usize, ops: &[u8], max: usize, item: fn(&[u8], &mut usize, usize) -> bool) -> bool {
        if !item(s, i, depth) {
            return false;
        }
        for _ in 0..max {
            match s.get(*i) {
                Some(c) if ops.contains(c) => {
                    *i += 1;
                    if !item(s, i, depth) {
                        return false;
                    }
                }
                _ => break,
            }
        }
        true
    }
    fn term(s: &[u8], i: &mut usize, depth: usize) -> bool {
        chain(s, i, depth, b"*/", 2, factor)
    }
    fn expr(s: &[u8], i: &mut usize, depth: usize) -> bool {
        chain(s, i, depth, b"+-", 3, term)
    }
    let mut i = 0;
    expr(text.as_bytes(), &mut i, 0) && i == text.len()
}

enum Check {
    Schema(Value),
    Regex(&'static str),
    Arithmetic,
}

fn cases() -> Vec<(&'static str, Constraint, Check)> {
    let person = json!({"type": "object", "additionalProperties": false, "required": ["name", "age"], "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 8}, "age": {"type": "integer", "minimum": 0, "maximum": 120}}});
    let colors = json!({"type": "object", "additionalProperties": false, "required": ["color"],
        "properties": {"color": {"enum": ["red", "green", "blue"]}}});
    let scores = json!({"type": "array", "minItems": 1, "maxItems": 4, "items": {"type": "integer", "minimum": 0, "maximum": 99}});
    let nested = json!({"type": "object", "additionalProperties": false, "required": ["user", "active"], "properties": {
        "user": {"type": "object", "additionalProperties": false, "required": ["id", "tags"], "properties": {
            "id": {"type": "integer", "minimum": 1, "maximum": 9999},
            "tags": {"type": "array", "maxItems": 3, "items": {"enum": ["a", "b", "admin"]}}}},
        "active": {"type": "boolean"}}});
    let point = json!({"type": "object", "additionalProperties": false, "required": ["x", "y"], "properties": {
        "x": {"type": "number", "minimum": -10, "maximum": 10}, "y": {"type": "number", "minimum": 0, "maximum": 1}}});
    let code = json!({"type": "object", "additionalProperties": false, "required": ["code"],
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"}}});
    let either = json!({"anyOf": [
        {"type": "object", "additionalProperties": false, "required": ["a"], "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9}}},
        {"type": "object", "additionalProperties": false, "required": ["b"], "properties": {"b": {"type": "boolean"}}}]});
    let list = json!({"type": "object", "additionalProperties": false, "required": ["items"], "properties": {
        "items": {"type": "array", "minItems": 2, "maxItems": 3, "items": {"type": "object", "additionalProperties": false,
            "required": ["sku", "qty"], "properties": {"sku": {"type": "string", "pattern": "^[a-z]{2}[0-9]$"},
            "qty": {"type": "integer", "minimum": 1, "maximum": 5}}}}}});
    let arithmetic = r#"
start: expr
expr: term (("+" | "-") term){0,3}
term: factor (("*" | "/") factor){0,2}
factor: NUMBER | "(" inner ")"
inner: iterm (("+" | "-") iterm){0,3}
iterm: NUMBER (("*" | "/") NUMBER){0,2}
NUMBER: /[0-9]{1,3}/
"#;
    let csv = "root ::= field \",\" field \",\" field\nfield ::= [a-z0-9]{1,6}\n";
    let sql = r#"
root ::= "SELECT " cols " FROM " table where? ";"
cols ::= "*" | col (", " col){0,2}
col ::= "id" | "name" | "age"
table ::= "users" | "orders"
where ::= " WHERE " col " " op " " [0-9]{1,3}
op ::= "=" | "<" | ">"
"#;
    vec![
        json_case("person", person),
        json_case("enum", colors),
        json_case("array", scores),
        json_case("nested", nested),
        json_case("numbers", point),
        json_case("pattern", code),
        json_case("anyOf", either),
        json_case("array of objects", list),
        ("email regex", Constraint::Regex(r"[a-z]{1,8}@[a-z]{1,6}\.(com|org)".into()), Check::Regex(r"^[a-z]{1,8}@[a-z]{1,6}\.(com|org)$")),
        ("date regex", Constraint::Regex(r"[0-9]{4}-(0[1-9]|1[0-2])-[0-9]{2}".into()), Check::Regex(r"^[0-9]{4}-(0[1-9]|1[0-2])-[0-9]{2}$")),
        ("arithmetic lark", Constraint::Lark(arithmetic.into()), Check::Arithmetic),
        ("csv gbnf", Constraint::Gbnf(csv.into()), Check::Regex(r"^[a-z0-9]{1,6},[a-z0-9]{1,6},[a-z0-9]{1,6}$")),
        ("sql gbnf", Constraint::Gbnf(sql.into()), Check::Regex(
            r"^SELECT (\*|(id|name|age)(, (id|name|age)){0,2}) FROM (users|orders)( WHERE (id|name|age) [=<>] [0-9]{1,3})?;$")),
    ]
}

fn json_case(name: &'static str, schema: Value) -> (&'static str, Constraint, Check) {
    (name, Constraint::JsonSchema(schema.clone()), Check::Schema(schema))
}

fn passes(check: &Check, text: &str) -> bool {
    match check {
        Check::Schema(s) => serde_json::from_str::<Value>(text).is_ok_and(|v| validates(&v, s)),
        Check::Regex(rx) => regex::Regex::new(rx).unwrap().is_match(text),
        Check::Arithmetic => arithmetic(text),
    }
}

#[test]
fn every_sampled_output_matches_its_schema_regex_or_grammar() {
    let (model, tok) = (tiny(), tokenizer());
    let engine = ConstraintEngine::new(&tok, model.config.vocab_size, &[2]).unwrap();
    let prompt = tok.encode("The answer:", true).unwrap().ids;
    let mut total = 0;
    for (name, constraint, check) in cases() {
        let compiled = engine.compile(&constraint).unwrap_or_else(|e| panic!("{name}: {e}"));
        for seed in 0..16 {
            let config = GenerationConfig {
                do_sample: true,
                top_k: 0,
                seed,
                eos_token_id: vec![2],
                ..GenerationConfig::greedy(160)
            };
            let gen = Generator::new(&model, config).unwrap().with_constraint(compiled.clone());
            let out = gen.generate(std::slice::from_ref(&prompt)).unwrap();
            let ids: Vec<u32> = out.sequences[0].iter().copied().filter(|&i| i != 2).collect();
            let text = tok.decode(&ids, false).unwrap();
            let stop = out.stop_reasons[0];
            assert!(matches!(stop, StopReason::Eos | StopReason::Constraint), "{name} seed {seed}: stopped by {stop:?} after {text:?}");
            assert!(passes(&check, &text), "{name} seed {seed}: {text:?} does not validate");
            total += 1;
        }
    }
    assert!(total >= 200);
}

#[test]
fn token_bytes_spell_what_the_tokenizer_decodes() {
    for (dir, text) in [
        ("b_tokenizer/bytelevel_bpe512", "Hello, world! naïve café ☃ {\"a\": [1, 2]}\n\tend"),
        ("b_tokenizer/mistral_v1_sentencepiece", "Hello, world! naïve café ☃ {\"a\": [1, 2]}"),
    ] {
        let tok = Tokenizer::from_dir(fixture(dir)).unwrap();
        let bytes = tok.token_bytes().unwrap();
        let ids = tok.encode(text, false).unwrap().ids;
        let spelled: Vec<u8> = ids.iter().flat_map(|&i| bytes[i as usize].clone()).collect();
        let decoded = tok.decode(&ids, false).unwrap();
        // SentencePiece decoders strip the space the pre-tokenizer put before the first word.
        let spelled = String::from_utf8(spelled).unwrap();
        assert_eq!(spelled.trim_start(), decoded.trim_start(), "{dir}");
        let eos = tok.eos_token_id().unwrap() as usize;
        assert_eq!(bytes[eos][0], llm_core::tokenizer::SPECIAL_TOKEN_MARKER, "{dir}: special tokens are marked");
    }
}

#[test]
fn constraints_the_engine_cannot_compile_are_typed_errors_naming_the_construct() {
    let (model, tok) = (tiny(), tokenizer());
    let engine = ConstraintEngine::new(&tok, model.config.vocab_size, &[2]).unwrap();
    let cases = [
        (Constraint::JsonSchema(json!({"type": "frobnicate"})), "frobnicate"),
        (Constraint::JsonSchema(json!([1, 2])), "a schema is a JSON object"),
        (Constraint::Regex("(ab".into()), "regex"),
        (Constraint::Lark("start: missing_rule\n".into()), "missing_rule"),
        (Constraint::Gbnf("root ::= thing\n".into()), "`thing`"),
        (Constraint::Gbnf("root ::= [a-".into()), "unterminated character class"),
    ];
    for (constraint, needle) in cases {
        match engine.compile(&constraint) {
            Err(e @ LlmError::Constraint { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(needle), "{constraint:?}: {msg}");
            }
            Err(other) => panic!("{constraint:?}: expected a constraint error, got {other}"),
            Ok(_) => panic!("{constraint:?} compiled"),
        }
    }
    let no_eos = ConstraintEngine::new(&tok, model.config.vocab_size, &[]).unwrap_err();
    assert!(no_eos.to_string().contains("eos_token_id"), "{no_eos}");
}

#[test]
fn a_constraint_left_without_tokens_stops_with_its_reason() {
    let (model, tok) = (tiny(), tokenizer());
    // Ban every token that starts with `x`: the regex `x+` has nothing left to begin with.
    let bytes = tok.token_bytes().unwrap();
    let banned: Vec<Vec<u32>> = (0..bytes.len() as u32).filter(|&i| bytes[i as usize].first() == Some(&b'x')).map(|i| vec![i]).collect();
    assert!(!banned.is_empty());
    let config = GenerationConfig { bad_words_ids: banned, eos_token_id: vec![2], ..GenerationConfig::greedy(8) };
    let gen = Generator::new(&model, config).unwrap().constrained(&tok, &Constraint::Regex("x+".into())).unwrap();
    let out = gen.generate(&[tok.encode("Say x:", true).unwrap().ids]).unwrap();
    assert_eq!(out.stop_reasons[0], StopReason::NoAllowedToken);
    assert!(out.sequences[0].is_empty());
}

#[test]
fn greedy_under_a_regex_stops_when_the_match_is_complete() {
    let (model, tok) = (tiny(), tokenizer());
    let config = GenerationConfig { eos_token_id: vec![2], ..GenerationConfig::greedy(64) };
    let gen = Generator::new(&model, config).unwrap().constrained(&tok, &Constraint::Regex("(yes|no)".into())).unwrap();
    let out = gen.generate(&[tok.encode("Answer:", true).unwrap().ids, tok.encode("Is it?", true).unwrap().ids]).unwrap();
    for (ids, stop) in out.sequences.iter().zip(&out.stop_reasons) {
        let ids: Vec<u32> = ids.iter().copied().filter(|&i| i != 2).collect();
        let text = tok.decode(&ids, false).unwrap();
        assert!(text == "yes" || text == "no", "{text:?}");
        assert!(matches!(stop, StopReason::Constraint | StopReason::Eos), "{stop:?}");
    }
}

#[test]
fn constrained_speculative_decoding_is_constrained_decoding() {
    use llm_core::generate::{Drafter, SpeculativeConfig};
    let (model, tok) = (tiny(), tokenizer());
    let other: CausalLm<TestBackend> = load_model(fixture("a_tiny_llama/llama_rope_llama3"), LoadOptions::default(), &Default::default()).unwrap();
    let engine = ConstraintEngine::new(&tok, model.config.vocab_size, &[2]).unwrap();
    let prompt = tok.encode("The answer: the answer: the", true).unwrap().ids;
    for (name, constraint, check) in cases().into_iter().filter(|(n, ..)| ["person", "nested", "sql gbnf", "email regex"].contains(n)) {
        let compiled = engine.compile(&constraint).unwrap();
        for sample in [false, true] {
            let config = GenerationConfig { do_sample: sample, top_k: 0, seed: 5, eos_token_id: vec![2], ..GenerationConfig::greedy(160) };
            let gen = Generator::new(&model, config).unwrap().with_constraint(compiled.clone());
            let plain = gen.generate(std::slice::from_ref(&prompt)).unwrap();
            for drafter in [Drafter::Model(&model), Drafter::Model(&other), Drafter::PromptLookup { max_ngram: 2 }] {
                let (out, _) = gen.generate_speculative(&prompt, drafter, SpeculativeConfig::default()).unwrap();
                let ids: Vec<u32> = out.sequences[0].iter().copied().filter(|&i| i != 2).collect();
                let text = tok.decode(&ids, false).unwrap();
                assert!(passes(&check, &text), "{name} (sampled: {sample}): {text:?}");
                if !sample {
                    assert_eq!(out.sequences, plain.sequences, "{name}: constrained greedy, speculative vs plain");
                }
            }
        }
    }
}

#[test]
fn constrained_beam_search_returns_only_valid_hypotheses() {
    let (model, tok) = (tiny(), tokenizer());
    let engine = ConstraintEngine::new(&tok, model.config.vocab_size, &[2]).unwrap();
    let prompt = tok.encode("The answer:", true).unwrap().ids;
    for (name, constraint, check) in cases().into_iter().filter(|(n, ..)| ["person", "enum", "csv gbnf", "date regex"].contains(n)) {
        let config = GenerationConfig { num_beams: 4, num_return_sequences: 3, eos_token_id: vec![2], ..GenerationConfig::greedy(120) };
        let gen = Generator::new(&model, config).unwrap().with_constraint(engine.compile(&constraint).unwrap());
        let out = gen.beam_search(std::slice::from_ref(&prompt)).unwrap().remove(0);
        assert_eq!(out.sequences.len(), 3);
        for (ids, score) in out.sequences.iter().zip(&out.scores) {
            let ids: Vec<u32> = ids.iter().copied().filter(|&i| i != 2).collect();
            let text = tok.decode(&ids, false).unwrap();
            assert!(score.is_finite() && passes(&check, &text), "{name}: {text:?} ({score})");
        }
    }
}

/// The same 13 constraints x 16 seeds on SmolLM2-135M-Instruct (Q4_1 GGUF), sampled at
/// temperature 1 through its chat template. Minutes at the test profile's optimisation, so
/// run by hand: `cargo test --release -p llm-core --test core -- --ignored smollm2_constrained`.
#[test]
#[ignore]
fn smollm2_constrained_sampling_always_validates() {
    let path = smollm2_gguf();
    let model: CausalLm<TestBackend> = load_model(&path, LoadOptions::default(), &Default::default()).unwrap();
    let tok = Tokenizer::from_gguf(&llm_core::weights::GgufFile::open(&path).unwrap()).unwrap();
    let eos = vec![tok.eos_token_id().unwrap()];
    let engine = ConstraintEngine::new(&tok, model.config.vocab_size, &eos).unwrap();
    let ask = llm_core::chat::Message::new("user", "Give an example answer in the requested format.");
    let prompt = tok.encode(&tok.apply_chat_template(&[ask], true).unwrap(), false).unwrap().ids;
    let (mut total, start) = (0, std::time::Instant::now());
    for (name, constraint, check) in cases() {
        let compiled = engine.compile(&constraint).unwrap();
        for seed in 0..16 {
            let config = GenerationConfig { do_sample: true, top_k: 0, seed, eos_token_id: eos.clone(), ..GenerationConfig::greedy(256) };
            let gen = Generator::new(&model, config).unwrap().with_constraint(compiled.clone());
            let out = gen.generate(std::slice::from_ref(&prompt)).unwrap();
            let ids: Vec<u32> = out.sequences[0].iter().copied().filter(|i| !eos.contains(i)).collect();
            let text = tok.decode(&ids, false).unwrap();
            assert!(passes(&check, &text), "{name} seed {seed}: {text:?} ({:?})", out.stop_reasons[0]);
            total += 1;
        }
    }
    eprintln!("{total} SmolLM2 generations validated in {:.0} s", start.elapsed().as_secs_f64());
}
