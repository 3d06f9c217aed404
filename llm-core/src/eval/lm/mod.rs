//! The three request types of lm-eval's `LM` interface, and a model that answers them.
//!
//! A task turns each document into requests; a [`LanguageModel`] answers them in any order it
//! likes (sorted by length, batched) and returns the answers in request order.

mod local;
mod rolling;

pub use local::LocalLm;
pub use rolling::{disjoint_rolling_windows, rolling_token_windows};

use crate::error::Result;

/// `loglikelihood(context, continuation)`: how likely the continuation is after the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoglikelihoodRequest {
    /// The conditioning text (may be empty: the model's prefix token conditions then).
    pub context: String,
    /// The text scored, usually starting with the task's target delimiter.
    pub continuation: String,
}

/// The answer to a [`LoglikelihoodRequest`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loglikelihood {
    /// Sum of the continuation tokens' log-probabilities (natural log).
    pub logprob: f64,
    /// Whether greedy decoding from the context produces exactly the continuation's tokens.
    pub is_greedy: bool,
}

/// `generate_until(context, until, max_gen_toks)`: greedy text after the context.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    /// The prompt.
    pub context: String,
    /// Stop strings: the text is cut before the first occurrence of each (the model's EOS
    /// text is added, as lm-eval does).
    pub until: Vec<String>,
    /// New tokens at most (lm-eval's default is 256).
    pub max_gen_toks: usize,
}

/// A model as lm-eval sees it. Answers come back in request order.
pub trait LanguageModel {
    /// Log-likelihood of each continuation after its context.
    fn loglikelihood(&self, requests: &[LoglikelihoodRequest]) -> Result<Vec<Loglikelihood>>;

    /// Log-likelihood of each whole text, scored in disjoint windows of the model's length
    /// (the first token conditioned on the prefix token), as lm-eval's `loglikelihood_rolling`.
    fn loglikelihood_rolling(&self, texts: &[String]) -> Result<Vec<f64>>;

    /// Greedy continuation of each context, cut at its stop strings.
    fn generate_until(&self, requests: &[GenerateRequest]) -> Result<Vec<String>>;

    /// The model's name for reports.
    fn name(&self) -> String;
}
