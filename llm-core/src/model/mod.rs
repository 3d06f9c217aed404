//! The causal language model and its decoder layer.

mod causal_lm;
mod decoder;

pub use causal_lm::{CausalLm, ModelInput, ModelOutput};
pub use decoder::{DecoderLayer, FeedForward};
