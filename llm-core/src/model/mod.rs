//! The causal language model and its decoder layer.

mod causal_lm;
mod decoder;
mod layers;

pub use causal_lm::{CausalLm, ModelInput, ModelOutput};
pub use decoder::{DecoderLayer, FeedForward, LinearInput};
pub use layers::LayerContext;
