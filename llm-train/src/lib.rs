//! `llm-train`: fine-tuning `llm-core` models on Burn's autodiff backends.
//!
//! Planned scope (see the project's training issues): LoRA/QLoRA adapters with PEFT-compatible
//! files, full fine-tuning, SFT with completion-only loss and packing, DPO and ORPO, AdamW with
//! schedules, clipping, accumulation and exact resume. It builds on `llm-core` and, for QLoRA's
//! NF4 base, `llm-quant`.
#![warn(missing_docs)]

pub use llm_core;
pub use llm_quant;
