//! `llm-rag`: retrieval-augmented generation around `llm-core` models.
//!
//! - [`embed`]: sentence embeddings from a BERT-family encoder in Burn, loaded from a
//!   sentence-transformers directory (all-MiniLM-L6-v2 by default), behind [`embed::Embedder`].
//! - [`split`]: LangChain's recursive character splitter (characters or tokens), with offsets.
//!
//! Planned next (see the project's RAG issue): document loaders, Markdown-header and token
//! window splitters, vector stores (embedded exact/HNSW with crash-safe persistence, and a
//! server-backed one), retrievers with query transformation and fusion, the pipeline, and local
//! RAG evaluation.
#![warn(missing_docs)]

pub mod embed;
pub mod error;
pub mod split;

pub use error::{RagError, Result};
pub use llm_core;
