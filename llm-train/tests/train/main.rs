//! llm-train's integration tests: one binary, a module per concept (`cargo test -p llm-train
//! --test train`; one group: `cargo test -p llm-train --test train sft_parity::`).

mod common;

mod abliterate;
mod checkpointing;
mod crash_writers;
mod data_parallel;
mod lora_peft;
mod merge;
mod preference;
mod qlora;
mod sft_data;
mod sft_parity;
mod trainer_loop;
