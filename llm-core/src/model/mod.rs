//! The causal language model and its decoder layer.

pub mod arch;
mod causal_lm;
pub mod checkpoint;
mod decoder;
mod host_step;
pub(crate) mod init;
mod layers;
pub mod on_pool;
mod packed;

pub use causal_lm::{CausalLm, ModelInput, ModelOutput};
pub use arch::{LinearId, LinearInput, LinearSlot};
pub use decoder::{DecoderLayer, FeedForward};
pub use layers::LayerContext;
pub use packed::PackedSequence;
