//! Sentence embeddings: a BERT-family encoder in Burn loaded from a sentence-transformers
//! directory (all-MiniLM-L6-v2 by default, fetched by `scripts/fetch-models.sh`), behind the
//! [`Embedder`] trait so other models plug in.

pub mod bert;
pub mod sentence;

pub use bert::{BertConfig, BertModel};
pub use sentence::{Pooling, SentenceTransformer};

use crate::error::Result;

/// Turns texts into vectors.
pub trait Embedder {
    /// Vector width.
    fn dim(&self) -> usize;
    /// One vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// The default embedding model directory: `<cache>/all-MiniLM-L6-v2`.
pub fn default_model_dir() -> std::path::PathBuf {
    llm_core::weights::cache_dir().join("all-MiniLM-L6-v2")
}

/// Dot product in 8 independent lanes, which the compiler turns into SIMD (a plain `sum()` must
/// add in order and stays scalar: 4-5x slower at 384 dimensions).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len(), "dot of vectors of different lengths");
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `v / |v|` (a zero vector stays zero): what cosine search compares.
pub fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n == 0.0 {
        v.to_vec()
    } else {
        v.iter().map(|x| x / n).collect()
    }
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    // Vectors of different lengths are compared over the shorter one.
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (na, nb) = (dot(a, a).sqrt(), dot(b, b).sqrt());
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot(a, b) / (na * nb)
    }
}
