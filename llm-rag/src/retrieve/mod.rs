//! Retrieval: keyword search and rank fusion ([`keyword`], re-exported here), retrieval with a
//! language model in the loop ([`query`]), and parent-document retrieval ([`parent`]).

pub mod keyword;
pub mod parent;
pub mod query;

pub use keyword::*;
