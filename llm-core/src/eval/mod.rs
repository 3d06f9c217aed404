//! Evaluation: perplexity, lm-eval-compatible benchmark tasks, text metrics, KL divergence
//! between models, and LLM-as-judge grading.
//!
//! - [`perplexity()`]: sliding-window perplexity (transformers' recipe).
//! - [`lm`]: the three request types lm-eval defines (`loglikelihood`,
//!   `loglikelihood_rolling`, `generate_until`) and [`lm::LocalLm`], which answers them with a
//!   [`crate::CausalLm`] and its tokenizer exactly as lm-eval's Hugging Face backend does.
//! - [`task`]: lm-eval's YAML task format over local JSON datasets.
//! - [`harness`]: runs tasks, scores them (acc, acc_norm, acc_bytes, exact_match, perplexities)
//!   and prints lm-eval's results table.
//! - [`metrics`]: BLEU, chrF, TER (sacrebleu), ROUGE (rouge-score), SQuAD EM/F1.
//! - [`kl`]: llama.cpp-style KL divergence and top-token agreement between two models.
//! - [`bigbench`]: BIG-bench `task.json` multiple-choice tasks.
//! - [`judge`]: LLM-as-a-judge as MT-Bench runs it (FastChat's single-answer grading and
//!   position-swapped pairwise comparison), the verdict held to its format by constrained decoding.

pub mod bigbench;
pub mod harness;
pub mod judge;
pub mod kl;
pub mod lm;
pub mod metrics;
pub mod perplexity;
pub mod pyrandom;
pub mod task;

pub use harness::{evaluate_task, results_table, TaskResult};
pub use kl::{kl_divergence, kl_on_sequences, KlReport};
pub use perplexity::{perplexity, PerplexityReport};
