//! BM25 against rank_bm25 0.2.2 (`BM25Okapi`, whitespace tokens), RRF, hybrid search.

use std::collections::BTreeMap;

use llm_rag::retrieve::{hybrid_search, reciprocal_rank_fusion, Bm25};
use llm_rag::store::{FlatStore, Record, VectorStore};

const CORPUS: [&str; 5] = [
    "the cat sat on the mat",
    "dogs and cats living together",
    "the quick brown fox jumps over the lazy dog",
    "a cat and a dog",
    "nothing in common here at all",
];

fn index() -> Bm25 {
    let docs = CORPUS.iter().enumerate().map(|(i, d)| (format!("d{i}"), d.split_whitespace().map(String::from).collect())).collect();
    Bm25::with_tokens(docs)
}

#[test]
fn bm25_scores_equal_rank_bm25() {
    // python: BM25Okapi([d.split() for d in CORPUS]).get_scores(q.split())
    let want: [(&str, [f64; 5]); 3] = [
        ("cat", [0.3414284561, 0.0, 0.0, 0.3685738281, 0.0]),
        ("the dog", [0.4857107956, 0.0, 0.6993858429, 0.3685738281, 0.0]),
        ("lazy fox cat", [0.3414284561, 0.0, 1.826111579, 0.3685738281, 0.0]),
    ];
    let bm = index();
    for (q, w) in want {
        let got = bm.scores(&q.split_whitespace().map(String::from).collect::<Vec<_>>());
        for (g, w) in got.iter().zip(w) {
            assert!((g - w).abs() < 1e-9, "{q}: {got:?} vs {w:?}");
        }
    }
    assert_eq!(bm.search("lazy fox cat", 2).iter().map(|h| h.0.as_str()).collect::<Vec<_>>(), ["d2", "d3"]);
}

#[test]
fn rrf_sums_reciprocal_ranks() {
    let a = vec!["x".to_string(), "y".into(), "z".into()];
    let b = vec!["z".to_string(), "x".into()];
    let fused = reciprocal_rank_fusion(&[a, b], 60.0);
    assert_eq!(fused[0].0, "x");
    assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-12);
    assert_eq!(fused.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), ["x", "z", "y"]);
}

#[test]
fn hybrid_finds_what_either_side_ranks_high() {
    let mut store = FlatStore::new();
    // Dense vectors that only know doc 4; keywords that only know doc 2.
    let recs = (0..5)
        .map(|i| Record { id: format!("d{i}"), text: CORPUS[i].into(), metadata: BTreeMap::new(), vector: vec![if i == 4 { 1.0 } else { 0.1 }, i as f32 * 0.01, 1.0] })
        .collect();
    store.upsert(recs).unwrap();
    let bm = Bm25::new(CORPUS.iter().enumerate().map(|(i, d)| (["d0", "d1", "d2", "d3", "d4"][i], *d)));
    let hits = hybrid_search(&store, &bm, "lazy fox", &[1.0, 0.0, 0.0], 2, 5, None).unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.0.as_str()).collect();
    assert!(ids.contains(&"d2") && ids.contains(&"d4"), "{ids:?}");
}
