//! llm-core's integration tests: one binary, a module per concept (`cargo test -p llm-core
//! --test core`; one group: `cargo test -p llm-core --test core tiny_llama_parity::`).
//! Helpers come from `llm-testkit`; parity tests run once per compiled-in backend.

mod atomic_writer;
mod bad_inputs;
mod bigbench_tasks;
mod build_then_load;
mod checkpoint_formats;
mod constrained;
mod eval_harness;
mod eval_task_errors;
mod context_length;
mod generate_parity;
mod ggml_blocks;
mod judge;
mod lm_eval_parity;
mod lora_adapter;
mod packed_forward;
mod quantized_checkpoints;
mod serve;
mod smollm2_gguf_parity;
mod speculative;
mod template_limits;
mod text_metrics;
mod throughput;
mod tiny_llama_parity;
mod tool_calls;
mod tokenizer_parity;
