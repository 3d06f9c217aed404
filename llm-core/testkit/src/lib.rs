//! Test helpers shared by the `llm` crates' test binaries (one per crate, a module per test
//! file): where the fixtures are, how to read them, how to compare against them, and
//! [`backend_test!`], which runs one generic test body on every compiled-in backend.
//!
//! Dev-only (`publish = false`): library crates list it under `[dev-dependencies]`.
#![warn(missing_docs)]

mod backend;
mod compare;
mod crash;
mod fixtures;
#[cfg(debug_assertions)]
mod instances;
pub mod throughput;

pub use backend::{logits_tol, run_test, TestBackend};
pub use compare::{assert_close, assert_rel, ids_tensor, to_vec};
pub use crash::{assert_writes_survive_kills, crash_child_writes, kill_child_after};
#[cfg(debug_assertions)]
#[doc(hidden)]
pub use instances::shared_instances;
pub use fixtures::{fixture, json_ids, read_f32, read_json, read_tensor, repo_path, smollm2_gguf, temp_dir, temp_path};

/// The crate the [`backend_test!`] expansion names its backends through (so that callers need
/// not depend on `llm-core` under that exact name).
#[doc(hidden)]
pub use llm_core as __llm_core;
