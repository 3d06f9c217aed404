//! Mixtral's sparse mixture of experts.

use burn::module::Module;
use burn::tensor::{activation::softmax, backend::Backend, DType, IndexingUpdateOp, Int, Tensor, TensorData};

use super::{Linear, Mlp};

/// A router and a set of SwiGLU experts; each token runs through its top-k experts.
///
/// Routing follows Mixtral: softmax over *all* experts (in f32), keep the top k, renormalise
/// those k weights to sum to one.
#[derive(Module, Debug)]
pub struct SparseMoe<B: Backend> {
    /// Router, `[n_experts, d_model]`.
    pub router: Linear<B>,
    /// The experts (named in [`crate::model::arch::EXPERT_MLP`]).
    pub experts: Vec<Mlp<B>>,
    /// Experts per token.
    pub top_k: usize,
}

/// The output of a MoE block with the router's logits (for inspection and aux losses).
#[derive(Debug, Clone)]
pub struct MoeOutput<B: Backend> {
    /// `[batch, seq, d_model]`
    pub hidden: Tensor<B, 3>,
    /// `[batch * seq, n_experts]`
    pub router_logits: Tensor<B, 2>,
}

impl<B: Backend> SparseMoe<B> {
    /// x: `[batch, seq, d_model]` -> hidden `[batch, seq, d_model]`, router logits `[batch*seq, n_experts]`
    pub fn forward(&self, x: Tensor<B, 3>) -> MoeOutput<B> {
        let [batch, seq, d_model] = x.dims();
        let n_tokens = batch * seq;
        let n_experts = self.experts.len();
        let x = x.reshape([n_tokens, d_model]);
        let router_logits = self.router.forward(x.clone());
        let probs = softmax(router_logits.clone().cast(DType::F32), 1);
        let (top_w, top_idx) = probs.topk_with_indices(self.top_k, 1);
        let top_w = top_w.clone() / top_w.sum_dim(1);
        // [tokens, n_experts] routing weights, zero for experts a token does not use.
        let device = x.device();
        let weights = Tensor::<B, 2>::zeros([n_tokens, n_experts], (&device, DType::F32))
            .scatter(1, top_idx.clone(), top_w, IndexingUpdateOp::Add)
            .cast(x.dtype());

        // Dispatch needs each expert's token list on the host: one small read per layer.
        let chosen: Vec<i64> = top_idx.into_data().iter::<i64>().collect();
        let mut out = Tensor::<B, 2>::zeros([n_tokens, d_model], (&device, x.dtype()));
        for (e, expert) in self.experts.iter().enumerate() {
            let tokens: Vec<i64> = (0..n_tokens)
                .filter(|t| chosen[t * self.top_k..(t + 1) * self.top_k].contains(&(e as i64)))
                .map(|t| t as i64)
                .collect();
            if tokens.is_empty() {
                continue;
            }
            let n = tokens.len();
            let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(tokens, [n]), &device);
            let w = weights.clone().select(0, idx.clone()).narrow(1, e, 1);
            let y = expert.forward(x.clone().select(0, idx.clone())) * w;
            out = out.select_assign(0, idx, y, IndexingUpdateOp::Add);
        }
        MoeOutput { hidden: out.reshape([batch, seq, d_model]), router_logits }
    }
}
