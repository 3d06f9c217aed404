//! `llm-rag`: retrieval-augmented generation around `llm-core` models.
//!
//! Planned scope (see the project's RAG issue): document loaders, LangChain-compatible
//! splitters, a BERT-family embedding model (all-MiniLM-L6-v2 by default), vector stores
//! (embedded exact/HNSW with crash-safe persistence, and a server-backed one), retrievers with
//! query transformation and fusion, the pipeline, and local RAG evaluation.
#![warn(missing_docs)]

pub use llm_core;
