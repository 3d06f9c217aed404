//! JSONL records in every supported shape, their trained spans, and line-numbered errors.

use std::path::Path;

use crate::common::*;
use llm_train::TrainError;
use llm_train::data::{parse_jsonl, SftExample};
use llm_train::sft::{SftTokenizer, IGNORE};

fn trained_text(tok: &llm_core::Tokenizer, ids: &[u32], labels: &[i64]) -> Vec<String> {
    // Contiguous trained spans, decoded.
    let mut spans = vec![];
    let mut cur = vec![];
    for (&id, &l) in ids.iter().zip(labels) {
        if l != IGNORE {
            cur.push(id);
        } else if !cur.is_empty() {
            spans.push(tok.decode(&std::mem::take(&mut cur), false).unwrap());
        }
    }
    if !cur.is_empty() {
        spans.push(tok.decode(&cur, false).unwrap());
    }
    spans
}

#[test]
fn every_shape_trains_the_right_tokens() {
    let text = r#"{"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Red."}, {"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Blue."}]}

{"instruction": "Add 2 and 3.", "input": "", "output": "5"}
{"prompt": [{"role": "user", "content": "Add 2 and 3."}], "completion": [{"role": "assistant", "content": "5"}]}
{"prompt": "Q: hi\nA:", "completion": " hello"}
{"text": "plain text"}"#;
    let records = parse_jsonl(text, Path::new("mem.jsonl")).unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(records[1], records[2], "Alpaca becomes a one-turn chat prompt/completion");
    let tok = tiny_tokenizer();
    let st = SftTokenizer { tokenizer: &tok, max_length: 1024 };
    let ex: Vec<_> = records.iter().map(|r| st.tokenize(r).unwrap()).collect();
    // Both assistant turns of the conversation, each with its end-of-turn, nothing else.
    assert_eq!(trained_text(&tok, &ex[0].input_ids, &ex[0].labels), vec!["Red.<|im_end|>\n", "Blue.<|im_end|>\n"]);
    assert_eq!(trained_text(&tok, &ex[1].input_ids, &ex[1].labels), vec!["5<|im_end|>\n"]);
    // Text prompt/completion: the completion and EOS.
    let eos = tok.eos_token().unwrap().to_string();
    assert_eq!(trained_text(&tok, &ex[3].input_ids, &ex[3].labels), vec![format!(" hello{eos}")]);
    // Text: everything.
    assert!(ex[4].labels.iter().all(|&l| l != IGNORE));
    // Truncation keeps the first tokens.
    let short = SftTokenizer { tokenizer: &tok, max_length: 5 }.tokenize(&records[0]).unwrap();
    assert_eq!(short.input_ids, ex[0].input_ids[..5]);
}

#[test]
fn a_bad_line_is_named_by_its_number() {
    let cases = [
        ("{\"text\": \"ok\"}\n{\"prompt\": \"x\"}\n", 2, "unknown record shape"),
        ("{\"text\": \"ok\"}\n\n{\"messages\": [{\"role\": \"user\"}]}\n", 3, "content"),
        ("{\"text\": 5}\n", 1, "`text` must be a string"),
        ("{\"text\": \"ok\"}\nnot json\n", 2, "not JSON"),
        ("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n", 1, "no assistant turn"),
        ("{\"prompt\": \"x\", \"completion\": [{\"role\": \"assistant\", \"content\": \"y\"}]}\n", 1, "both"),
    ];
    for (text, line, what) in cases {
        let err = parse_jsonl(text, Path::new("data.jsonl")).unwrap_err();
        match &err {
            TrainError::Data { line: l, message, .. } => {
                assert_eq!(*l, line, "{err}");
                assert!(message.contains(what), "{err}");
            }
            other => panic!("expected a data error, got {other}"),
        }
        assert!(err.to_string().starts_with(&format!("data.jsonl:{line}:")), "{err}");
    }
    let missing = llm_train::data::load_jsonl("/nonexistent/train.jsonl").unwrap_err().to_string();
    assert!(missing.contains("/nonexistent/train.jsonl"), "{missing}");
    let _: Vec<SftExample> = vec![];
}
