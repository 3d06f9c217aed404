//! Tool calling: calls parsed from the three reply formats, tools and calls rendered by a
//! Hermes-style template, and calls constrained to the declared tools' schemas (the random
//! tiny Llama, sampled: every reply parses into a call whose arguments fit the schema).

use llm_core::chat::{ChatTemplate, Message, RenderContext, Tool, ToolCall, ToolFormat};
use llm_core::generate::{GenerationConfig, Generator};
use llm_core::weights::{load_model, LoadOptions};
use llm_core::{CausalLm, LlmError, Tokenizer};
use llm_testkit::*;
use serde_json::{json, Value};

fn tools() -> Vec<Tool> {
    Tool::list_from_json(&json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
            "parameters": {"type": "object", "additionalProperties": false, "required": ["city"],
                "properties": {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["c", "f"]}}}}},
        {"name": "add", "description": "Adds two integers", "parameters": {"type": "object", "additionalProperties": false,
            "required": ["a", "b"], "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 999}, "b": {"type": "integer", "minimum": 0, "maximum": 999}}}}
    ]))
    .unwrap()
}

#[test]
fn calls_are_read_from_each_format() {
    let tools = tools();
    let hermes = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": \"{\\\"a\\\": 1, \\\"b\\\": 2}\"}\n</tool_call>";
    let r = ToolFormat::Hermes.parse(hermes, &tools).unwrap();
    assert_eq!(r.content, "Let me check.");
    assert_eq!(r.calls, vec![
        ToolCall { name: "get_weather".into(), arguments: json!({"city": "Paris"}) },
        ToolCall { name: "add".into(), arguments: json!({"a": 1, "b": 2}) },
    ]);
    let llama = "<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": 3, \"b\": 4}}";
    assert_eq!(ToolFormat::Llama3.parse(llama, &tools).unwrap().calls[0].arguments, json!({"a": 3, "b": 4}));
    let mistral = "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}]";
    assert_eq!(ToolFormat::Mistral.parse(mistral, &tools).unwrap().calls[0].name, "get_weather");
    let plain = ToolFormat::Hermes.parse("Just text.", &tools).unwrap();
    assert!(plain.calls.is_empty() && plain.content == "Just text.");
    match ToolFormat::Hermes.parse("<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>", &tools) {
        Err(e @ LlmError::Constraint { .. }) => assert!(e.to_string().contains("rm_rf"), "{e}"),
        other => panic!("an undeclared tool must be an error, got {other:?}"),
    }
    assert!(Tool::list_from_json(&json!([{"name": "x", "parameters": 3}])).unwrap_err().to_string().contains("tools[0]"));
}

/// A Hermes-style template written for this test: tools in the system turn, calls as
/// `<tool_call>` blocks, results as `<tool_response>` in a user turn (Qwen2.5's layout).
const HERMES: &str = r#"{%- if tools %}<|im_start|>system
You may call these tools:
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>
Reply with <tool_call>{"name": ..., "arguments": ...}</tool_call>.<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == "tool" %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% elif message.tool_calls is defined %}<|im_start|>assistant
{%- for call in message.tool_calls %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"#;

fn render(messages: &[Message], tools: Option<&Value>) -> String {
    let t = ChatTemplate::new("hermes-test", HERMES).unwrap();
    t.render(&RenderContext { messages, add_generation_prompt: true, bos_token: "", eos_token: "", tools }).unwrap()
}

#[test]
fn tools_calls_and_results_render_through_the_template() {
    let tools = tools();
    let schema = Tool::template_json(&tools);
    let first = render(&[Message::new("user", "Weather in Paris?")], Some(&schema));
    assert!(first.contains("<tools>") && first.contains("\"name\":\"get_weather\""), "{first}");
    assert_eq!(ToolFormat::detect(HERMES), Some(ToolFormat::Hermes));
    let call = ToolCall { name: "get_weather".into(), arguments: json!({"city": "Paris"}) };
    let conversation = [
        Message::new("user", "Weather in Paris?"),
        ToolCall::assistant_message("", std::slice::from_ref(&call)),
        call.result_message("{\"temp_c\": 21}"),
    ];
    let follow_up = render(&conversation, Some(&schema));
    assert!(follow_up.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>"), "{follow_up}");
    assert!(follow_up.contains("<tool_response>\n{\"temp_c\": 21}\n</tool_response>"), "{follow_up}");
    assert!(follow_up.ends_with("<|im_start|>assistant\n"));
    // A plain message has no `tool_calls` for the template to see.
    assert!(!render(&[Message::new("assistant", "hi")], None).contains("<tool_call>"));
}

fn tiny() -> CausalLm<TestBackend> {
    load_model(fixture("a_tiny_llama/llama"), LoadOptions::default(), &Default::default()).unwrap()
}

/// The checker of the two tools' schemas, written here.
fn valid_call(call: &ToolCall) -> bool {
    let a = &call.arguments;
    let int = |k: &str| a[k].as_i64().is_some_and(|x| (0..=999).contains(&x));
    match call.name.as_str() {
        "get_weather" => {
            a["city"].as_str().is_some_and(|c| c.chars().count() <= 12)
                && a.get("unit").is_none_or(|u| u == "c" || u == "f")
                && a.as_object().unwrap().keys().all(|k| k == "city" || k == "unit")
        }
        "add" => int("a") && int("b") && a.as_object().unwrap().len() == 2,
        _ => false,
    }
}

#[test]
fn constrained_tool_calls_always_parse_and_fit_their_schema() {
    let (model, tok) = (tiny(), Tokenizer::from_dir(fixture("b_tokenizer/bytelevel_bpe512")).unwrap());
    let tools = tools();
    let prompt = tok.encode(&render(&[Message::new("user", "Weather in Paris?")], Some(&Tool::template_json(&tools))), false).unwrap().ids;
    for format in [ToolFormat::Hermes, ToolFormat::Llama3] {
        let constraint = format.constraint(&tools, true).unwrap();
        for seed in 0..10 {
            let config = GenerationConfig { do_sample: true, top_k: 0, seed, eos_token_id: vec![2], ..GenerationConfig::greedy(600) };
            let gen = Generator::new(&model, config).unwrap().constrained(&tok, &constraint).unwrap();
            let out = gen.generate(std::slice::from_ref(&prompt)).unwrap();
            let ids: Vec<u32> = out.sequences[0].iter().copied().filter(|&i| i != 2).collect();
            let reply = tok.decode(&ids, false).unwrap();
            let parsed = format.parse(&reply, &tools).unwrap_or_else(|e| panic!("{format:?} seed {seed}: {reply:?}: {e}"));
            assert!(!parsed.calls.is_empty(), "{format:?} seed {seed}: no call in {reply:?}");
            for call in &parsed.calls {
                assert!(valid_call(call), "{format:?} seed {seed}: {call:?}");
            }
        }
    }
    assert!(ToolFormat::Mistral.constraint(&tools, true).is_err());
}
