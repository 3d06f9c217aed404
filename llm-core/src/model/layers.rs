//! Layer-by-layer access to a [`CausalLm`]: what calibration-based quantization (GPTQ) and
//! weight surgery need — the embedded input, the per-layer rotary tables and masks, and the
//! linear layers by Hugging Face name.

use burn::tensor::{backend::Backend, module::embedding, Bool, Int, Tensor};

use super::{CausalLm, DecoderLayer, FeedForward};
use crate::nn::{Linear, MaskSpec, RopeTables};

/// Rotary tables and causal masks for running layers one at a time over plain sequences
/// (no padding, positions from 0).
pub struct LayerContext<B: Backend> {
    /// Rotary tables for positions `0..seq`.
    pub rope: RopeTables<B>,
    full_mask: Option<Tensor<B, 4, Bool>>,
    window_masks: Vec<(usize, Option<Tensor<B, 4, Bool>>)>,
}

impl<B: Backend> LayerContext<B> {
    /// The mask `layer` uses (`[batch, 1, seq, seq]`, true = hidden).
    pub fn mask(&self, layer: &DecoderLayer<B>) -> Option<Tensor<B, 4, Bool>> {
        match layer.self_attn.sliding_window {
            None => self.full_mask.clone(),
            Some(w) => self.window_masks.iter().find(|(ww, _)| *ww == w).and_then(|(_, m)| m.clone()),
        }
    }
}

impl<B: Backend> CausalLm<B> {
    /// input_ids: `[batch, seq]` -> `[batch, seq, d_model]`, the input of layer 0.
    pub fn embed(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        embedding(self.embed_tokens.val(), input_ids)
    }

    /// Tables and masks for `batch` plain sequences of `seq` tokens.
    pub fn layer_context(&self, batch: usize, seq: usize) -> LayerContext<B> {
        let device = self.device();
        let positions = vec![(0..seq).collect()];
        let rope = self.rotary.tables::<B>(&positions, self.dtype(), &device);
        let spec = MaskSpec { batch, past_len: 0, seq, attention_mask: None, segment_ids: None };
        let mut windows: Vec<usize> = self.layers.iter().filter_map(|l| l.self_attn.sliding_window).collect();
        windows.sort_unstable();
        windows.dedup();
        LayerContext {
            rope,
            full_mask: spec.build::<B>(None, &device),
            window_masks: windows.into_iter().map(|w| (w, spec.build::<B>(Some(w), &device))).collect(),
        }
    }

    /// Every linear layer with its Hugging Face prefix (`model.layers.0.self_attn.q_proj`),
    /// in computation order; `lm_head` last when untied.
    pub fn linears(&self) -> Vec<(String, &Linear<B>)> {
        let mut out = vec![];
        for (i, layer) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let a = &layer.self_attn;
            for (n, l) in [("q_proj", &a.q_proj), ("k_proj", &a.k_proj), ("v_proj", &a.v_proj), ("o_proj", &a.o_proj)] {
                out.push((format!("{p}.self_attn.{n}"), l));
            }
            match &layer.ffn {
                FeedForward::Dense(m) => {
                    for (n, l) in [("gate_proj", &m.gate_proj), ("up_proj", &m.up_proj), ("down_proj", &m.down_proj)] {
                        out.push((format!("{p}.mlp.{n}"), l));
                    }
                }
                FeedForward::Moe(moe) => {
                    out.push((format!("{p}.block_sparse_moe.gate"), &moe.gate));
                    for (e, m) in moe.experts.iter().enumerate() {
                        for (n, l) in [("w1", &m.gate_proj), ("w3", &m.up_proj), ("w2", &m.down_proj)] {
                            out.push((format!("{p}.block_sparse_moe.experts.{e}.{n}"), l));
                        }
                    }
                }
            }
        }
        if let Some(head) = &self.lm_head {
            out.push(("lm_head".into(), head));
        }
        out
    }

    /// The linear layer with Hugging Face prefix `name`, for replacing its weight.
    pub fn linear_mut(&mut self, name: &str) -> Option<&mut Linear<B>> {
        if name == "lm_head" {
            return self.lm_head.as_mut();
        }
        let rest = name.strip_prefix("model.layers.")?;
        let (index, rest) = rest.split_once('.')?;
        let layer = self.layers.get_mut(index.parse::<usize>().ok()?)?;
        let a = &mut layer.self_attn;
        match (rest, &mut layer.ffn) {
            ("self_attn.q_proj", _) => Some(&mut a.q_proj),
            ("self_attn.k_proj", _) => Some(&mut a.k_proj),
            ("self_attn.v_proj", _) => Some(&mut a.v_proj),
            ("self_attn.o_proj", _) => Some(&mut a.o_proj),
            ("mlp.gate_proj", FeedForward::Dense(m)) => Some(&mut m.gate_proj),
            ("mlp.up_proj", FeedForward::Dense(m)) => Some(&mut m.up_proj),
            ("mlp.down_proj", FeedForward::Dense(m)) => Some(&mut m.down_proj),
            ("block_sparse_moe.gate", FeedForward::Moe(moe)) => Some(&mut moe.gate),
            (expert, FeedForward::Moe(moe)) => {
                let (e, w) = expert.strip_prefix("block_sparse_moe.experts.")?.split_once('.')?;
                let m = moe.experts.get_mut(e.parse::<usize>().ok()?)?;
                match w {
                    "w1" => Some(&mut m.gate_proj),
                    "w3" => Some(&mut m.up_proj),
                    "w2" => Some(&mut m.down_proj),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}
