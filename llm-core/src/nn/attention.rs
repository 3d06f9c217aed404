//! Multi-head attention with grouped key/value heads (MHA, GQA, MQA).

use burn::module::Module;
use burn::tensor::{
    activation::softmax, backend::Backend, module::attention, ops::AttentionModuleOptions, Bool, DType, Tensor, TensorData,
};

use super::host_attention::{self, Geometry, HOST_MAX_LEN};
use super::kv_cache::LayerCache;
use super::rope::{apply_rotary, RopeTables};
use super::Linear;

/// How scaled dot-product attention is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionKernel {
    /// The backend's fused kernel (`burn::tensor::module::attention`): exact softmax, no
    /// approximation; on Flex it tiles long sequences with an online softmax.
    #[default]
    Fused,
    /// `softmax(QKᵀ·scale + mask)·V` from plain tensor ops; the readable reference.
    Plain,
    /// Burn's decomposed attention (`attention_fallback`), the arithmetic an autodiff backend
    /// runs for [`Self::Fused`]: the graph-free forward pass of gradient checkpointing uses it
    /// so its values are those the recomputation under autodiff gets, bit for bit.
    Decomposed,
}

/// One sequence of [`Attention::heads_packed`]: where its tokens sit in the packed row, its
/// mask (for `len` new positions after what its cache holds), its cache.
pub struct PackedAttention<'a, B: Backend> {
    /// First packed position of the sequence.
    pub offset: usize,
    /// New positions of the sequence.
    pub len: usize,
    /// `[1, 1, len, past + len]` (true = hidden); `None` when nothing is hidden.
    pub mask: Option<Tensor<B, 4, Bool>>,
    /// Its layer cache and the positions it holds.
    pub cache: (&'a mut LayerCache<B>, usize),
}

/// Self-attention of one decoder layer.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[n_heads * head_dim, d_model]`
    pub query: Linear<B>,
    /// `[n_kv_heads * head_dim, d_model]`
    pub key: Linear<B>,
    /// `[n_kv_heads * head_dim, d_model]`
    pub value: Linear<B>,
    /// `[d_model, n_heads * head_dim]`
    pub output: Linear<B>,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Keys further back than this are hidden (`None`: full attention).
    pub sliding_window: Option<usize>,
    /// Fused or plain kernel.
    pub kernel: AttentionKernel,
}

impl<B: Backend> Attention<B> {
    /// x: `[batch, seq, d_model]`, mask `[batch, 1, seq, kv_len]` (true = hidden) -> `[batch, seq, d_model]`
    ///
    /// With a cache, the new keys/values are appended at `past_len` and the queries attend over
    /// all `past_len + seq` positions.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: Option<Tensor<B, 4, Bool>>,
        cache: Option<(&mut LayerCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        self.output.forward(self.heads(x, rope, mask, cache))
    }

    /// Attention up to (not including) the output projection: the input `output` sees.
    ///
    /// x: `[batch, seq, d_model]` -> `[batch, seq, n_heads * head_dim]`
    pub fn heads(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: Option<Tensor<B, 4, Bool>>,
        cache: Option<(&mut LayerCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = x.dims();
        let (h, kv, d) = (self.n_heads, self.n_kv_heads, self.head_dim);
        // [b, s, h*d] -> [b, h, s, d]
        let split = |t: Tensor<B, 3>, heads: usize| t.reshape([batch, seq, heads, d]).swap_dims(1, 2);
        let [q, k, v] = self.project(x);
        let cache = match cache {
            // A short forward of one sequence: what the same tokens get in a packed pass.
            Some(cache) if batch == 1 && seq <= HOST_MAX_LEN && self.host_path(&q) => {
                return self.heads_packed_host(q, k, v, rope, vec![PackedAttention { offset: 0, len: seq, mask, cache }]);
            }
            other => other,
        };
        let q = apply_rotary(split(q, h), rope);
        let k = apply_rotary(split(k, kv), rope);
        let out = self.attend_cached(q, k, split(v, kv), mask, cache);
        // [b, h, s, d] -> [b, s, h*d]
        out.swap_dims(1, 2).reshape([batch, seq, h * d])
    }

    /// [`Self::heads`] of several sequences packed into one row, each with its own mask and
    /// cache (continuous batching): the projections and the rotary embedding run once over
    /// every token (`rope` holds each token's own position), the attention per sequence.
    ///
    /// x: `[1, total, d_model]` -> `[1, total, n_heads * head_dim]`, sequences in `segments` order
    pub fn heads_packed(&self, x: Tensor<B, 3>, rope: &RopeTables<B>, segments: Vec<PackedAttention<'_, B>>) -> Tensor<B, 3> {
        let [_, total, _] = x.dims();
        let (h, kv, d) = (self.n_heads, self.n_kv_heads, self.head_dim);
        // [1, total, heads*d] -> [1, heads, total, d]
        let split = |t: Tensor<B, 3>, heads: usize| t.reshape([1, total, heads, d]).swap_dims(1, 2);
        let [q, k, v] = self.project(x);
        if self.host_path(&q) {
            return self.heads_packed_host(q, k, v, rope, segments);
        }
        let q = apply_rotary(split(q, h), rope);
        let k = apply_rotary(split(k, kv), rope);
        let v = split(v, kv);
        let outs: Vec<Tensor<B, 4>> = segments
            .into_iter()
            .map(|s| {
                let part = |t: &Tensor<B, 4>| t.clone().narrow(2, s.offset, s.len);
                self.attend_cached(part(&q), part(&k), part(&v), s.mask, Some(s.cache))
            })
            .collect();
        // [1, h, total, d] -> [1, total, h*d]
        Tensor::cat(outs, 2).swap_dims(1, 2).reshape([1, total, h * d])
    }

    /// Whether attention with a cache runs on host buffers ([`host_attention`]): the fused
    /// kernel on the CPU backend in f32.
    fn host_path(&self, q: &Tensor<B, 3>) -> bool {
        self.kernel == AttentionKernel::Fused && q.dtype() == DType::F32 && crate::quant::host_backend::<B>(&q.device())
    }

    /// [`Self::heads_packed`] on the CPU backend, from the projections: the rotary embedding
    /// over host rows, then each short segment's attention on its cache buffers in place
    /// ([`host_attention`]); longer segments (and caches that are not host buffers) through
    /// [`Self::attend_cached`].
    ///
    /// q: `[1, total, n_heads * head_dim]`, k/v: `[1, total, n_kv_heads * head_dim]` ->
    /// `[1, total, n_heads * head_dim]`
    fn heads_packed_host(
        &self,
        q: Tensor<B, 3>,
        k: Tensor<B, 3>,
        v: Tensor<B, 3>,
        rope: &RopeTables<B>,
        segments: Vec<PackedAttention<'_, B>>,
    ) -> Tensor<B, 3> {
        let [_, total, _] = q.dims();
        let (h, kv, d) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let device = q.device();
        let host = |t: Tensor<B, 3>| t.into_data().convert::<f32>().into_vec::<f32>().expect("converted to f32");
        let table = |t: &Tensor<B, 4>| t.clone().reshape([1, total, d]);
        let (cos, sin) = (host(table(&rope.cos)), host(table(&rope.sin)));
        let (mut qh, mut kh, vh) = (host(q), host(k), host(v));
        host_attention::rotate(&mut qh, h, d, &cos, &sin);
        host_attention::rotate(&mut kh, kv, d, &cos, &sin);
        let geometry = Geometry { heads: h, kv_heads: kv, head_dim: d };
        let mut out = vec![0f32; total * h * d];
        for s in segments {
            let (layer, past) = s.cache;
            let rows = |heads: usize| s.offset * heads * d..(s.offset + s.len) * heads * d;
            let (qs, ks, vs) = (&qh[rows(h)], &kh[rows(kv)], &vh[rows(kv)]);
            let o = &mut out[s.offset * h * d..(s.offset + s.len) * h * d];
            let hidden: Option<Vec<bool>> = s.mask.as_ref().map(|m| m.to_data().iter::<bool>().collect());
            let done = s.len <= HOST_MAX_LEN
                && layer
                    .with_host_buffers(|keys, values, capacity| {
                        host_attention::segment(geometry, past, qs, ks, vs, hidden.as_deref(), keys, values, capacity, o)
                    })
                    .unwrap_or(false);
            if !done {
                // [len, heads, d] rows -> [1, heads, len, d]
                let t = |rows: &[f32], heads: usize| {
                    Tensor::<B, 4>::from_data(TensorData::new(rows.to_vec(), [1, s.len, heads, d]), &device).swap_dims(1, 2)
                };
                let heads = self.attend_cached(t(qs, h), t(ks, kv), t(vs, kv), s.mask, Some((layer, past)));
                o.copy_from_slice(&host(heads.swap_dims(1, 2).reshape([1, s.len, h * d])));
            }
        }
        Tensor::from_data(TensorData::new(out, [1, total, h * d]), &device)
    }

    /// The query, key and value projections in one group.
    ///
    /// x: `[b, s, d_model]` -> `[b, s, n_heads * head_dim]`, then `[b, s, n_kv_heads * head_dim]` twice
    fn project(&self, x: Tensor<B, 3>) -> [Tensor<B, 3>; 3] {
        Linear::forward_group(&[&self.query, &self.key, &self.value], x)
            .try_into()
            .unwrap_or_else(|_| unreachable!("one output per layer"))
    }

    /// Appends the rotated keys and values to the cache, then attends over everything it holds.
    ///
    /// q: `[b, h, s, d]`, k/v: `[b, kv, s, d]` -> `[b, h, s, d]`
    fn attend_cached(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: Option<Tensor<B, 4, Bool>>,
        cache: Option<(&mut LayerCache<B>, usize)>,
    ) -> Tensor<B, 4> {
        let (k, v) = match cache {
            Some((layer, past_len)) => layer.append(past_len, k, v),
            None => (k, v),
        };
        self.attend(q, k, v, mask)
    }

    /// q: `[b, h, s, d]`, k/v: `[b, kv, t, d]`, mask `[b, 1, s, t]` -> `[b, h, s, d]`
    ///
    /// Query heads sharing a key/value head are folded into the query length
    /// (`[b, kv, rep*s, d]`), so keys and values are never repeated in memory.
    fn attend(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: Option<Tensor<B, 4, Bool>>,
    ) -> Tensor<B, 4> {
        let [b, h, s, d] = q.dims();
        let [_, kv, t, _] = k.dims();
        let rep = h / kv;
        // Head hq uses kv head hq / rep (transformers' repeat_kv), so heads are grouped contiguously.
        let q = q.reshape([b, kv, rep * s, d]);
        let mask = mask.map(|m| {
            // [b, 1, s, t] -> [b, kv, rep*s, t]
            m.unsqueeze_dim::<5>(1).expand([b, kv, rep, s, t]).reshape([b, kv, rep * s, t])
        });
        let scale = (d as f64).powf(-0.5);
        let out = match self.kernel {
            AttentionKernel::Fused => {
                let options = AttentionModuleOptions { scale: Some(scale), softcap: None, is_causal: false };
                attention(q, k, v, mask, None, options)
            }
            AttentionKernel::Decomposed => {
                let options = AttentionModuleOptions { scale: Some(scale), softcap: None, is_causal: false };
                let out = burn::tensor::ops::attention::attention_fallback::<B>(
                    q.into_primitive().tensor(),
                    k.into_primitive().tensor(),
                    v.into_primitive().tensor(),
                    mask.map(Tensor::into_primitive),
                    None,
                    options,
                );
                Tensor::from_primitive(burn::tensor::TensorPrimitive::Float(out))
            }
            AttentionKernel::Plain => {
                let scores = q.matmul(k.swap_dims(2, 3)) * scale;
                let scores = match mask {
                    Some(m) => scores.mask_fill(m, f32::NEG_INFINITY),
                    None => scores,
                };
                softmax(scores, 3).matmul(v)
            }
        };
        // [b, kv, rep*s, d] -> [b, h, s, d]
        out.reshape([b, h, s, d])
    }
}
