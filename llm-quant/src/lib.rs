//! `llm-quant`: the algorithms and files that *make* quantized weights for `llm-core` models.
//!
//! Planned scope (see the project's quantization issue): absmax and zero-point int8 per
//! tensor/row/group with torch's round-half-to-even, LLM.int8() with outlier columns, NF4/FP4
//! with bitsandbytes' code tables and double quantization, GPTQ (calibration through the
//! model's own forward, lazy block updates, act-order, groups), and GPTQModel/AutoGPTQ
//! checkpoint I/O. It depends on `llm-core` only; `llm-core` runs what this crate produces.
#![warn(missing_docs)]

pub use llm_core;
