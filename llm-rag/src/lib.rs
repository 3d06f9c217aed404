//! `llm-rag`: retrieval-augmented generation around `llm-core` models.
//!
//! - [`embed`]: sentence embeddings from a BERT-family encoder in Burn, loaded from a
//!   sentence-transformers directory (all-MiniLM-L6-v2 by default), behind [`embed::Embedder`].
//! - [`split`]: LangChain's recursive character splitter (characters or tokens of any
//!   llm-core tokenizer) and Markdown-header splitter, with offsets.
//! - [`window`]: fixed token windows with overlap (LangChain's `TokenTextSplitter`), each an
//!   exact span of the source.
//! - [`store`]: the [`store::VectorStore`] trait and the embedded exact store with crash-safe
//!   persistence.
//! - [`chroma`]: the same trait on a Chroma server (HTTP API v2), for collections that
//!   outgrow one process.
//! - [`docs`]: documents and LangChain-style loaders: text, Markdown and HTML by heading
//!   sections, JSON/JSONL by jq-style paths, PDF pages; directory walks with globs and
//!   per-file errors; line corpora.
//! - [`pipeline`]: context packing into a token budget, numbered sources fenced as data,
//!   generation with any llm-core model, citations.
//! - [`query`]: MMR, multi-query, HyDE, RAG-fusion and an LLM-judged re-ranker, over an
//!   [`query::Llm`] (any llm-core chat model, or a closure).
//! - [`eval`]: hit-rate@k, MRR, nDCG@k; Ragas' context precision, context recall,
//!   faithfulness and answer relevancy with a local judge.
//! - [`parent`]: parent-document retrieval (search small children, return their parents).
//! - [`memory`]: conversation memory for the answer step: a window of exchanges, or a token
//!   budget with older exchanges folded into an LLM-written summary.
//! - [`hnsw`]: approximate search (HNSW, M 32) over the store's vectors.
//! - [`retrieve`]: BM25 (as rank_bm25), reciprocal rank fusion, hybrid dense + keyword search.
#![warn(missing_docs)]

pub mod chroma;
pub mod docs;
pub mod embed;
pub mod error;
pub mod eval;
pub mod hnsw;
pub mod memory;
pub mod parent;
pub mod pipeline;
pub mod query;
pub mod retrieve;
pub mod split;
pub mod store;
pub mod window;

pub use error::{RagError, Result};
pub use llm_core;
