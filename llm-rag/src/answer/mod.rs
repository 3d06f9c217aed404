//! The answer step: pack retrieved chunks and generate with citations ([`pipeline`]), with
//! what earlier exchanges to show the model ([`memory`]).

pub mod memory;
pub mod pipeline;
