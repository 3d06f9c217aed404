//! The backward pass of a step run with per-layer gradient checkpointing (see
//! [`llm_core::model::checkpoint`]): after the loss's own backward pass, every recorded forward
//! pass is walked top-down, one layer recomputed at a time.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use std::sync::Arc;

use burn::module::AutodiffModule;
use llm_core::model::checkpoint::{CheckpointTape, GraphFreeLayers};
use llm_core::model::{DecoderLayer, LayerContext};
use llm_core::nn::AttentionKernel;
use llm_core::CausalLm;

use crate::params::{gradients, param_infos, Gradients};

/// Adds the parameter gradients of every layer (and of a trainable embedding) to `acc`,
/// starting from each segment's output gradient in `grads`. Segments whose output got no
/// gradient (a detached reference pass) are dropped.
pub(super) fn backward_through_layers<B: AutodiffBackend>(
    model: &CausalLm<B>,
    tape: &CheckpointTape,
    grads: &B::Gradients,
    acc: &mut Gradients<B::InnerBackend>,
) {
    let embedding_trains = param_infos(model).iter().any(|p| p.trainable && p.name == llm_core::model::arch::EMBED.0);
    for segment in tape.take::<B>() {
        let Some(mut upstream) = segment.output.grad(grads) else { continue };
        for (layer, input) in model.layers.iter().zip(segment.inputs).rev() {
            let input = input.require_grad();
            let (y, _) = layer.forward(input.clone(), &segment.context.rope, segment.context.mask(layer), None);
            // d(Σ y ⊙ g)/dθ = gᵀ ∂y/∂θ: the chain rule through this layer alone.
            let layer_grads = (y * Tensor::from_inner(upstream)).sum().backward();
            add(acc, gradients(model, &layer_grads));
            upstream = input.grad(&layer_grads).expect("the layer input requires gradients");
        }
        if embedding_trains {
            let embed_grads = (segment.embedded * Tensor::from_inner(upstream)).sum().backward();
            add(acc, gradients(model, &embed_grads));
        }
    }
}

/// A tape whose forward passes run the layers on the inner backend (no graph at all), with
/// the adapters' dropout seeds of `model`, dropout applied and attention decomposed as under
/// autodiff, so the recomputation sees the same values bit for bit.
pub(super) fn checkpoint_tape<B: AutodiffBackend>(model: &CausalLm<B>) -> CheckpointTape {
    let mut inner = model.valid();
    let adapted: Vec<String> = inner.linears().into_iter().filter(|(_, l)| l.lora.is_some()).map(|(n, _)| n).collect();
    for name in adapted {
        if let Some(lora) = inner.linear_mut(&name).and_then(|l| l.lora.as_mut()) {
            lora.force_dropout = true;
        }
    }
    let mut layers: Vec<DecoderLayer<B::InnerBackend>> = inner.layers;
    for layer in &mut layers {
        // Autodiff runs Burn's decomposed attention where the CPU backend has a fused kernel.
        if layer.self_attn.kernel == AttentionKernel::Fused {
            layer.self_attn.kernel = AttentionKernel::Decomposed;
        }
    }
    let run: GraphFreeLayers<B> = Arc::new(move |x: Tensor<B, 3>, context: &LayerContext<B>| {
        let context = context.inner();
        let mut x = x.inner();
        let mut states = vec![Tensor::from_inner(x.clone())];
        for layer in &layers {
            x = layer.forward(x, &context.rope, context.mask(layer), None).0;
            states.push(Tensor::from_inner(x.clone()));
        }
        states
    });
    CheckpointTape::with_layers(run)
}

/// `acc += new`, by parameter name.
pub(super) fn add<B: burn::tensor::backend::Backend>(acc: &mut Gradients<B>, new: Gradients<B>) {
    for (name, g) in new {
        let g = match acc.remove(&name) {
            Some(prev) => prev + g,
            None => g,
        };
        acc.insert(name, g);
    }
}
