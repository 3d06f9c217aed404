//! `llm-core`: Llama-family causal language models on [Burn](https://burn.dev), generic over the
//! backend (Flex on CPU, WGPU/Vulkan, CUDA).
//!
//! - [`config`]: Hugging Face `config.json` (both RoPE spellings) to a validated [`ModelConfig`].
//! - [`nn`]: RMSNorm, rotary embedding (default/linear/dynamic/yarn/llama3), GQA attention,
//!   KV cache, SwiGLU MLP, sparse MoE.
//! - [`model`]: decoder layer and causal LM.
//! - [`weights`]: strict loading from safetensors directories and GGUF files.
//! - [`tokenizer`] and [`chat`]: tokenizers (HF files or GGUF metadata) and chat templates.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use burn::tensor::{Int, Tensor, TensorData};
//! use llm_core::weights::{load_model, LoadOptions};
//!
//! let device = Default::default();
//! let model = load_model::<Flex>("path/to/model", LoadOptions::default(), &device)?;
//! let ids = Tensor::<Flex, 2, Int>::from_data(TensorData::new(vec![1i64, 17, 42], [1, 3]), &device);
//! let logits = model.forward(ids); // [1, 3, vocab_size]
//! # Ok::<(), llm_core::LlmError>(())
//! ```
#![warn(missing_docs)]

mod autodiff;
pub mod adapter;
pub mod backend;
pub mod bundle;
pub mod chat;
pub mod config;
pub mod embed;
pub mod error;
pub mod eval;
pub mod generate;
pub mod io;
pub mod model;
pub mod nn;
pub mod quant;
#[cfg(feature = "serve")]
pub mod serve;
pub mod tokenizer;
pub mod weights;

pub use config::ModelConfig;
pub use error::{LlmError, Result};
pub use model::{CausalLm, ModelInput, ModelOutput};
pub use bundle::ModelBundle;
pub use tokenizer::Tokenizer;
