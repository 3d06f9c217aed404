//! Retrieval metrics on labelled queries: hit-rate@k, MRR and nDCG@k (binary relevance).

use std::collections::HashSet;

/// Means over queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrievalMetrics {
    /// Queries with a relevant id among the first `k`.
    pub hit_rate: f64,
    /// Mean of `1 / rank` of the first relevant id (0 when none is retrieved).
    pub mrr: f64,
    /// Mean nDCG@k: `Σ_{relevant at rank r ≤ k} 1/log2(r + 1)` over the ideal ordering's value.
    pub ndcg: f64,
    /// The `k`.
    pub k: usize,
    /// Number of queries.
    pub queries: usize,
}

/// Metrics of `ranked[q]` (ids, best first) against `relevant[q]`.
pub fn retrieval_metrics(ranked: &[Vec<String>], relevant: &[HashSet<String>], k: usize) -> RetrievalMetrics {
    let n = ranked.len().min(relevant.len());
    let (mut hit, mut mrr, mut ndcg) = (0.0, 0.0, 0.0);
    for (list, rel) in ranked.iter().zip(relevant).take(n) {
        if let Some(pos) = list.iter().position(|id| rel.contains(id)) {
            mrr += 1.0 / (pos + 1) as f64;
            if pos < k {
                hit += 1.0;
            }
        }
        let dcg: f64 = list.iter().take(k).enumerate().filter(|(_, id)| rel.contains(*id)).map(|(r, _)| 1.0 / ((r + 2) as f64).log2()).sum();
        let ideal: f64 = (0..rel.len().min(k)).map(|r| 1.0 / ((r + 2) as f64).log2()).sum();
        if ideal > 0.0 {
            ndcg += dcg / ideal;
        }
    }
    let d = n.max(1) as f64;
    RetrievalMetrics { hit_rate: hit / d, mrr: mrr / d, ndcg: ndcg / d, k, queries: n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        let ranked = vec![vec!["a".to_string(), "b".into(), "c".into()], vec!["x".to_string(), "y".into(), "z".into()]];
        let relevant = vec![HashSet::from(["b".to_string()]), HashSet::from(["q".to_string()])];
        let m = retrieval_metrics(&ranked, &relevant, 2);
        assert_eq!(m.hit_rate, 0.5);
        assert_eq!(m.mrr, 0.25);
        assert!((m.ndcg - 0.5 / 3f64.log2()).abs() < 1e-12);
    }
}

