//! MMR (LangChain's algorithm), multi-query parsing, HyDE, RAG-fusion and the LLM re-ranker,
//! with scripted models.

use std::cell::Cell;
use std::collections::BTreeMap;

use llm_rag::query::{hyde_passage, mmr, multi_query, parse_grade, rag_fusion, FnLlm, LlmReranker, Reranker};
use llm_rag::store::Hit;

#[test]
fn mmr_trades_relevance_for_diversity() {
    let q = [1.0, 0.0];
    // Two near-duplicates close to the query, one different but still relevant.
    let c = vec![vec![1.0, 0.05], vec![1.0, 0.06], vec![0.7, 0.7]];
    assert_eq!(mmr(&q, &c, 2, 1.0), vec![0, 1], "lambda 1: pure relevance");
    // λ 0.25: candidate 1 scores 0.25·0.998 − 0.75·1.000 = −0.50, candidate 2 0.25·0.707 − 0.75·0.742 = −0.38.
    assert_eq!(mmr(&q, &c, 2, 0.25), vec![0, 2], "lambda 0.25: the duplicate is skipped");
    assert_eq!(mmr(&q, &c, 5, 0.5).len(), 3);
}

#[test]
fn multi_query_parses_lists_and_hyde_drafts() {
    let llm = FnLlm(|p: &str| {
        assert!(p.contains("generate 3 different versions") && p.contains("Original question: Who won?"));
        Ok("1. Who was the winner?\n\n- who won?\n2) Which team took the title?\nWhat was the final result?\nExtra one".to_string())
    });
    let qs = multi_query(&llm, "Who won?", 3).unwrap();
    assert_eq!(qs, ["Who won?", "Who was the winner?", "Which team took the title?", "What was the final result?"]);
    let hyde = FnLlm(|p: &str| Ok(format!("passage for <{p}>")));
    assert!(hyde_passage(&hyde, "Why?").unwrap().contains("Question: Why?\nPassage:"));
    let fused = rag_fusion(&[vec!["a".into(), "b".into()], vec!["b".into(), "c".into()]]);
    assert_eq!(fused[0].0, "b");
}

#[test]
fn llm_reranker_grades_and_counts_malformed_judgements() {
    let hit = |id: &str, text: &str| Hit { id: id.into(), score: 0.0, text: text.into(), metadata: BTreeMap::new() };
    let calls = Cell::new(0);
    let llm = FnLlm(|p: &str| {
        calls.set(calls.get() + 1);
        Ok(if p.contains("Passage: apples") { "Score: 9/10".into() } else if p.contains("Passage: pears") { "3".into() } else { "no idea".into() })
    });
    let r = LlmReranker { llm: &llm, malformed: Cell::new(0) };
    let out = r.rerank("fruit?", vec![hit("p", "pears"), hit("x", "???"), hit("a", "apples")]).unwrap();
    assert_eq!(out.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["a", "p", "x"]);
    assert_eq!(out[0].score, 9.0);
    assert_eq!(r.malformed.get(), 1);
    assert_eq!(calls.get(), 4, "the malformed one is asked twice");
    assert_eq!(parse_grade("I'd say 11 or maybe 7"), Some(7));
    assert_eq!(parse_grade("none"), None);
}
