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

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}
