//! Keyword search and rank fusion: BM25 exactly as `rank_bm25.BM25Okapi` (what LangChain's
//! `BM25Retriever` uses) and reciprocal rank fusion, which together with a
//! [`crate::store::VectorStore`] make hybrid search.

use std::collections::HashMap;

use crate::error::Result;
use crate::store::{Filter, VectorStore};

/// Okapi BM25 over a fixed corpus (`k1 = 1.5`, `b = 0.75`, negative IDFs replaced by
/// `epsilon · mean IDF` with `epsilon = 0.25`, as rank_bm25).
#[derive(Debug, Clone)]
pub struct Bm25 {
    /// Term saturation.
    pub k1: f64,
    /// Length normalisation.
    pub b: f64,
    ids: Vec<String>,
    term_freqs: Vec<HashMap<String, usize>>,
    doc_len: Vec<usize>,
    avgdl: f64,
    idf: HashMap<String, f64>,
}

/// Lower-cased words of letters and digits: the default tokenization of [`Bm25::new`].
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

impl Bm25 {
    /// Indexes `(id, text)` pairs with [`words`].
    pub fn new<'a>(docs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::with_tokens(docs.into_iter().map(|(id, text)| (id.to_string(), words(text))).collect())
    }

    /// Indexes documents already tokenized.
    pub fn with_tokens(docs: Vec<(String, Vec<String>)>) -> Self {
        let n = docs.len();
        let mut df: HashMap<String, usize> = HashMap::new();
        let mut term_freqs = Vec::with_capacity(n);
        let mut doc_len = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        for (id, tokens) in docs {
            let mut tf: HashMap<String, usize> = HashMap::new();
            for t in &tokens {
                *tf.entry(t.clone()).or_default() += 1;
            }
            for t in tf.keys() {
                *df.entry(t.clone()).or_default() += 1;
            }
            doc_len.push(tokens.len());
            term_freqs.push(tf);
            ids.push(id);
        }
        let avgdl = doc_len.iter().sum::<usize>() as f64 / n.max(1) as f64;
        let mut idf: HashMap<String, f64> =
            df.iter().map(|(t, &f)| (t.clone(), ((n as f64 - f as f64 + 0.5).ln() - (f as f64 + 0.5).ln()))).collect();
        let mean = idf.values().sum::<f64>() / idf.len().max(1) as f64;
        for v in idf.values_mut().filter(|v| **v < 0.0) {
            *v = 0.25 * mean;
        }
        Self { k1: 1.5, b: 0.75, ids, term_freqs, doc_len, avgdl, idf }
    }

    /// The score of every document for `query` tokens, in index order.
    pub fn scores(&self, query: &[String]) -> Vec<f64> {
        let mut score = vec![0.0; self.ids.len()];
        for q in query {
            let idf = self.idf.get(q).copied().unwrap_or(0.0);
            for (i, tf) in self.term_freqs.iter().enumerate() {
                let f = tf.get(q).copied().unwrap_or(0) as f64;
                let norm = 1.0 - self.b + self.b * self.doc_len[i] as f64 / self.avgdl;
                score[i] += idf * (f * (self.k1 + 1.0) / (f + self.k1 * norm));
            }
        }
        score
    }

    /// The `k` best `(id, score)` for a query text (ties keep index order), zero scores left out.
    pub fn search(&self, query: &str, k: usize) -> Vec<(String, f64)> {
        let scores = self.scores(&words(query));
        let mut order: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] > 0.0).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.into_iter().take(k).map(|i| (self.ids[i].clone(), scores[i])).collect()
    }
}

/// Reciprocal rank fusion (Cormack et al. 2009): each id scores `Σ 1 / (k + rank)` over the
/// ranked lists it appears in (rank from 1; `k = 60` is customary). Best first.
pub fn reciprocal_rank_fusion(lists: &[Vec<String>], k: f64) -> Vec<(String, f64)> {
    let mut scores: HashMap<&str, f64> = HashMap::new();
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            *scores.entry(id).or_default() += 1.0 / (k + rank as f64 + 1.0);
            let next = first_seen.len();
            first_seen.entry(id).or_insert(next);
        }
    }
    let mut out: Vec<(String, f64)> = scores.into_iter().map(|(id, s)| (id.to_string(), s)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(first_seen[a.0.as_str()].cmp(&first_seen[b.0.as_str()])));
    out
}

/// Hybrid search: the dense top `fetch` and the BM25 top `fetch`, fused by RRF (`k = 60`);
/// returns the best `k` ids with their fused scores.
pub fn hybrid_search(
    store: &dyn VectorStore,
    bm25: &Bm25,
    query_text: &str,
    query_vector: &[f32],
    k: usize,
    fetch: usize,
    filter: Option<&Filter>,
) -> Result<Vec<(String, f64)>> {
    let dense: Vec<String> = store.search(query_vector, fetch, filter)?.into_iter().map(|h| h.id).collect();
    let sparse: Vec<String> = bm25.search(query_text, fetch).into_iter().map(|(id, _)| id).collect();
    let mut fused = reciprocal_rank_fusion(&[dense, sparse], 60.0);
    fused.truncate(k);
    Ok(fused)
}
