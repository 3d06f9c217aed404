//! `x · Wᵀ` against a frozen quantized weight under autodiff, as bitsandbytes' QLoRA does it:
//! the weight is dequantized for the forward pass and again for the backward pass, never kept
//! in the graph.
//!
//! Burn's own matmul saves its right operand for the input's gradient, so a layer that
//! dequantizes and multiplies keeps a float copy of every weight alive from the forward pass
//! until the backward pass reaches it: a QLoRA step then holds as much float weight as a LoRA
//! step. [`frozen_matmul`] is a custom autodiff op whose saved state is the codes (shared, not
//! copied); its backward computes `∂x = ∂y · W` with a fresh dequantization, dropped at once.
//! The weight has no gradient (it is frozen), so none is computed for it.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorPrimitive};

use super::QuantizedWeight;

/// The frozen weight as the op rebuilds it: codes on the host, the float dtype and device of
/// the dequantized `[d_out, d_in]` tensor.
#[derive(Clone)]
pub struct FrozenWeight<B: Backend> {
    /// The codes and statistics.
    pub weight: Arc<QuantizedWeight>,
    /// Float dtype of the dequantized weight.
    pub dtype: DType,
    /// Where it is placed.
    pub device: B::Device,
}

impl<B: Backend> std::fmt::Debug for FrozenWeight<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrozenWeight{:?}", self.weight.dims())
    }
}

impl<B: Backend> FrozenWeight<B> {
    /// `[d_out, d_in]`, dequantized now.
    fn dequantize(&self) -> FloatTensor<B> {
        super::linear::dequantized::<B>(&self.weight, self.dtype, &self.device).into_primitive().tensor()
    }
}

#[derive(Debug)]
struct FrozenMatmulBackward;

impl<B: Backend> Backward<B, 1> for FrozenMatmulBackward {
    type State = FrozenWeight<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let weight = ops.state;
        // ∂x [rows, d_in] = ∂y [rows, d_out] · W [d_out, d_in]; W lives for this product only.
        unary::<B, _>(ops.parents, ops.node, grads, |grad| B::float_matmul(grad, weight.dequantize()));
    }
}

/// x: `[rows, d_in]` -> `[rows, d_out]` = `x · Wᵀ`, the gradient flowing to `x` only and `W`
/// not saved for the backward pass (see the module docs).
pub fn frozen_matmul<B: Backend, C: CheckpointStrategy>(x: Tensor<Autodiff<B, C>, 2>, weight: FrozenWeight<B>) -> Tensor<Autodiff<B, C>, 2> {
    let x = x.into_primitive().tensor();
    let forward = |x: FloatTensor<B>, w: &FrozenWeight<B>| B::float_matmul(x, B::float_transpose(w.dequantize()));
    let y = match FrozenMatmulBackward.prepare::<C>([x.node.clone()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let y = forward(x.primitive, &weight);
            prep.finish(weight, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive, &weight)),
    };
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// [`frozen_matmul`] when `B` is `Autodiff` over one of the backends compiled in (with Burn's
/// default checkpointing), else `x` back unchanged for the caller's own path. Code generic
/// over `B: Backend` reaches the op through this: Rust has no specialisation, so the type is
/// matched at run time (a `TypeId` comparison per call).
///
/// x: `[rows, d_in]` -> `[rows, d_out]`.
pub(crate) fn try_frozen_matmul<B: Backend>(
    x: Tensor<B, 2>,
    weight: &Arc<QuantizedWeight>,
    dtype: DType,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    crate::autodiff::on_autodiff!(B, Inner, {
        let x: Tensor<Autodiff<Inner>, 2> = crate::autodiff::cast(x);
        let frozen = FrozenWeight { weight: weight.clone(), dtype, device: x.device() };
        return Ok(crate::autodiff::cast(frozen_matmul(x, frozen)));
    });
    let _ = (weight, dtype);
    Err(x)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::{Distribution, TensorData};

    use super::*;
    use crate::quant::{Fp4Kind, Fp4Weight};

    type Ad = Autodiff<Flex>;

    fn nf4() -> Arc<QuantizedWeight> {
        let packed: Vec<u8> = (0..12u8).map(|i| i.wrapping_mul(37).wrapping_add(5)).collect();
        let w = Fp4Weight::new(Fp4Kind::Nf4, Fp4Kind::Nf4.code_table(), 3, 8, 8, packed, vec![0.5, 1.0, 2.0], None).unwrap();
        Arc::new(QuantizedWeight::Fp4(w))
    }

    #[test]
    fn gradients_equal_burns_matmul_against_the_dequantized_weight() {
        let device = Default::default();
        let weight = nf4();
        let x0 = Tensor::<Flex, 2>::random([5, 8], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<Ad, 2>::from_data(TensorData::new(weight.dequantize(), [3, 8]), &device);
        let grad = |frozen: bool| {
            let x = Tensor::<Ad, 2>::from_inner(x0.clone()).require_grad();
            // A non-leaf input, as a layer's input is.
            let h = x.clone().tanh();
            let y = if frozen {
                try_frozen_matmul(h, &weight, DType::F32).expect("Autodiff<Flex> takes the frozen op")
            } else {
                h.matmul(w.clone().transpose())
            };
            let grads = (y.clone() * y.clone()).sum().backward();
            (y.inner().into_data().to_vec::<f32>().unwrap(), x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap())
        };
        let ((y, gx), (y_ref, gx_ref)) = (grad(true), grad(false));
        let gap = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(gap(&y, &y_ref) <= 1e-6, "outputs differ by {}", gap(&y, &y_ref));
        assert!(gap(&gx, &gx_ref) <= 1e-6, "input gradients differ by {}", gap(&gx, &gx_ref));
        assert!(gx.iter().any(|g| g.abs() > 1e-3), "a gradient flows");
    }

    #[test]
    fn backends_without_autodiff_keep_their_own_path() {
        let x = Tensor::<Flex, 2>::zeros([2, 8], &Default::default());
        assert!(try_frozen_matmul(x, &nf4(), DType::F32).is_err());
    }
}
