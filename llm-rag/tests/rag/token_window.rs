//! Token windows (LangChain's `TokenTextSplitter` semantics) with exact byte offsets, and the
//! recursive splitter measuring length in tokens (`from_huggingface_tokenizer`).

use std::sync::atomic::{AtomicUsize, Ordering};

use llm_rag::RagError;
use llm_rag::llm_core::Tokenizer;
use llm_rag::split::{RecursiveSplitter, Splitter};
use llm_rag::window::TokenWindowSplitter;

/// A word-level tokenizer: every run of word characters, and every run of punctuation, is one
/// token (all `[UNK]`, which is enough to count and locate them).
fn word_tokenizer() -> Tokenizer {
    static N: AtomicUsize = AtomicUsize::new(0);
    let json = r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}"#;
    let path = std::env::temp_dir().join(format!("llm-rag-words-{}-{}.json", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, json).unwrap();
    let tokenizer = Tokenizer::from_file(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    tokenizer
}

/// LangChain's window count: one window, then one per stride until the last token is covered.
fn expected_windows(n: usize, window: usize, overlap: usize) -> usize {
    match n {
        0 => 0,
        n if n <= window => 1,
        n => 1 + (n - window).div_ceil(window - overlap),
    }
}

#[test]
fn windows_advance_by_window_minus_overlap() {
    let tok = word_tokenizer();
    let text = "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9";
    let got = TokenWindowSplitter::new(&tok, 4, 1).unwrap().split_with_offsets(text).unwrap();
    let texts: Vec<&str> = got.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9"]);
    assert_eq!(got.iter().map(|c| c.start).collect::<Vec<_>>(), [0, 9, 18]);
    // No overlap: the last window holds the two tokens left over.
    let got = TokenWindowSplitter::new(&tok, 4, 0).unwrap().split_text(text).unwrap();
    assert_eq!(got, ["w0 w1 w2 w3", "w4 w5 w6 w7", "w8 w9"]);
    // A text shorter than the window is one window; an empty text none.
    assert_eq!(TokenWindowSplitter::new(&tok, 20, 5).unwrap().split_text(text).unwrap(), [text]);
    assert!(TokenWindowSplitter::new(&tok, 3, 1).unwrap().split_text("").unwrap().is_empty());
}

#[test]
fn window_counts_match_langchain_formula() {
    let tok = word_tokenizer();
    for n in [1usize, 2, 5, 7, 8, 13, 30] {
        let text = (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>().join(" ");
        for (window, overlap) in [(1, 0), (2, 1), (3, 0), (3, 2), (5, 2), (8, 7), (10, 3)] {
            let got = TokenWindowSplitter::new(&tok, window, overlap).unwrap().split_with_offsets(&text).unwrap();
            assert_eq!(got.len(), expected_windows(n, window, overlap), "n {n} window {window} overlap {overlap}");
            for pair in got.windows(2) {
                let what = format!("n {n} window {window} overlap {overlap}");
                if overlap == 0 {
                    assert!(pair[1].start > pair[0].end(), "{what}: disjoint");
                } else {
                    let shared = text[pair[1].start..pair[0].end()].split(' ').count();
                    assert_eq!(shared, overlap, "{what}: tokens shared");
                }
            }
        }
    }
}

#[test]
fn offsets_are_bytes_into_the_source_with_multibyte_text() {
    let tok = word_tokenizer();
    let text = "café naïve 日本語 text — ok";
    let got = TokenWindowSplitter::new(&tok, 2, 1).unwrap().split_with_offsets(text).unwrap();
    let texts: Vec<&str> = got.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["café naïve", "naïve 日本語", "日本語 text", "text —", "— ok"]);
    // café is 5 bytes, naïve 6, 日本語 9, — 3.
    assert_eq!(got.iter().map(|c| c.start).collect::<Vec<_>>(), [0, 6, 13, 23, 28]);
    for c in &got {
        assert_eq!(&text[c.start..c.end()], c.text);
    }
}

#[test]
fn byte_level_bpe_windows_are_exact_source_spans() {
    let dir = llm_testkit::fixture("b_tokenizer/bytelevel_bpe512");
    let tok = Tokenizer::from_dir(&dir).unwrap();
    let text = "Tokenizers split naïve café text 🦀 into byte-level pieces; windows must still be exact spans. \
                Ünïcödé and emoji 🚀🚀 sit across token edges.";
    let n = tok.encode(text, false).unwrap().ids.len();
    assert!(n > 40, "the fixture's small vocabulary splits this into many tokens ({n})");
    let got = TokenWindowSplitter::new(&tok, 16, 4).unwrap().split_with_offsets(text).unwrap();
    assert_eq!(got.len(), expected_windows(n, 16, 4));
    assert_eq!(got[0].start, 0);
    assert_eq!(got.last().unwrap().end(), text.len());
    for c in &got {
        assert_eq!(&text[c.start..c.end()], c.text);
    }
    for pair in got.windows(2) {
        assert!(pair[1].start < pair[0].end(), "consecutive windows overlap");
        assert!(pair[1].start > pair[0].start, "windows advance");
    }
}

#[test]
fn bad_window_config_is_a_typed_error() {
    let tok = word_tokenizer();
    let field = |r: llm_rag::Result<TokenWindowSplitter>| match r {
        Err(RagError::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert_eq!(field(TokenWindowSplitter::new(&tok, 0, 0)), "window");
    assert_eq!(field(TokenWindowSplitter::new(&tok, 4, 4)), "overlap");
    assert_eq!(field(TokenWindowSplitter::new(&tok, 4, 9)), "overlap");
    assert!(TokenWindowSplitter::new(&tok, 4, 3).is_ok());
}

#[test]
fn recursive_splitter_measures_tokens_of_a_tokenizer() {
    let tok = word_tokenizer();
    let text = "a b c d e f g";
    let by_tokens = RecursiveSplitter::from_tokenizer(&tok, 3, 0).unwrap();
    let got = by_tokens.chunks(text).unwrap();
    assert_eq!(got.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), ["a b c", "d e f", "g"]);
    assert_eq!(got.iter().map(|c| c.start).collect::<Vec<_>>(), [0, 6, 12]);
    // The same size in characters holds fewer words: the measure is what changed.
    assert_eq!(RecursiveSplitter::new(3, 0).unwrap().split_text(text)[0], "a b");
    assert!(RecursiveSplitter::from_tokenizer(&tok, 3, 3).is_err());
}
