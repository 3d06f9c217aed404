//! A preallocated key/value cache for batched incremental decoding, optionally growing (by
//! doubling, up to a limit) when a forward needs more room.

use burn::tensor::{backend::Backend, DType, Tensor};

use crate::error::{LlmError, Result};

/// Keys and values of one layer, `[batch, n_kv_heads, capacity, head_dim]` each, allocated once.
#[derive(Debug, Clone)]
pub struct LayerCache<B: Backend> {
    keys: Option<Tensor<B, 4>>,
    values: Option<Tensor<B, 4>>,
}

/// The cache of a whole model: one [`LayerCache`] per layer and the number of positions filled.
///
/// Appending writes into the preallocated buffers in place (`slice_assign` on a uniquely owned
/// tensor), so decoding does not reallocate or copy the past.
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<LayerCache<B>>,
    len: usize,
    capacity: usize,
    /// Positions the buffers may grow to (`capacity` for a fixed cache).
    limit: usize,
    batch: usize,
}

impl<B: Backend> KvCache<B> {
    /// Allocates zeroed buffers for `n_layers` layers.
    pub fn new(
        n_layers: usize,
        batch: usize,
        n_kv_heads: usize,
        capacity: usize,
        head_dim: usize,
        dtype: DType,
        device: &B::Device,
    ) -> Self {
        let shape = [batch, n_kv_heads, capacity, head_dim];
        let layers = (0..n_layers)
            .map(|_| LayerCache {
                keys: Some(Tensor::zeros(shape, (device, dtype))),
                values: Some(Tensor::zeros(shape, (device, dtype))),
            })
            .collect();
        Self { layers, len: 0, capacity, limit: capacity, batch }
    }

    /// Lets the buffers grow, doubling, up to `limit` positions when a forward needs more
    /// room than they hold: a long generation allocates as it goes, not all up front.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(self.capacity);
        self
    }

    /// Positions the cache may grow to.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Positions stored so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first forward.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions allocated now.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Rows (sequences) the cache holds.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Keeps the first `len` positions and forgets the rest (speculative decoding's rejected
    /// drafts); the next forward overwrites them in place.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Forgets every stored position; buffers are kept for reuse.
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Grows the buffers, if the limit allows, so that `extra` more positions fit.
    pub(crate) fn grow_for(&mut self, extra: usize) {
        let need = self.len.saturating_add(extra);
        if need <= self.capacity || need > self.limit {
            return;
        }
        let capacity = self.capacity.saturating_mul(2).max(need).min(self.limit);
        let len = self.len;
        for layer in &mut self.layers {
            for slot in [&mut layer.keys, &mut layer.values] {
                let old = slot.take().expect("cache buffer present between calls");
                let [b, h, _, d] = old.dims();
                let bigger = Tensor::zeros([b, h, capacity, d], (&old.device(), old.dtype()));
                *slot = Some(if len == 0 {
                    bigger
                } else {
                    bigger.slice_assign([0..b, 0..h, 0..len, 0..d], old.slice([0..b, 0..h, 0..len, 0..d]))
                });
            }
        }
        self.capacity = capacity;
    }

    pub(crate) fn check_room(&self, batch: usize, extra: usize) -> Result<()> {
        if batch != self.batch {
            return Err(LlmError::Shape {
                what: "input_ids (batch of a cached forward)".into(),
                expected: format!("batch {} as the KV cache was allocated", self.batch),
                got: vec![batch],
            });
        }
        if self.len + extra > self.capacity {
            return Err(LlmError::CacheFull { len: self.len, capacity: self.capacity, extra });
        }
        Ok(())
    }

    pub(crate) fn layer_mut(&mut self, i: usize) -> (&mut LayerCache<B>, usize) {
        (&mut self.layers[i], self.len)
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}

impl<B: Backend> LayerCache<B> {
    /// Writes new keys/values at `start` and returns everything stored up to the end of them.
    ///
    /// k, v: `[batch, n_kv_heads, seq, head_dim]` -> `[batch, n_kv_heads, start + seq, head_dim]` each
    pub(crate) fn append(&mut self, start: usize, k: Tensor<B, 4>, v: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let [b, h, s, d] = k.dims();
        let end = start + s;
        let write = |slot: &mut Option<Tensor<B, 4>>, new: Tensor<B, 4>| {
            // Take the buffer so it is uniquely owned and the write happens in place.
            let buf = slot.take().expect("cache buffer present between calls");
            let buf = match host::write(buf, start, new) {
                Ok(buf) => buf,
                Err((buf, new)) => buf.slice_assign([0..b, 0..h, start..end, 0..d], new),
            };
            let view = buf.clone().slice([0..b, 0..h, 0..end, 0..d]);
            *slot = Some(buf);
            view
        };
        let keys = write(&mut self.keys, k);
        let values = write(&mut self.values, v);
        (keys, values)
    }
}

impl<B: Backend> LayerCache<B> {
    /// Runs `f` on the key and value buffers as host memory, `[n_kv_heads, capacity, head_dim]`
    /// each (batch 1), with the capacity: `None` (and `f` not run) unless this is the CPU
    /// backend holding f32 buffers of one row. A strided buffer is made plain first, once.
    pub(crate) fn with_host_buffers<R>(&mut self, f: impl FnOnce(&mut [f32], &mut [f32], usize) -> R) -> Option<R> {
        let keys = self.keys.take().expect("cache buffer present between calls");
        let values = self.values.take().expect("cache buffer present between calls");
        let (keys, values, out) = host::with_buffers(keys, values, f);
        self.keys = Some(keys);
        self.values = Some(values);
        out
    }
}

impl<B: Backend> KvCache<B> {
    /// Reorders (and duplicates) rows: row `i` of the result is old row `rows[i]`.
    /// Beam search uses it to follow the surviving beams.
    pub fn select_rows(&mut self, rows: &[usize]) {
        let Some(device) = self.layers.first().and_then(|l| l.keys.as_ref()).map(Tensor::device) else { return };
        let idx = Tensor::<B, 1, burn::tensor::Int>::from_data(
            burn::tensor::TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [rows.len()]),
            &device,
        );
        for layer in &mut self.layers {
            for slot in [&mut layer.keys, &mut layer.values] {
                let buf = slot.take().expect("cache buffer present between calls");
                *slot = Some(buf.select(0, idx.clone()));
            }
        }
        self.batch = rows.len();
    }
}

/// The append's write on the CPU backend, in place.
///
/// Flex's `slice_assign` copies the whole destination on every call (it clones the tensor's
/// storage handle before writing, so the copy-on-write always fires): for a cache that is one
/// copy of every layer's buffers per token, most of a batched decode step. Writing into the
/// uniquely owned buffer directly costs only the new positions.
mod host {
    use burn::tensor::{backend::Backend, DType, Tensor, TensorPrimitive};

    /// buf `[b, h, capacity, d]` (f32, contiguous), new `[b, h, s, d]` written at `start`; the
    /// tensors back unchanged when this is not Flex, not f32 or not a plain buffer.
    #[allow(clippy::type_complexity)]
    pub(super) fn write<B: Backend>(buf: Tensor<B, 4>, start: usize, new: Tensor<B, 4>) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
        #[cfg(feature = "flex")]
        {
            flex::<B>(buf, start, new)
        }
        #[cfg(not(feature = "flex"))]
        {
            let _ = start;
            Err((buf, new))
        }
    }

    /// See [`super::LayerCache::with_host_buffers`]: the buffers come back whatever happens.
    pub(super) fn with_buffers<B: Backend, R>(
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
        f: impl FnOnce(&mut [f32], &mut [f32], usize) -> R,
    ) -> (Tensor<B, 4>, Tensor<B, 4>, Option<R>) {
        #[cfg(feature = "flex")]
        {
            let [b, _, capacity, _] = keys.dims();
            if b != 1 || keys.dtype() != DType::F32 || values.dtype() != DType::F32 {
                return (keys, values, None);
            }
            let (mut k, mut v) = match (to_flex(keys), to_flex(values)) {
                (Ok(k), Ok(v)) => (k, v),
                (k, v) => return (k.map_or_else(|t| t, from_flex), v.map_or_else(|t| t, from_flex), None),
            };
            for t in [&mut k, &mut v] {
                if !(t.layout().is_contiguous() && t.layout().start_offset() == 0) {
                    *t = t.to_contiguous();
                }
            }
            let out = f(k.storage_mut::<f32>(), v.storage_mut::<f32>(), capacity);
            (from_flex(k), from_flex(v), Some(out))
        }
        #[cfg(not(feature = "flex"))]
        {
            let _ = f;
            (keys, values, None)
        }
    }

    /// The Flex tensor behind `t`, or `t` back when the backend is not Flex.
    #[cfg(feature = "flex")]
    fn to_flex<B: Backend>(t: Tensor<B, 4>) -> Result<burn_flex::FlexTensor, Tensor<B, 4>> {
        use std::any::Any;
        let prim = match t.into_primitive() {
            TensorPrimitive::Float(p) => p,
            other => return Err(Tensor::from_primitive(other)),
        };
        let boxed: Box<dyn Any> = Box::new(prim);
        match boxed.downcast::<burn_flex::FlexTensor>() {
            Ok(flex) => Ok(*flex),
            Err(boxed) => {
                let prim = *boxed.downcast::<B::FloatTensorPrimitive>().expect("boxed just above");
                Err(Tensor::from_primitive(TensorPrimitive::Float(prim)))
            }
        }
    }

    /// The tensor of a Flex tensor that [`to_flex`] took from a `Tensor<B, 4>`.
    #[cfg(feature = "flex")]
    fn from_flex<B: Backend>(t: burn_flex::FlexTensor) -> Tensor<B, 4> {
        let boxed: Box<dyn std::any::Any> = Box::new(t);
        let prim = *boxed.downcast::<B::FloatTensorPrimitive>().expect("to_flex found B's float tensors to be Flex's");
        Tensor::from_primitive(TensorPrimitive::Float(prim))
    }

    #[cfg(feature = "flex")]
    #[allow(clippy::type_complexity)]
    fn flex<B: Backend>(buf: Tensor<B, 4>, start: usize, new: Tensor<B, 4>) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>)> {
        let [b, h, capacity, d] = buf.dims();
        let s = new.dims()[2];
        if buf.dtype() != DType::F32 || new.dtype() != DType::F32 || start + s > capacity {
            return Err((buf, new));
        }
        let mut t = match to_flex(buf) {
            Ok(t) => t,
            Err(buf) => return Err((buf, new)),
        };
        let plain = t.layout().is_contiguous() && t.layout().start_offset() == 0 && t.layout().num_elements() == b * h * capacity * d;
        if !plain {
            return Err((from_flex(t), new));
        }
        let src = new.into_data().convert::<f32>().into_vec::<f32>().expect("converted to f32 above");
        let dst = t.storage_mut::<f32>();
        for row in 0..b * h {
            let at = (row * capacity + start) * d;
            dst[at..at + s * d].copy_from_slice(&src[row * s * d..(row + 1) * s * d]);
        }
        Ok(from_flex(t))
    }
}
