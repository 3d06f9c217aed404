//! `llm-rag`: retrieval-augmented generation around `llm-core` models, one folder per stage
//! of the pipeline (as `tokenizers` lays out its stages):
//!
//! - [`load`]: documents and LangChain-style loaders: text, Markdown and HTML by heading
//!   sections, JSON/JSONL by jq-style paths, PDF pages; directory walks with globs and
//!   per-file errors; line corpora.
//! - [`split`]: LangChain's recursive character splitter (characters or tokens of any
//!   llm-core tokenizer) and Markdown-header splitter, with offsets; fixed token windows with
//!   overlap ([`split::window`], LangChain's `TokenTextSplitter`).
//! - [`embed`]: sentence embeddings from a BERT-family encoder in Burn, loaded from a
//!   sentence-transformers directory (all-MiniLM-L6-v2 by default), behind [`embed::Embedder`].
//! - [`store`]: the [`store::VectorStore`] trait, the embedded exact store with crash-safe
//!   persistence, the same trait on a Chroma server ([`store::chroma`]), and approximate
//!   search (HNSW, M 32, [`store::hnsw`]).
//! - [`retrieve`]: BM25 (as rank_bm25), reciprocal rank fusion, hybrid dense + keyword search;
//!   MMR, multi-query, HyDE, RAG-fusion and an LLM-judged re-ranker ([`retrieve::query`]);
//!   parent-document retrieval ([`retrieve::parent`]).
//! - [`answer`]: context packing into a token budget, numbered sources fenced as data,
//!   generation with any llm-core model, citations ([`answer::pipeline`]); conversation memory
//!   ([`answer::memory`]); the prompt-injection defences, switchable ([`answer::defences`]).
//! - [`eval`]: hit-rate@k, MRR, nDCG@k; Ragas' context precision, context recall,
//!   faithfulness and answer relevancy with a local judge.
//! - [`redteam`]: prompt-injection and jailbreak cases run with and without the defences,
//!   attack success rates, a Markdown report.
//!
//! The modules' former flat paths (`llm_rag::docs`, `chroma`, `hnsw`, `window`, `query`,
//! `parent`, `pipeline`, `memory`) stay as re-exports.
#![warn(missing_docs)]

pub mod answer;
pub mod embed;
pub mod error;
pub mod eval;
pub mod load;
pub mod redteam;
pub mod retrieve;
pub mod split;
pub mod store;

pub use answer::{memory, pipeline};
pub use load as docs;
pub use retrieve::{parent, query};
pub use split::window;
pub use store::{chroma, hnsw};

pub use error::{RagError, Result};
pub use llm_core;
