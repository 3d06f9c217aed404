//! Transformer building blocks, one module each, generic over the backend.

pub mod attention;
pub mod embedding;
pub(crate) mod host_attention;
pub(crate) mod host_dense;
pub mod kv_cache;
pub mod linear;
pub mod lora;
pub mod mask;
pub mod mlp;
pub mod moe;
pub mod rms_norm;
pub mod rope;
mod swiglu;

pub use attention::{Attention, AttentionKernel, PackedAttention};
pub use embedding::TokenEmbedding;
pub use kv_cache::KvCache;
pub use linear::Linear;
pub use lora::LoraAdapter;
pub use mask::MaskSpec;
pub use mlp::Mlp;
pub use moe::{MoeOutput, SparseMoe};
pub use rms_norm::RmsNorm;
pub use rope::{apply_rotary, RopeTables, RotaryEmbedding};
