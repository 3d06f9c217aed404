//! The tensors a config needs, by Hugging Face name and shape: the one table both the strict
//! check and the loader follow.

use crate::config::{Architecture, ModelConfig};

/// One expected tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Hugging Face name (`model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    /// PyTorch-order shape.
    pub shape: Vec<usize>,
}

/// Every tensor a checkpoint for `c` must hold.
pub fn expected_tensors(c: &ModelConfig) -> Vec<TensorSpec> {
    let mut out = vec![];
    let mut add = |name: String, shape: Vec<usize>| out.push(TensorSpec { name, shape });
    let (d, q_out, kv_out) = (c.d_model, c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
    add("model.embed_tokens.weight".into(), vec![c.vocab_size, d]);
    add("model.norm.weight".into(), vec![d]);
    if !c.tie_word_embeddings {
        add("lm_head.weight".into(), vec![c.vocab_size, d]);
    }
    for i in 0..c.n_layers {
        let p = format!("model.layers.{i}");
        add(format!("{p}.input_layernorm.weight"), vec![d]);
        add(format!("{p}.post_attention_layernorm.weight"), vec![d]);
        for (proj, rows, cols, bias) in [
            ("q_proj", q_out, d, c.qkv_bias),
            ("k_proj", kv_out, d, c.qkv_bias),
            ("v_proj", kv_out, d, c.qkv_bias),
            ("o_proj", d, q_out, c.o_bias),
        ] {
            add(format!("{p}.self_attn.{proj}.weight"), vec![rows, cols]);
            if bias {
                add(format!("{p}.self_attn.{proj}.bias"), vec![rows]);
            }
        }
        match (c.architecture, c.moe) {
            (Architecture::Mixtral, Some(moe)) => {
                add(format!("{p}.block_sparse_moe.gate.weight"), vec![moe.n_experts, d]);
                for e in 0..moe.n_experts {
                    let q = format!("{p}.block_sparse_moe.experts.{e}");
                    add(format!("{q}.w1.weight"), vec![c.d_ff, d]);
                    add(format!("{q}.w2.weight"), vec![d, c.d_ff]);
                    add(format!("{q}.w3.weight"), vec![c.d_ff, d]);
                }
            }
            _ => {
                for (proj, rows, cols) in [("gate_proj", c.d_ff, d), ("up_proj", c.d_ff, d), ("down_proj", d, c.d_ff)] {
                    add(format!("{p}.mlp.{proj}.weight"), vec![rows, cols]);
                    if c.mlp_bias {
                        add(format!("{p}.mlp.{proj}.bias"), vec![rows]);
                    }
                }
            }
        }
    }
    out
}
