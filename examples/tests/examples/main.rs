//! The examples' library code against the references: one binary, a module per example
//! (`cargo test -p llm-examples --test examples`).

mod logits_example;
mod serve_clients;
