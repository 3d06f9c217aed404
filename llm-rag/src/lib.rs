//! `llm-rag`: retrieval-augmented generation around `llm-core` models.
//!
//! - [`embed`]: sentence embeddings from a BERT-family encoder in Burn, loaded from a
//!   sentence-transformers directory (all-MiniLM-L6-v2 by default), behind [`embed::Embedder`].
//!
//! Planned next (see the project's RAG issue): document loaders, LangChain-compatible
//! splitters, vector stores (embedded exact/HNSW with crash-safe persistence, and a
//! server-backed one), retrievers with query transformation and fusion, the pipeline, and local
//! RAG evaluation.
#![warn(missing_docs)]

pub mod embed;
pub mod error;

pub use error::{RagError, Result};
pub use llm_core;
