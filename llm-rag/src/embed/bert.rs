//! A BERT encoder (`BertModel` of transformers): embeddings, post-norm Transformer layers with
//! GELU feed-forward, padding-aware self-attention. Loads the safetensors of a Hugging Face
//! BERT checkpoint (MiniLM, BGE, E5, ...).

use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::activation::gelu;
use burn::tensor::module::{attention, embedding};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{backend::Backend, Bool, Int, Tensor, TensorData};
use llm_core::nn::Linear;
use llm_core::weights::{SafetensorsSource, TensorSource};
use serde_json::Value;

use crate::error::{RagError, Result};

/// The fields of a BERT `config.json` the encoder uses.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Longest position.
    pub max_position_embeddings: usize,
    /// Segment vocabulary (2 for BERT).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

impl BertConfig {
    /// Parses `config.json`; a model type or activation this encoder does not implement is an
    /// error naming the field.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| RagError::io(path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| RagError::model(path, format!("not JSON: {e}")))?;
        let bad = |field: &str, message: String| RagError::model(path, format!("`{field}`: {message}"));
        match v.get("model_type").and_then(Value::as_str) {
            Some("bert") | None => {}
            Some(other) => return Err(bad("model_type", format!("`{other}` is not supported; supported: bert"))),
        }
        if let Some(act) = v.get("hidden_act").and_then(Value::as_str).filter(|a| *a != "gelu") {
            return Err(bad("hidden_act", format!("`{act}` is not supported; supported: gelu")));
        }
        if let Some(p) = v.get("position_embedding_type").and_then(Value::as_str).filter(|p| *p != "absolute") {
            return Err(bad("position_embedding_type", format!("`{p}` is not supported; supported: absolute")));
        }
        let int = |k: &str| -> Result<usize> {
            v.get(k).and_then(Value::as_u64).map(|x| x as usize).ok_or_else(|| bad(k, "missing or not an integer".into()))
        };
        let config = Self {
            vocab_size: int("vocab_size")?,
            hidden_size: int("hidden_size")?,
            num_hidden_layers: int("num_hidden_layers")?,
            num_attention_heads: int("num_attention_heads")?,
            intermediate_size: int("intermediate_size")?,
            max_position_embeddings: int("max_position_embeddings")?,
            type_vocab_size: v.get("type_vocab_size").and_then(Value::as_u64).unwrap_or(2) as usize,
            layer_norm_eps: v.get("layer_norm_eps").and_then(Value::as_f64).unwrap_or(1e-12),
        };
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(bad("num_attention_heads", format!("{} does not divide hidden_size {}", config.num_attention_heads, config.hidden_size)));
        }
        Ok(config)
    }
}

/// `(x − mean) / sqrt(var + eps) · weight + bias` over the last dimension (biased variance).
#[derive(Module, Debug)]
pub struct LayerNorm<B: Backend> {
    /// `[d]`
    pub weight: Param<Tensor<B, 1>>,
    /// `[d]`
    pub bias: Param<Tensor<B, 1>>,
    /// Epsilon.
    pub eps: f64,
}

impl<B: Backend> LayerNorm<B> {
    /// x: `[..., d]` -> same shape.
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        (x - mean) / (var + self.eps).sqrt() * self.weight.val().unsqueeze() + self.bias.val().unsqueeze()
    }
}

/// One post-norm encoder layer.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// `attention.self.query`
    pub query: Linear<B>,
    /// `attention.self.key`
    pub key: Linear<B>,
    /// `attention.self.value`
    pub value: Linear<B>,
    /// `attention.output.dense`
    pub attention_out: Linear<B>,
    /// `attention.output.LayerNorm`
    pub attention_norm: LayerNorm<B>,
    /// `intermediate.dense`
    pub intermediate: Linear<B>,
    /// `output.dense`
    pub output: Linear<B>,
    /// `output.LayerNorm`
    pub output_norm: LayerNorm<B>,
    /// Heads.
    pub n_heads: usize,
}

impl<B: Backend> BertLayer<B> {
    /// x: `[batch, seq, d]`, mask `[batch, 1, seq, seq]` (true = padding key) -> `[batch, seq, d]`
    pub fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 4, Bool>>) -> Tensor<B, 3> {
        let [b, s, d] = x.dims();
        let (h, hd) = (self.n_heads, d / self.n_heads);
        let split = |t: Tensor<B, 3>| t.reshape([b, s, h, hd]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let mask = mask.map(|m| m.expand([b, h, s, s]));
        let options = AttentionModuleOptions { scale: Some((hd as f64).powf(-0.5)), softcap: None, is_causal: false };
        let ctx = attention(q, k, v, mask, None, options).swap_dims(1, 2).reshape([b, s, d]);
        let x = self.attention_norm.forward(self.attention_out.forward(ctx) + x);
        let ff = self.output.forward(gelu(self.intermediate.forward(x.clone())));
        self.output_norm.forward(ff + x)
    }
}

/// The encoder: embeddings and layers (the pooler head is not used by sentence embeddings).
#[derive(Module, Debug)]
pub struct BertModel<B: Backend> {
    /// `[vocab, d]`
    pub word_embeddings: Param<Tensor<B, 2>>,
    /// `[max_positions, d]`
    pub position_embeddings: Param<Tensor<B, 2>>,
    /// `[type_vocab, d]`
    pub token_type_embeddings: Param<Tensor<B, 2>>,
    /// `embeddings.LayerNorm`
    pub embeddings_norm: LayerNorm<B>,
    /// Encoder layers.
    pub layers: Vec<BertLayer<B>>,
    /// The configuration.
    #[module(skip)]
    pub config: BertConfig,
}

impl<B: Backend> BertModel<B> {
    /// Loads `config.json` and `model.safetensors` (or a sharded index) from `dir`; tensors
    /// may carry a `bert.` prefix (checkpoints saved from `BertFor...` heads).
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self> {
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let src = SafetensorsSource::open_dir(dir)?;
        let names = src.tensor_names();
        let prefix = if names.iter().any(|n| n.starts_with("bert.")) { "bert." } else { "" };
        let read = |name: &str, shape: &[usize]| -> Result<TensorData> {
            let full = format!("{prefix}{name}");
            let got = src.shape(&full).ok_or_else(|| RagError::model(dir, format!("missing tensor {full}")))?;
            if got != shape {
                return Err(RagError::model(dir, format!("tensor {full}: shape {got:?}, config says {shape:?}")));
            }
            Ok(src.read(&full)?.convert::<f32>())
        };
        let (d, ff) = (config.hidden_size, config.intermediate_size);
        let t1 = |name: &str, n: usize| -> Result<Tensor<B, 1>> { Ok(Tensor::from_data(read(name, &[n])?, device)) };
        let t2 = |name: &str, r: usize, c: usize| -> Result<Tensor<B, 2>> { Ok(Tensor::from_data(read(name, &[r, c])?, device)) };
        let linear = |p: &str, out: usize, inp: usize| -> Result<Linear<B>> {
            Ok(Linear::new(t2(&format!("{p}.weight"), out, inp)?, Some(t1(&format!("{p}.bias"), out)?)))
        };
        let norm = |p: &str| -> Result<LayerNorm<B>> {
            Ok(LayerNorm {
                weight: Param::from_tensor(t1(&format!("{p}.weight"), d)?),
                bias: Param::from_tensor(t1(&format!("{p}.bias"), d)?),
                eps: config.layer_norm_eps,
            })
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(BertLayer {
                    query: linear(&format!("{p}.attention.self.query"), d, d)?,
                    key: linear(&format!("{p}.attention.self.key"), d, d)?,
                    value: linear(&format!("{p}.attention.self.value"), d, d)?,
                    attention_out: linear(&format!("{p}.attention.output.dense"), d, d)?,
                    attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: linear(&format!("{p}.intermediate.dense"), ff, d)?,
                    output: linear(&format!("{p}.output.dense"), d, ff)?,
                    output_norm: norm(&format!("{p}.output.LayerNorm"))?,
                    n_heads: config.num_attention_heads,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word_embeddings: Param::from_tensor(t2("embeddings.word_embeddings.weight", config.vocab_size, d)?),
            position_embeddings: Param::from_tensor(t2("embeddings.position_embeddings.weight", config.max_position_embeddings, d)?),
            token_type_embeddings: Param::from_tensor(t2("embeddings.token_type_embeddings.weight", config.type_vocab_size, d)?),
            embeddings_norm: norm("embeddings.LayerNorm")?,
            layers,
            config,
        })
    }

    /// input_ids, token_type_ids: `[batch, seq]`; attention_mask `[batch][seq]` (false at
    /// padding) -> last hidden state `[batch, seq, d]`.
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>, token_type_ids: Tensor<B, 2, Int>, attention_mask: &[Vec<bool>]) -> Tensor<B, 3> {
        let [b, s] = input_ids.dims();
        let device = input_ids.device();
        let positions = Tensor::<B, 1, Int>::arange(0..s as i64, &device).unsqueeze::<2>().expand([b, s]);
        let x = embedding(self.word_embeddings.val(), input_ids)
            + embedding(self.position_embeddings.val(), positions)
            + embedding(self.token_type_embeddings.val(), token_type_ids);
        let mut x = self.embeddings_norm.forward(x);
        let any_pad = attention_mask.iter().flatten().any(|&m| !m);
        let mask = any_pad.then(|| {
            // [b, 1, 1, s] -> [b, 1, s, s]: every query sees the row's real keys.
            let keys: Vec<bool> = attention_mask.iter().flat_map(|r| r.iter().map(|&m| !m)).collect();
            Tensor::<B, 4, Bool>::from_data(TensorData::new(keys, [b, 1, 1, s]), &device).expand([b, 1, s, s])
        });
        for layer in &self.layers {
            x = layer.forward(x, mask.clone());
        }
        x
    }
}
