//! `llm-rag`: retrieval-augmented generation around `llm-core` models.
//!
//! - [`embed`]: sentence embeddings from a BERT-family encoder in Burn, loaded from a
//!   sentence-transformers directory (all-MiniLM-L6-v2 by default), behind [`embed::Embedder`].
//! - [`split`]: LangChain's recursive character splitter (characters or tokens), with offsets.
//! - [`store`]: the [`store::VectorStore`] trait and the embedded exact store with crash-safe
//!   persistence.
//! - [`docs`]: documents, text/Markdown directory walks and line corpora with per-file errors.
//! - [`pipeline`]: context packing into a token budget, numbered sources fenced as data,
//!   generation with any llm-core model, citations.
//! - [`query`]: MMR, multi-query, HyDE, RAG-fusion and an LLM-judged re-ranker, over an
//!   [`query::Llm`] (any llm-core chat model, or a closure).
//! - [`eval`]: hit-rate@k, MRR, nDCG@k.
//! - [`hnsw`]: approximate search (HNSW, M 32) over the store's vectors.
//! - [`retrieve`]: BM25 (as rank_bm25), reciprocal rank fusion, hybrid dense + keyword search.
//!
//! Planned next (see the project's RAG issue): document loaders, Markdown-header and token
//! window splitters, a server-backed store, parent-document retrieval, the pipeline, and local RAG evaluation.
#![warn(missing_docs)]

pub mod docs;
pub mod embed;
pub mod error;
pub mod eval;
pub mod hnsw;
pub mod pipeline;
pub mod query;
pub mod retrieve;
pub mod split;
pub mod store;

pub use error::{RagError, Result};
pub use llm_core;
