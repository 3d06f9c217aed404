//! `llm-quant`: the algorithms and files that *make* quantized weights for `llm-core` models.
//!
//! - [`int8`]: absmax and zero-point int8 per tensor / row / group (torch's round-half-to-even),
//!   and LLM.int8()'s vector-wise quantization with outlier columns.
//! - [`nf4`]: NF4 and FP4 with bitsandbytes' code tables, block 64, its packing, and double
//!   quantization of the absmax (block 256).
//! - [`gptq`]: GPTQ with calibration through the model's own forward, lazy block updates,
//!   groups, sym/asym, act-order and static groups, sequential layer-by-layer quantization;
//!   a Hessian that is not positive definite raises the damping and says so.
//! - [`awq`]: AWQ with its activation-aware scale search and weight clipping on calibration
//!   text, layer by layer as AutoAWQ runs it; checkpoints in AutoAWQ's GEMM layout.
//! - [`gguf`]: GGUF files llama.cpp runs: ggml's quantizers for every legacy and K-quant type
//!   (byte for byte as llama.cpp's), llama-quantize's file types (`Q4_K_M`...), the tokenizer
//!   as metadata, streamed export of any model llm-core loads.
//! - [`hqq`]: HQQ, calibration-free half-quadratic quantization at 1-8 bits (hqq's proximal
//!   solver for the zero points), in transformers' HQQ checkpoint layout.
//! - [`method`]: the calibration-free methods applied to a whole model.
//! - [`save`]: checkpoints in GPTQModel/AutoGPTQ, bitsandbytes (transformers) and this
//!   family's int8 layouts, which `llm_core::weights::load_model` reads back.
//!
//! It depends on `llm-core` only; `llm-core` runs what this crate produces.
#![warn(missing_docs)]

pub mod awq;
pub mod calib;
pub mod error;
pub mod gguf;
pub mod gptq;
pub mod hqq;
pub mod int8;
pub mod method;
pub mod nf4;
pub mod save;

pub use awq::{quantize_awq, quantize_weight_awq, AwqConfig, AwqReport};
pub use calib::Calibration;
pub use error::{QuantError, Result};
pub use gptq::{quantize_gptq, GptqConfig, GptqParams, GptqReport};
pub use method::{quantize_model, quantize_weight, Method};
pub use save::{save_model, save_quantized, SaveReport};

pub use llm_core;
