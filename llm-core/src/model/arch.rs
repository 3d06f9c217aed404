//! The architecture table: every tensor of a Llama-family checkpoint (Llama, Mistral, Qwen2,
//! Mixtral) by Hugging Face name and GGUF name, with the model field it fills.
//!
//! This is the only place a tensor name is spelled. The strict check ([`expected_tensors`]),
//! the loader, the savers (llm-quant, llm-train), parameter naming ([`param_name`]), the GGUF
//! name map ([`gguf_to_hf`]) and calibration's layer walk ([`LinearSlot::input`]) all read it.
//!
//! | slot | Hugging Face (in `model.layers.N.`) | GGUF (in `blk.N.`) | field |
//! |---|---|---|---|
//! | Q, K, V, O | `self_attn.{q,k,v,o}_proj` | `attn_{q,k,v,output}` | `self_attn.{query,key,value,output}` |
//! | Gate, Up, Down (dense) | `mlp.{gate,up,down}_proj` | `ffn_{gate,up,down}` | `ffn: Dense(Mlp {gate, up, down})` |
//! | Router | `block_sparse_moe.gate` | `ffn_gate_inp` | `ffn: Moe(SparseMoe).router` |
//! | Gate, Up, Down (expert E) | `block_sparse_moe.experts.E.{w1,w3,w2}` | `ffn_{gate,up,down}_exps` (stacked) or `ffn_{gate,up,down}.E` | `experts[E] {gate, up, down}` |

use crate::config::{Architecture, ModelConfig};

/// A linear layer's place inside a decoder layer (or inside one expert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinearSlot {
    /// Query projection, `[n_heads·head_dim, d_model]`.
    Q,
    /// Key projection, `[n_kv_heads·head_dim, d_model]`.
    K,
    /// Value projection, `[n_kv_heads·head_dim, d_model]`.
    V,
    /// Attention output, `[d_model, n_heads·head_dim]`.
    O,
    /// SwiGLU gate, `[d_ff, d_model]`.
    Gate,
    /// SwiGLU up, `[d_ff, d_model]`.
    Up,
    /// SwiGLU down, `[d_model, d_ff]`.
    Down,
    /// Mixtral's router, `[n_experts, d_model]`.
    Router,
}

/// The inputs of a layer's linear layers, in the order the layer computes them: what
/// calibration (GPTQ) observes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearInput {
    /// Input of Q, K, V (the normed residual).
    Attention,
    /// Input of O (the attention heads).
    AttentionOutput,
    /// Input of Gate and Up (the normed residual after attention).
    Mlp,
    /// Input of Down (`silu(gate) * up`).
    MlpHidden,
}

impl LinearInput {
    /// All four, in computation order.
    pub const ALL: [Self; 4] = [Self::Attention, Self::AttentionOutput, Self::Mlp, Self::MlpHidden];

    /// The slots of a dense layer that read this input.
    pub fn consumers(self) -> &'static [LinearSlot] {
        match self {
            Self::Attention => &[LinearSlot::Q, LinearSlot::K, LinearSlot::V],
            Self::AttentionOutput => &[LinearSlot::O],
            Self::Mlp => &[LinearSlot::Gate, LinearSlot::Up],
            Self::MlpHidden => &[LinearSlot::Down],
        }
    }
}

/// One row of the table of linear layers.
#[derive(Debug, Clone, Copy)]
pub struct LinearEntry {
    /// The slot.
    pub slot: LinearSlot,
    /// Hugging Face name relative to the layer (`self_attn.q_proj`), or to an expert (`w1`).
    pub hf: &'static str,
    /// GGUF name relative to `blk.N.` (`attn_q`); for experts, the stacked name's stem
    /// (`ffn_gate`: `ffn_gate_exps` stacked, `ffn_gate.E` one by one).
    pub gguf: &'static str,
    /// The Rust field holding it (Burn's module-path segment).
    pub field: &'static str,
}

const fn entry(slot: LinearSlot, hf: &'static str, gguf: &'static str, field: &'static str) -> LinearEntry {
    LinearEntry { slot, hf, gguf, field }
}

/// Attention's four projections.
pub const ATTENTION: [LinearEntry; 4] = [
    entry(LinearSlot::Q, "self_attn.q_proj", "attn_q", "query"),
    entry(LinearSlot::K, "self_attn.k_proj", "attn_k", "key"),
    entry(LinearSlot::V, "self_attn.v_proj", "attn_v", "value"),
    entry(LinearSlot::O, "self_attn.o_proj", "attn_output", "output"),
];

/// A dense layer's SwiGLU MLP.
pub const DENSE_MLP: [LinearEntry; 3] = [
    entry(LinearSlot::Gate, "mlp.gate_proj", "ffn_gate", "gate"),
    entry(LinearSlot::Up, "mlp.up_proj", "ffn_up", "up"),
    entry(LinearSlot::Down, "mlp.down_proj", "ffn_down", "down"),
];

/// Mixtral's router.
pub const ROUTER: LinearEntry = entry(LinearSlot::Router, "block_sparse_moe.gate", "ffn_gate_inp", "router");

/// One expert's MLP, relative to [`EXPERTS`]`.E.` (Mixtral's `w1`/`w3`/`w2`).
pub const EXPERT_MLP: [LinearEntry; 3] = [
    entry(LinearSlot::Gate, "w1", "ffn_gate", "gate"),
    entry(LinearSlot::Up, "w3", "ffn_up", "up"),
    entry(LinearSlot::Down, "w2", "ffn_down", "down"),
];

/// Where experts sit in a layer (Hugging Face).
pub const EXPERTS: &str = "block_sparse_moe.experts";
/// The dense feed-forward's Hugging Face module (Burn field `ffn`, variant `Dense`).
pub const MLP_MODULE: &str = "mlp";
/// The sparse feed-forward's Hugging Face module (Burn field `ffn`, variant `Moe`).
pub const MOE_MODULE: &str = "block_sparse_moe";
/// Suffix GGUF gives stacked expert tensors.
/// Suffix of llama.cpp's stacked expert tensors (`blk.N.ffn_gate_exps.weight`).
pub const STACKED: &str = "_exps";

/// The two norms of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NormSlot {
    /// Before attention.
    Input,
    /// Before the feed-forward.
    PostAttention,
}

/// A norm's names: `(slot, Hugging Face, GGUF)`; the Rust field is the Hugging Face name.
pub const NORMS: [(NormSlot, &str, &str); 2] =
    [(NormSlot::Input, "input_layernorm", "attn_norm"), (NormSlot::PostAttention, "post_attention_layernorm", "ffn_norm")];

/// Hugging Face prefix of layer `N` (`model.layers.N`).
pub const LAYERS: &str = "model.layers";
/// GGUF prefix of layer `N` (`blk.N`).
const GGUF_LAYERS: &str = "blk";

/// The tensors outside the layers: `(Hugging Face, GGUF, Rust field)`.
pub const EMBED: (&str, &str, &str) = ("model.embed_tokens.weight", "token_embd.weight", "embed_tokens");
/// The final norm.
pub const FINAL_NORM: (&str, &str, &str) = ("model.norm.weight", "output_norm.weight", "norm");
/// The output head (absent when tied to the embedding).
pub const LM_HEAD: (&str, &str, &str) = ("lm_head.weight", "output.weight", "lm_head");
/// The output head's module name.
pub const LM_HEAD_MODULE: &str = "lm_head";

/// Where a linear layer sits in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinearId {
    /// Attention, dense MLP or router of layer `layer`.
    Layer {
        /// Decoder layer index.
        layer: usize,
        /// Which projection.
        slot: LinearSlot,
    },
    /// One projection of expert `expert` in layer `layer`.
    Expert {
        /// Decoder layer index.
        layer: usize,
        /// Expert index.
        expert: usize,
        /// Gate, Up or Down.
        slot: LinearSlot,
    },
    /// The output head.
    LmHead,
}

fn find(table: &[LinearEntry], slot: LinearSlot) -> Option<&LinearEntry> {
    table.iter().find(|e| e.slot == slot)
}

/// The table row of `slot` in a dense layer (attention, MLP or router).
pub fn layer_entry(slot: LinearSlot) -> &'static LinearEntry {
    find(&ATTENTION, slot).or_else(|| find(&DENSE_MLP, slot)).unwrap_or(&ROUTER)
}

/// The last segment of `slot`'s Hugging Face name in a dense layer: what peft's
/// `target_modules` lists.
pub fn slot_suffix(slot: LinearSlot) -> &'static str {
    let hf = layer_entry(slot).hf;
    hf.rsplit('.').next().unwrap_or(hf)
}

/// The table row of `slot` in an expert (Gate, Up, Down).
pub fn expert_entry(slot: LinearSlot) -> Option<&'static LinearEntry> {
    find(&EXPERT_MLP, slot)
}

impl LinearId {
    /// The Hugging Face module name (`model.layers.0.self_attn.q_proj`); tensors add
    /// `.weight`, `.bias` or a quantized layout's own suffixes.
    pub fn hf(&self) -> String {
        match *self {
            Self::Layer { layer, slot } => format!("{LAYERS}.{layer}.{}", layer_entry(slot).hf),
            Self::Expert { layer, expert, slot } => {
                let hf = expert_entry(slot).map_or("?", |e| e.hf);
                format!("{LAYERS}.{layer}.{EXPERTS}.{expert}.{hf}")
            }
            Self::LmHead => LM_HEAD_MODULE.to_string(),
        }
    }

    /// Parses a Hugging Face module name.
    pub fn parse(name: &str) -> Option<Self> {
        if name == LM_HEAD_MODULE {
            return Some(Self::LmHead);
        }
        let (layer, rest) = name.strip_prefix(LAYERS)?.strip_prefix('.')?.split_once('.')?;
        let layer = layer.parse().ok()?;
        if let Some(expert) = rest.strip_prefix(EXPERTS).and_then(|r| r.strip_prefix('.')) {
            let (e, hf) = expert.split_once('.')?;
            let slot = EXPERT_MLP.iter().find(|x| x.hf == hf)?.slot;
            return Some(Self::Expert { layer, expert: e.parse().ok()?, slot });
        }
        let all = ATTENTION.iter().chain(&DENSE_MLP).chain(std::iter::once(&ROUTER));
        all.into_iter().find(|x| x.hf == rest).map(|x| Self::Layer { layer, slot: x.slot })
    }

    /// The slot (Q … Router); `None` for the output head.
    pub fn slot(&self) -> Option<LinearSlot> {
        match *self {
            Self::Layer { slot, .. } | Self::Expert { slot, .. } => Some(slot),
            Self::LmHead => None,
        }
    }

    /// `[d_out, d_in]` of this layer under `c`.
    pub fn shape(&self, c: &ModelConfig) -> [usize; 2] {
        let (d, q_out, kv_out) = (c.d_model, c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
        match self.slot() {
            None => [c.vocab_size, d],
            Some(LinearSlot::Q) => [q_out, d],
            Some(LinearSlot::K | LinearSlot::V) => [kv_out, d],
            Some(LinearSlot::O) => [d, q_out],
            Some(LinearSlot::Gate | LinearSlot::Up) => [c.d_ff, d],
            Some(LinearSlot::Down) => [d, c.d_ff],
            Some(LinearSlot::Router) => [c.moe.map_or(0, |m| m.n_experts), d],
        }
    }

    /// Whether the layer has a bias under `c` (Qwen2's QKV bias, `attention_bias`, `mlp_bias`).
    pub fn has_bias(&self, c: &ModelConfig) -> bool {
        match *self {
            Self::Layer { slot: LinearSlot::Q | LinearSlot::K | LinearSlot::V, .. } => c.qkv_bias,
            Self::Layer { slot: LinearSlot::O, .. } => c.o_bias,
            Self::Layer { slot: LinearSlot::Gate | LinearSlot::Up | LinearSlot::Down, .. } => c.mlp_bias,
            _ => false,
        }
    }
}

/// Whether `c` builds layers with a sparse mixture of experts.
pub fn is_moe(c: &ModelConfig) -> bool {
    c.architecture == Architecture::Mixtral && c.moe.is_some()
}

/// Every linear layer of `c` in computation order (per layer Q, K, V, O, then the MLP or the
/// router and each expert's Gate, Up, Down); the untied output head last.
pub fn linear_ids(c: &ModelConfig) -> Vec<LinearId> {
    let mut out = vec![];
    for layer in 0..c.n_layers {
        out.extend(ATTENTION.iter().map(|e| LinearId::Layer { layer, slot: e.slot }));
        match c.moe.filter(|_| is_moe(c)) {
            Some(moe) => {
                out.push(LinearId::Layer { layer, slot: LinearSlot::Router });
                for expert in 0..moe.n_experts {
                    out.extend(EXPERT_MLP.iter().map(|e| LinearId::Expert { layer, expert, slot: e.slot }));
                }
            }
            None => out.extend(DENSE_MLP.iter().map(|e| LinearId::Layer { layer, slot: e.slot })),
        }
    }
    if !c.tie_word_embeddings {
        out.push(LinearId::LmHead);
    }
    out
}

/// The decoder layer a Hugging Face tensor name belongs to (`model.layers.3.…` -> 3).
pub fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix(LAYERS)?.strip_prefix('.')?.split('.').next()?.parse().ok()
}

/// The expert a Hugging Face tensor name belongs to (`….block_sparse_moe.experts.5.…` -> 5).
pub fn expert_of(name: &str) -> Option<usize> {
    let rest = name.split_once(EXPERTS)?.1.strip_prefix('.')?;
    rest.split('.').next()?.parse().ok()
}

/// Hugging Face name of norm `slot` of layer `layer` (`model.layers.0.input_layernorm.weight`).
pub fn norm_name(layer: usize, slot: NormSlot) -> String {
    let hf = NORMS.iter().find(|(s, _, _)| *s == slot).map_or("?", |(_, hf, _)| hf);
    format!("{LAYERS}.{layer}.{hf}.weight")
}

/// One expected tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// Hugging Face name (`model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    /// PyTorch-order shape.
    pub shape: Vec<usize>,
}

/// Every tensor a checkpoint for `c` must hold, dense: the embedding, the final norm, each
/// layer's norms, then each linear layer's weight (and bias) in [`linear_ids`] order.
pub fn expected_tensors(c: &ModelConfig) -> Vec<TensorSpec> {
    let mut out = vec![];
    let mut add = |name: String, shape: Vec<usize>| out.push(TensorSpec { name, shape });
    add(EMBED.0.into(), vec![c.vocab_size, c.d_model]);
    add(FINAL_NORM.0.into(), vec![c.d_model]);
    for layer in 0..c.n_layers {
        for (slot, _, _) in NORMS {
            add(norm_name(layer, slot), vec![c.d_model]);
        }
    }
    // linear_ids: per layer in computation order, the untied head last.
    for id in linear_ids(c) {
        let shape = id.shape(c);
        add(format!("{}.weight", id.hf()), shape.to_vec());
        if id.has_bias(c) {
            add(format!("{}.bias", id.hf()), vec![shape[0]]);
        }
    }
    out
}

/// The Hugging Face tensors a GGUF tensor holds, each with the expert index when the GGUF
/// tensor stacks experts (`ffn_gate_exps` -> every expert's `w1`); an unknown name maps to
/// itself (the loader then reports it as unexpected).
pub fn gguf_to_hf(gguf: &str, n_experts: usize) -> Vec<(String, Option<usize>)> {
    for (hf, g, _) in [EMBED, FINAL_NORM, LM_HEAD] {
        if gguf == g {
            return vec![(hf.to_string(), None)];
        }
    }
    let parsed = gguf.strip_prefix(GGUF_LAYERS).and_then(|r| r.strip_prefix('.')).and_then(|r| r.split_once('.'));
    let Some((layer, suffix)) = parsed.filter(|(l, _)| l.parse::<usize>().is_ok()) else {
        return vec![(gguf.to_string(), None)];
    };
    let Some((stem, kind)) = suffix.rsplit_once('.') else { return vec![(gguf.to_string(), None)] };
    let prefix = format!("{LAYERS}.{layer}");
    if let Some((_, hf, _)) = NORMS.iter().find(|(_, _, g)| *g == stem).filter(|_| kind == "weight") {
        return vec![(format!("{prefix}.{hf}.weight"), None)];
    }
    let dense = ATTENTION.iter().chain(&DENSE_MLP).chain(std::iter::once(&ROUTER));
    if let Some(e) = dense.into_iter().find(|e| e.gguf == stem) {
        return vec![(format!("{prefix}.{}.{kind}", e.hf), None)];
    }
    if let Some(e) = EXPERT_MLP.iter().find(|e| stem.strip_suffix(STACKED) == Some(e.gguf)) {
        return (0..n_experts).map(|x| (format!("{prefix}.{EXPERTS}.{x}.{}.{kind}", e.hf), Some(x))).collect();
    }
    // Older Mixtral GGUFs store experts one by one: `ffn_gate.E.weight`.
    if let Some((stem, x)) = stem.rsplit_once('.').and_then(|(s, x)| Some((s, x.parse::<usize>().ok()?))) {
        if let Some(e) = EXPERT_MLP.iter().find(|e| e.gguf == stem) {
            return vec![(format!("{prefix}.{EXPERTS}.{x}.{}.{kind}", e.hf), None)];
        }
    }
    vec![(gguf.to_string(), None)]
}

/// The GGUF name of a Hugging Face tensor of a dense model (`model.layers.0.self_attn.q_proj.weight`
/// -> `blk.0.attn_q.weight`), the inverse of [`gguf_to_hf`]; `None` for a name outside the
/// table and for expert tensors (which GGUF stacks, see [`gguf_name`]).
pub fn hf_to_gguf(hf: &str) -> Option<String> {
    for (h, g, _) in [EMBED, FINAL_NORM, LM_HEAD] {
        if hf == h {
            return Some(g.to_string());
        }
    }
    let layer = layer_of(hf)?;
    if let Some((_, _, g)) = NORMS.iter().find(|(slot, _, _)| norm_name(layer, *slot) == hf) {
        return Some(format!("{GGUF_LAYERS}.{layer}.{g}.weight"));
    }
    let (module, kind) = hf.rsplit_once('.')?;
    match LinearId::parse(module)? {
        id @ LinearId::Layer { .. } => Some(gguf_name(id, kind)),
        _ => None,
    }
}

/// The GGUF name of a linear layer's tensor (`blk.0.attn_q.weight`), the inverse of
/// [`gguf_to_hf`] for dense layers; experts get their stacked name.
pub fn gguf_name(id: LinearId, kind: &str) -> String {
    match id {
        LinearId::Layer { layer, slot } => format!("{GGUF_LAYERS}.{layer}.{}.{kind}", layer_entry(slot).gguf),
        LinearId::Expert { layer, slot, .. } => {
            format!("{GGUF_LAYERS}.{layer}.{}{STACKED}.{kind}", expert_entry(slot).map_or("?", |e| e.gguf))
        }
        LinearId::LmHead => LM_HEAD.1.to_string(),
    }
}

/// The Hugging Face name of the parameter at Burn's module `path` (the chain of field names
/// Burn's visitors report: `layers.0.ffn.Dense.gate.weight.Dense` ->
/// `model.layers.0.mlp.gate_proj.weight`; LoRA factors `….lora.lora_a` ->
/// `….lora_A.weight`, peft's names without its `base_model.model.` prefix).
pub fn param_name(path: &[String]) -> String {
    let p: Vec<&str> = path.iter().map(String::as_str).filter(|s| !matches!(*s, "Dense" | "Quantized")).collect();
    let tail = |rest: &[&str]| -> String {
        match rest {
            ["lora", "lora_a"] => "lora_A.weight".into(),
            ["lora", "lora_b"] => "lora_B.weight".into(),
            other => other.join("."),
        }
    };
    match p.as_slice() {
        [f] if *f == EMBED.2 => EMBED.0.into(),
        [f, "weight"] if *f == FINAL_NORM.2 => FINAL_NORM.0.into(),
        [f, rest @ ..] if *f == LM_HEAD.2 => format!("{LM_HEAD_MODULE}.{}", tail(rest)),
        ["layers", layer, rest @ ..] => {
            let prefix = format!("{LAYERS}.{layer}");
            let find = |table: &[LinearEntry], field: &str| table.iter().find(|e| e.field == field).map(|e| e.hf);
            match rest {
                ["self_attn", field, rest @ ..] if find(&ATTENTION, field).is_some() => {
                    format!("{prefix}.{}.{}", find(&ATTENTION, field).unwrap_or(field), tail(rest))
                }
                ["ffn", "Moe", field, rest @ ..] if *field == ROUTER.field => format!("{prefix}.{}.{}", ROUTER.hf, tail(rest)),
                ["ffn", "Moe", "experts", e, field, rest @ ..] if find(&EXPERT_MLP, field).is_some() => {
                    format!("{prefix}.{EXPERTS}.{e}.{}.{}", find(&EXPERT_MLP, field).unwrap_or(field), tail(rest))
                }
                ["ffn", field, rest @ ..] if find(&DENSE_MLP, field).is_some() => {
                    format!("{prefix}.{}.{}", find(&DENSE_MLP, field).unwrap_or(field), tail(rest))
                }
                other => format!("{prefix}.{}", other.join(".")),
            }
        }
        other => format!("model.{}", other.join(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn names_round_trip_through_the_table() {
        for id in [
            LinearId::Layer { layer: 3, slot: LinearSlot::K },
            LinearId::Layer { layer: 0, slot: LinearSlot::Down },
            LinearId::Layer { layer: 1, slot: LinearSlot::Router },
            LinearId::Expert { layer: 2, expert: 5, slot: LinearSlot::Up },
            LinearId::LmHead,
        ] {
            assert_eq!(LinearId::parse(&id.hf()), Some(id), "{}", id.hf());
        }
        assert_eq!(LinearId::Expert { layer: 2, expert: 5, slot: LinearSlot::Up }.hf(), "model.layers.2.block_sparse_moe.experts.5.w3");
        assert_eq!(LinearId::parse("model.layers.0.mlp.nope"), None);
    }

    #[test]
    fn burn_paths_map_to_hugging_face_names() {
        let cases = [
            ("embed_tokens", "model.embed_tokens.weight"),
            ("embed_tokens.Dense", "model.embed_tokens.weight"),
            ("norm.weight", "model.norm.weight"),
            ("lm_head.weight.Dense", "lm_head.weight"),
            ("layers.0.input_layernorm.weight", "model.layers.0.input_layernorm.weight"),
            ("layers.1.self_attn.query.bias", "model.layers.1.self_attn.q_proj.bias"),
            ("layers.1.self_attn.value.lora.lora_a", "model.layers.1.self_attn.v_proj.lora_A.weight"),
            ("layers.0.ffn.Dense.gate.weight.Dense", "model.layers.0.mlp.gate_proj.weight"),
            ("layers.0.ffn.Moe.router.weight.Dense", "model.layers.0.block_sparse_moe.gate.weight"),
            ("layers.0.ffn.Moe.experts.3.down.weight.Dense", "model.layers.0.block_sparse_moe.experts.3.w2.weight"),
        ];
        for (burn, hf) in cases {
            assert_eq!(param_name(&path(burn)), hf, "{burn}");
        }
    }

    #[test]
    fn gguf_names_map_to_hugging_face_names() {
        assert_eq!(gguf_to_hf("blk.4.attn_output.weight", 0), vec![("model.layers.4.self_attn.o_proj.weight".into(), None)]);
        assert_eq!(gguf_to_hf("blk.0.ffn_norm.weight", 0), vec![("model.layers.0.post_attention_layernorm.weight".into(), None)]);
        assert_eq!(gguf_to_hf("blk.0.attn_q.bias", 0), vec![("model.layers.0.self_attn.q_proj.bias".into(), None)]);
        let stacked = gguf_to_hf("blk.1.ffn_down_exps.weight", 2);
        assert_eq!(stacked[1], ("model.layers.1.block_sparse_moe.experts.1.w2.weight".into(), Some(1)));
        assert_eq!(gguf_to_hf("blk.1.ffn_up.7.weight", 8), vec![("model.layers.1.block_sparse_moe.experts.7.w3.weight".into(), None)]);
        assert_eq!(gguf_to_hf("rope_freqs.weight", 0), vec![("rope_freqs.weight".into(), None)]);
        assert_eq!(gguf_name(LinearId::Layer { layer: 2, slot: LinearSlot::Gate }, "weight"), "blk.2.ffn_gate.weight");
        for g in ["token_embd.weight", "output.weight", "output_norm.weight", "blk.3.attn_norm.weight", "blk.3.ffn_norm.weight",
                  "blk.0.attn_q.bias", "blk.1.attn_v.weight", "blk.2.ffn_down.weight", "blk.2.ffn_gate_inp.weight"] {
            let hf = &gguf_to_hf(g, 0)[0].0;
            assert_eq!(hf_to_gguf(hf).as_deref(), Some(g), "{hf}");
        }
        assert_eq!(hf_to_gguf("model.layers.0.block_sparse_moe.experts.1.w1.weight"), None);
        assert_eq!(hf_to_gguf("model.rotary.inv_freq"), None);
    }
}
