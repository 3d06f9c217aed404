//! SwiGLU's product `silu(gate) · up` as one autodiff op.
//!
//! Composed from Burn's ops, autodiff saves four tensors of the feed-forward width per token
//! (the gate, its sigmoid, the silu and the up projection) for the backward pass; this op saves
//! the gate and the up projection only and recomputes the sigmoid in its backward pass:
//! `∂up = ∂y · silu(g)`, `∂gate = ∂y · up · (σ(g) + silu(g)·(1 − σ(g)))`. The forward values are
//! those of the composed ops, bit for bit; the gradients agree to f32 rounding.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{binary, Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

/// `silu(gate) · up`. gate, up: `[..., d_ff]` (same shape) -> `[..., d_ff]`.
pub fn swiglu<B: Backend, const D: usize>(gate: Tensor<B, D>, up: Tensor<B, D>) -> Tensor<B, D> {
    crate::autodiff::on_autodiff!(B, Inner, {
        let gate: Tensor<Autodiff<Inner>, D> = crate::autodiff::cast(gate);
        let up: Tensor<Autodiff<Inner>, D> = crate::autodiff::cast(up);
        return crate::autodiff::cast(fused(gate, up));
    });
    silu(gate) * up
}

#[derive(Debug)]
struct SwigluBackward<const D: usize>;

impl<B: Backend, const D: usize> Backward<B, 2> for SwigluBackward<D> {
    /// The gate and the up projection.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let (gate, up) = ops.state;
        let sigmoid = B::sigmoid(gate.clone());
        let silu = B::float_mul(gate, sigmoid.clone());
        let for_gate = (sigmoid, silu.clone(), up);
        binary::<B, _, _>(
            ops.parents,
            ops.node,
            grads,
            move |grad| {
                let (s, silu, up) = for_gate;
                // dsilu/dg = σ + silu·(1 − σ)
                let one_minus_s = B::float_add_scalar(B::float_neg(s.clone()), 1.0f32.into());
                let slope = B::float_add(s, B::float_mul(silu, one_minus_s));
                B::float_mul(B::float_mul(grad, up), slope)
            },
            move |grad| B::float_mul(grad, silu),
        );
    }
}

fn fused<B: Backend, C: CheckpointStrategy, const D: usize>(gate: Tensor<Autodiff<B, C>, D>, up: Tensor<Autodiff<B, C>, D>) -> Tensor<Autodiff<B, C>, D> {
    let (gate, up) = (gate.into_primitive().tensor(), up.into_primitive().tensor());
    let forward = |g: &FloatTensor<B>, u: &FloatTensor<B>| {
        let g = Tensor::<B, D>::from_primitive(TensorPrimitive::Float(g.clone()));
        let u = Tensor::<B, D>::from_primitive(TensorPrimitive::Float(u.clone()));
        (silu(g) * u).into_primitive().tensor()
    };
    let y = match SwigluBackward::<D>.prepare::<C>([gate.node.clone(), up.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = forward(&gate.primitive, &up.primitive);
            prep.finish((gate.primitive, up.primitive), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(&gate.primitive, &up.primitive)),
    };
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::Distribution;

    use super::*;

    type Ad = Autodiff<Flex>;

    #[test]
    fn values_equal_the_composed_ops_and_gradients_agree_to_rounding() {
        let device = Default::default();
        let g0 = Tensor::<Flex, 3>::random([2, 5, 16], Distribution::Normal(0.0, 3.0), &device);
        let u0 = Tensor::<Flex, 3>::random([2, 5, 16], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused_op: bool| {
            let (g, u) = (Tensor::<Ad, 3>::from_inner(g0.clone()).require_grad(), Tensor::<Ad, 3>::from_inner(u0.clone()).require_grad());
            // Non-leaf inputs, as the projections are.
            let (gh, uh) = (g.clone() * 1.5, u.clone() * 0.5);
            let y = if fused_op { swiglu(gh, uh) } else { silu(gh) * uh };
            let grads = (y.clone() * y.clone()).sum().backward();
            let host = |t: Tensor<Flex, 3>| t.into_data().to_vec::<f32>().unwrap();
            (host(y.inner()), host(g.grad(&grads).unwrap()), host(u.grad(&grads).unwrap()))
        };
        let ((y, gg, gu), (y_ref, gg_ref, gu_ref)) = (run(true), run(false));
        assert_eq!(y, y_ref, "the forward values are the composed ops' bit for bit");
        for (what, a, b) in [("gate", &gg, &gg_ref), ("up", &gu, &gu_ref)] {
            let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
            let gap = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(gap <= 1e-6 * scale, "{what} gradient differs by {gap} (max {scale})");
        }
    }

    #[test]
    fn plain_backends_run_the_composed_ops() {
        let device = Default::default();
        let g = Tensor::<Flex, 2>::random([3, 8], Distribution::Normal(0.0, 2.0), &device);
        let u = Tensor::<Flex, 2>::random([3, 8], Distribution::Normal(0.0, 1.0), &device);
        let want = (silu(g.clone()) * u.clone()).into_data();
        assert_eq!(swiglu(g, u).into_data(), want);
    }
}
