//! The test suite every [`VectorStore`] passes: the embedded `FlatStore` and the Chroma
//! server store run the same checks (modules `flat_store` and `chroma_store`).
//! Expected results come from an exact cosine search in f64 written here, not from either
//! store.

use std::collections::BTreeMap;

use llm_rag::store::{Filter, Hit, Record, VectorStore};

pub const DIM: usize = 16;
/// Scores are f32 cosines; the reference is f64.
const SCORE_TOL: f32 = 1e-5;

/// A deterministic pseudo-random vector (SplitMix64): no two records tie on a query.
pub fn vector(seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..DIM)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

pub fn record(i: u64) -> Record {
    let mut metadata = BTreeMap::from([
        ("parity".to_string(), if i % 2 == 0 { "even" } else { "odd" }.to_string()),
        ("third".to_string(), (i % 3).to_string()),
    ]);
    if i == 5 {
        metadata.clear();
    }
    Record { id: format!("gen-{i}"), text: format!("chunk {i}: naïve café ✓ «{}»", "x".repeat(i as usize % 7)), metadata, vector: vector(i) }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Exact top-`k` of `records` matching `filter`, best first.
fn expected(records: &[Record], query: &[f32], k: usize, filter: Option<&Filter>) -> Vec<(String, f64)> {
    let mut scored: Vec<(String, f64)> = records
        .iter()
        .filter(|r| filter.is_none_or(|f| f.iter().all(|(key, v)| r.metadata.get(key) == Some(v))))
        .map(|r| (r.id.clone(), cosine(&r.vector, query)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(k);
    scored
}

fn assert_hits(what: &str, hits: &[Hit], want: &[(String, f64)], records: &[Record]) {
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    let want_ids: Vec<&str> = want.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, want_ids, "{what}: ids");
    for (hit, (_, score)) in hits.iter().zip(want) {
        assert!((hit.score - *score as f32).abs() < SCORE_TOL, "{what}: {} scored {} against {score}", hit.id, hit.score);
        let r = records.iter().find(|r| r.id == hit.id).expect("a stored id");
        assert_eq!((&hit.text, &hit.metadata), (&r.text, &r.metadata), "{what}: {} text and metadata round-trip", hit.id);
    }
}

fn filter(pairs: &[(&str, &str)]) -> Filter {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Runs every check on an empty `store`.
pub fn run(store: &mut dyn VectorStore) {
    assert_eq!(store.count().unwrap(), 0, "a new store is empty");
    assert!(store.search(&vector(1), 3, None).unwrap().is_empty(), "searching an empty store");
    assert_eq!(store.delete(&["gen-1"]).unwrap(), 0, "deleting from an empty store");
    let mut records: Vec<Record> = (0..40).map(record).collect();
    store.upsert(records.clone()).unwrap();
    assert_eq!(store.count().unwrap(), 40);

    // Similarity search: exact order and scores, text and metadata intact.
    let q = vector(7);
    let hits = store.search(&q, 5, None).unwrap();
    assert_eq!(hits[0].id, "gen-7");
    assert!((hits[0].score - 1.0).abs() < SCORE_TOL);
    assert_hits("top 5", &hits, &expected(&records, &q, 5, None), &records);
    let q2 = vector(1000);
    assert_hits("unseen query, k past the count", &store.search(&q2, 100, None).unwrap(), &expected(&records, &q2, 100, None), &records);
    assert!(store.search(&q2, 0, None).unwrap().is_empty(), "k = 0");

    // Metadata filters: one pair, two pairs, none matching.
    for pairs in [&[("parity", "even")][..], &[("parity", "odd"), ("third", "0")], &[("parity", "none")]] {
        let f = filter(pairs);
        let hits = store.search(&q2, 6, Some(&f)).unwrap();
        assert_hits(&format!("filter {pairs:?}"), &hits, &expected(&records, &q2, 6, Some(&f)), &records);
    }

    // Upsert replaces by id; repeated ids in one call keep the last.
    let replaced = Record { text: "replaced".into(), vector: vector(500), ..record(3) };
    let twice = [Record { text: "first".into(), ..record(40) }, record(40)];
    store.upsert([vec![replaced.clone()], twice.to_vec()].concat()).unwrap();
    records[3] = replaced;
    records.push(record(40));
    assert_eq!(store.count().unwrap(), 41);
    assert_hits("after replace", &store.search(&vector(500), 3, None).unwrap(), &expected(&records, &vector(500), 3, None), &records);
    assert_hits("repeated id", &store.search(&vector(40), 1, None).unwrap(), &expected(&records, &vector(40), 1, None), &records);

    // Delete counts the ids that existed.
    assert_eq!(store.delete(&["gen-7", "nope"]).unwrap(), 1);
    assert_eq!(store.delete(&["gen-7"]).unwrap(), 0);
    assert_eq!(store.delete(&[]).unwrap(), 0);
    records.retain(|r| r.id != "gen-7");
    assert_eq!(store.count().unwrap(), 40);
    assert_hits("after delete", &store.search(&q, 5, None).unwrap(), &expected(&records, &q, 5, None), &records);

    // Wrong dimensions are errors, and change nothing.
    let short = Record { vector: vec![1.0; 4], ..record(99) };
    assert!(store.upsert(vec![short]).is_err(), "a 4-dim vector into a {DIM}-dim store");
    assert!(store.search(&[1.0; 4], 3, None).is_err(), "a 4-dim query");
    assert_eq!(store.count().unwrap(), 40);
}
