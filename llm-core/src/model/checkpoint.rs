//! Gradient checkpointing per decoder layer (torch's `gradient_checkpointing_enable`): the
//! forward pass of a training step keeps only each layer's input, and the trainer recomputes
//! one layer at a time during the backward pass.
//!
//! With a [`CheckpointTape`] on the model ([`CausalLm::checkpoint`](crate::CausalLm::checkpoint)) and an autodiff backend,
//! [`CausalLm::forward_hidden`](crate::CausalLm::forward_hidden) runs the layers without a graph (through the tape's
//! [`GraphFreeLayers`] on the inner backend; without them, on detached inputs under autodiff,
//! whose graphs Burn frees only when the step ends), so no layer's activations stay in the
//! graph; the final state re-enters the graph as a fresh leaf, and the tape records a [`Segment`] (the layer inputs, their rotary tables and masks,
//! the embedded input and that leaf). After the loss's backward pass gives the leaf's
//! gradient, the trainer walks the layers top-down: re-running layer `i` on its saved input
//! (the same arithmetic, the same dropout masks) and back-propagating the gradient it has
//! reached gives that layer's parameter gradients and the gradient of its input
//! (`llm_train::trainer`, `TrainConfig::gradient_checkpointing`). Peak memory is then the
//! layer inputs plus one layer's activations.

use std::any::Any;
use std::sync::{Arc, Mutex};

use burn::tensor::{backend::Backend, Tensor};

use super::LayerContext;

/// One forward pass recorded for recomputation. All tensors are `[batch, seq, d_model]`.
pub struct Segment<B: Backend> {
    /// The embedded tokens, still in the graph (their backward reaches a trainable embedding).
    pub embedded: Tensor<B, 3>,
    /// The input of each layer, detached.
    pub inputs: Vec<Tensor<B, 3>>,
    /// Rotary tables and masks the layers ran with.
    pub context: LayerContext<B>,
    /// The last layer's output as a leaf that requires gradients: its gradient starts the walk.
    pub output: Tensor<B, 3>,
}

/// Runs every decoder layer without building a graph: the embedded input `[batch, seq,
/// d_model]` and the layers' context -> the input of each layer and the last layer's output
/// (`n_layers + 1` tensors, detached). Made by code that can name the inner backend (the
/// trainer: `AutodiffModule::valid`); without one the layers run on detached inputs under
/// autodiff, and Burn frees their graphs only when the step ends.
pub type GraphFreeLayers<B> = Arc<dyn Fn(Tensor<B, 3>, &LayerContext<B>) -> Vec<Tensor<B, 3>> + Send + Sync>;

/// Where checkpointed forward passes record their [`Segment`]s; clones share one tape.
#[derive(Clone, Default)]
pub struct CheckpointTape {
    segments: Arc<Mutex<Vec<Box<dyn Any + Send>>>>,
    layers: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for CheckpointTape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointTape({} segments)", self.lock().len())
    }
}

impl CheckpointTape {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn Any + Send>>> {
        self.segments.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A tape whose forward passes run the layers through `layers` (see [`GraphFreeLayers`]).
    pub fn with_layers<B: Backend>(layers: GraphFreeLayers<B>) -> Self {
        Self { segments: Default::default(), layers: Some(Arc::new(layers)) }
    }

    pub(crate) fn graph_free_layers<B: Backend>(&self) -> Option<&GraphFreeLayers<B>> {
        self.layers.as_ref()?.downcast_ref::<GraphFreeLayers<B>>()
    }

    pub(crate) fn record<B: Backend>(&self, segment: Segment<B>) {
        self.lock().push(Box::new(segment));
    }

    /// The segments recorded since the last call, oldest first (those of another backend type
    /// are dropped).
    pub fn take<B: Backend>(&self) -> Vec<Segment<B>> {
        std::mem::take(&mut *self.lock()).into_iter().filter_map(|s| s.downcast::<Segment<B>>().ok().map(|s| *s)).collect()
    }
}
