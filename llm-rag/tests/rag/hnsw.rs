//! HNSW recall@10 against exact search on 10 000 clustered vectors (MiniLM vectors and faiss
//! are compared in benches/benches/index.rs).

use llm_rag::hnsw::{exact_top_k, HnswIndex, HnswParams};
use llm_rag::store::{FlatStore, Record, VectorStore};

/// Deterministic vectors with structure, as embeddings have: 8 latent factors mapped into
/// `dim` dimensions by a fixed random projection, plus a little noise (uniform noise in all
/// dimensions would make every neighbour nearly equidistant, unlike real embeddings).
fn data(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let lcg = |s: &mut u64| {
        *s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    };
    let mut fixed = 7u64;
    let projection: Vec<Vec<f32>> = (0..8).map(|_| (0..dim).map(|_| lcg(&mut fixed)).collect()).collect();
    let mut s = seed;
    (0..n)
        .map(|_| {
            let z: Vec<f32> = (0..8).map(|_| lcg(&mut s)).collect();
            (0..dim).map(|j| z.iter().zip(&projection).map(|(zi, p)| zi * p[j]).sum::<f32>() + 0.05 * lcg(&mut s)).collect()
        })
        .collect()
}

#[test]
fn recall_at_10_is_at_least_095_on_10k_vectors() {
    let base = data(10_000, 64, 1);
    let queries = data(200, 64, 2);
    let ids: Vec<String> = (0..base.len()).map(|i| i.to_string()).collect();
    let index = HnswIndex::build(ids, &base, HnswParams::default());
    assert_eq!(index.len(), 10_000);
    let mut found = 0;
    for q in &queries {
        let exact: Vec<String> = exact_top_k(&base, q, 10).into_iter().map(|i| i.to_string()).collect();
        let got: Vec<String> = index.search(q, 10).into_iter().map(|(id, _)| id).collect();
        assert_eq!(got.len(), 10);
        found += got.iter().filter(|id| exact.contains(id)).count();
    }
    let recall = found as f64 / (10 * queries.len()) as f64;
    eprintln!("recall@10 {recall:.4}");
    assert!(recall >= 0.95, "recall@10 {recall}");
}

#[test]
fn index_from_store_returns_store_ids_and_similarities() {
    let mut store = FlatStore::new();
    let vectors = data(300, 16, 3);
    store
        .upsert(vectors.iter().enumerate().map(|(i, v)| Record { id: format!("r{i}"), text: String::new(), metadata: Default::default(), vector: v.clone() }).collect())
        .unwrap();
    let index = HnswIndex::from_store(&store, HnswParams::default());
    let hits = index.search(&vectors[42], 3);
    assert_eq!(hits[0].0, "r42");
    assert!((hits[0].1 - 1.0).abs() < 1e-5);
    let exact = store.search(&vectors[42], 3, None).unwrap();
    assert_eq!(hits.iter().map(|h| h.0.clone()).collect::<Vec<_>>(), exact.iter().map(|h| h.id.clone()).collect::<Vec<_>>());
}
