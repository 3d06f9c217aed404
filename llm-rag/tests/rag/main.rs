//! llm-rag's integration tests: one binary, a module per concept (`cargo test -p llm-rag --test
//! rag`; one group: `cargo test -p llm-rag --test rag chroma_store::`). Test data for the
//! loaders and splitters is in `tests/data`.

mod store_suite;

mod chroma_store;
mod embed_parity;
mod flat_store;
mod hnsw;
mod loaders;
mod memory;
mod parent;
mod query;
mod ragas;
mod redteam;
mod retrieve;
mod split_langchain;
mod token_window;
