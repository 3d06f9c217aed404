//! llm-quant's integration tests: one binary, a module per concept (`cargo test -p llm-quant
//! --test quant`; one group: `cargo test -p llm-quant --test quant gptq_solver::`).

mod awq;
mod bad_inputs;
mod crash_writers;
mod formats_round_trip;
mod gguf_blocks;
mod gguf_export;
mod gguf_imatrix;
mod gptq_checkpoint;
mod gptq_solver;
mod hqq;
mod int8_nf4_fixtures;
