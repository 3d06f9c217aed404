//! Retrieval metrics on labelled queries: hit-rate@k, MRR and nDCG@k (binary relevance); and
//! Ragas' LLM-judged RAG metrics, computed locally with any [`Llm`] as the judge and any
//! [`Embedder`]: context precision, context recall, faithfulness and answer relevancy.
//!
//! The judge's replies are read leniently ([`parse_verdicts`]: JSON as Ragas asks for it, or
//! `yes`/`no`, `1`/`0`, `Verdict: ...` lines). A reply that cannot be read is asked once more,
//! then counted as unparsed and scored 0; a sample with nothing to judge (no contexts, zero
//! statements) scores 0 with [`Score::empty`] set. No score is ever NaN, where Ragas gives NaN
//! for both.
//!
//! - [`retrieval`]: the retrieval metrics.
//! - [`judge`]: Ragas' samples, scores and the judge that computes them.
//! - [`prompts`]: Ragas' prompts, in its layout.
//! - [`parse`]: reading the judge's replies (verdicts, statements, questions) and sentences.

pub mod judge;
pub mod parse;
mod prompts;
pub mod retrieval;

pub use judge::*;
pub use parse::{parse_question, parse_statements, parse_verdict, parse_verdicts, sentences};
pub use retrieval::*;
