//! The answer step: pack retrieved chunks and generate with citations ([`pipeline`]), with
//! what earlier exchanges to show the model ([`memory`]) and the prompt-injection defences the
//! prompt uses ([`defences`]).

pub mod defences;
pub mod memory;
pub mod pipeline;
