//! Approximate nearest-neighbour search: an HNSW graph (instant-distance, M = 32) over unit
//! vectors with cosine similarity, built from a [`crate::store::FlatStore`] or any vectors.
//! `benches/benches/index.rs` measures its recall@10 and queries/s against faiss-cpu's HNSW.

use instant_distance::{Builder, HnswMap, Point, Search};

use crate::embed::dot;
use crate::store::FlatStore;

/// A unit vector; distance `1 − cos`.
#[derive(Clone, Debug)]
struct Unit(Vec<f32>);

impl Point for Unit {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

fn unit(v: &[f32]) -> Unit {
    Unit(crate::embed::unit(v))
}

/// HNSW build and search settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Candidate list while inserting (quality of the graph).
    pub ef_construction: usize,
    /// Candidate list while searching (recall vs speed); at least `k`.
    pub ef_search: usize,
    /// Seeds the level draw, so builds repeat.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self { ef_construction: 100, ef_search: 64, seed: 0 }
    }
}

/// An HNSW index over `(id, vector)` pairs.
pub struct HnswIndex {
    map: HnswMap<Unit, usize>,
    ids: Vec<String>,
}

impl HnswIndex {
    /// Builds the graph (vectors are normalised; ids keep their order).
    pub fn build(ids: Vec<String>, vectors: &[Vec<f32>], params: HnswParams) -> Self {
        let points: Vec<Unit> = vectors.iter().map(|v| unit(v)).collect();
        let values: Vec<usize> = (0..points.len()).collect();
        let map = Builder::default()
            .ef_construction(params.ef_construction)
            .ef_search(params.ef_search)
            .seed(params.seed)
            .build(points, values);
        Self { map, ids }
    }

    /// An index over every record of `store`.
    pub fn from_store(store: &FlatStore, params: HnswParams) -> Self {
        let ids = store.records().iter().map(|r| r.id.clone()).collect();
        let vectors: Vec<Vec<f32>> = store.records().iter().map(|r| r.vector.clone()).collect();
        Self::build(ids, &vectors, params)
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The (approximately) `k` most similar ids with their cosine similarity, best first;
    /// `k` is capped by `ef_search`.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(String, f32)> {
        let mut search = Search::default();
        self.map
            .search(&unit(query), &mut search)
            .take(k)
            .map(|item| (self.ids[*item.value].clone(), 1.0 - item.distance))
            .collect()
    }
}

/// Exact top-`k` row indices of `base` for `query` by cosine (the reference for recall).
pub fn exact_top_k(base: &[Vec<f32>], query: &[f32], k: usize) -> Vec<usize> {
    let q = unit(query);
    let mut scored: Vec<(f32, usize)> = base.iter().enumerate().map(|(i, v)| (1.0 - unit(v).distance(&q), i)).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}
