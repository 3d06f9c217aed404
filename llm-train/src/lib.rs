//! `llm-train`: fine-tuning `llm-core` models on Burn's autodiff backends.
//!
//! - [`lora`]: LoRA adapters on layers chosen by name, `all-linear` or regex, with peft's
//!   initialisation; [`qlora`]: the NF4 base and the merge-base choice.
//! - [`peft`]: writing adapters exactly as peft does (reading is llm-core's
//!   [`llm_core::adapter::PeftAdapter`]) and merged Hugging Face checkpoints.
//! - [`data`] and [`sft`]: JSONL datasets (chat, prompt/completion, Alpaca, text),
//!   completion-only labels from template token spans, padded and packed batches.
//! - [`loss`], [`optim`], [`trainer`]: the token-mean NLL, torch's AdamW and clipping,
//!   schedules, accumulation, evaluation, metrics and exact-resume checkpoints.
//! - [`pref`], [`dpo`], [`orpo`]: preference pairs tokenized as trl does, sequence log-probs,
//!   DPO (sigmoid, robust, hinge, IPO) and ORPO objectives for the same trainer.
//! - [`parallel`]: data-parallel replicas (processes, machines) summing their gradients.
//! - [`params`]: parameters by Hugging Face name (freezing, gradients, updates).
//! - [`abliterate`]: refusal directions, their choice by measured effect, weight
//!   orthogonalisation.
//! - [`merge`]: mergekit-YAML model merging (linear, SLERP, task arithmetic, TIES, DARE, DELLA,
//!   breadcrumbs, passthrough), streamed tensor by tensor into sharded safetensors.
//!
//! ```no_run
//! use burn::backend::{Autodiff, Flex};
//! use llm_core::weights::{load_model, LoadOptions};
//! use llm_train::lora::{attach_lora, LoraSpec, TargetModules};
//! use llm_train::trainer::{TrainConfig, Trainer};
//!
//! type B = Autodiff<Flex>;
//! let model = load_model::<B>("path/to/model", LoadOptions::default(), &Default::default())?;
//! let spec = LoraSpec { r: 8, alpha: 16.0, targets: TargetModules::AllLinear, ..Default::default() };
//! let (model, _modules) = attach_lora(model, &spec, 0)?;
//! let trainer = Trainer::new(model, TrainConfig::default(), 0)?;
//! # Ok::<(), llm_train::TrainError>(())
//! ```
#![warn(missing_docs)]

pub mod abliterate;
pub mod data;
pub mod dpo;
pub mod error;
pub mod lora;
pub mod loss;
pub mod merge;
pub mod objective;
pub mod optim;
pub mod orpo;
pub mod parallel;
pub mod params;
pub mod peft;
pub mod pref;
pub mod qlora;
pub mod sft;
pub mod trainer;

pub use error::{Result, TrainError};
pub use llm_core;
pub use llm_quant;
