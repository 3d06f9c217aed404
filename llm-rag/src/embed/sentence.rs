//! A sentence-transformers model: `modules.json` (Transformer → Pooling → optional Normalize),
//! `1_Pooling/config.json`, `sentence_bert_config.json` (`max_seq_length`), the tokenizer.

use std::path::{Path, PathBuf};

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use serde_json::Value;

use super::bert::BertModel;
use super::Embedder;
use crate::error::{RagError, Result};

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over real (non-padding) tokens.
    Mean,
    /// The first (`[CLS]`) token.
    Cls,
    /// Element-wise max over real tokens.
    Max,
}

impl Pooling {
    /// From `1_Pooling/config.json`; a mode this crate lacks is an error naming it.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| RagError::io(path, e))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| RagError::model(path, format!("not JSON: {e}")))?;
        let on = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        let modes: Vec<&str> = ["pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"]
            .into_iter()
            .filter(|k| on(k))
            .collect();
        match modes.as_slice() {
            ["pooling_mode_mean_tokens"] => Ok(Self::Mean),
            ["pooling_mode_cls_token"] => Ok(Self::Cls),
            ["pooling_mode_max_tokens"] => Ok(Self::Max),
            other => Err(RagError::model(path, format!("pooling modes {other:?}: exactly one of mean, cls or max is supported"))),
        }
    }

    /// hidden: `[batch, seq, d]`, mask `[batch][seq]` -> `[batch, d]`
    pub fn pool<B: Backend>(self, hidden: Tensor<B, 3>, mask: &[Vec<bool>]) -> Tensor<B, 2> {
        let [b, s, d] = hidden.dims();
        let device = hidden.device();
        let m: Vec<f32> = mask.iter().flat_map(|r| r.iter().map(|&x| if x { 1.0 } else { 0.0 })).collect();
        let m = Tensor::<B, 2>::from_data(TensorData::new(m, [b, s]), &device).unsqueeze_dim::<3>(2);
        match self {
            Self::Cls => hidden.narrow(1, 0, 1).reshape([b, d]),
            Self::Mean => {
                // sentence-transformers: sum(h·m) / clamp(sum(m), 1e-9)
                let sum = (hidden * m.clone()).sum_dim(1).reshape([b, d]);
                let count = m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
                sum / count
            }
            Self::Max => {
                // Padding set to a large negative value first, as sentence-transformers does.
                let filled = hidden.mask_fill(m.equal_elem(0.0).expand([b, s, d]), -1e9);
                filled.max_dim(1).reshape([b, d])
            }
        }
    }
}

/// A tokenized, right-padded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// `[batch][seq]`
    pub input_ids: Vec<Vec<u32>>,
    /// `[batch][seq]`
    pub token_type_ids: Vec<Vec<u32>>,
    /// `[batch][seq]`, false at padding.
    pub attention_mask: Vec<Vec<bool>>,
}

/// A sentence-transformers encoder on backend `B`.
#[derive(Debug)]
pub struct SentenceTransformer<B: Backend> {
    /// The encoder.
    pub model: BertModel<B>,
    /// Pooling.
    pub pooling: Pooling,
    /// Whether vectors are L2-normalized (a `Normalize` module).
    pub normalize: bool,
    /// Longer inputs are truncated to this many tokens (special tokens included).
    pub max_seq_length: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    tokenizer: tokenizers::Tokenizer,
    dir: PathBuf,
    device: B::Device,
}

impl<B: Backend> SentenceTransformer<B> {
    /// Loads a sentence-transformers directory. Modules other than Transformer, Pooling and
    /// Normalize are errors naming the module.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self> {
        let dir = dir.as_ref();
        let modules_path = dir.join("modules.json");
        let (mut pooling_dir, mut normalize) = (None, false);
        if modules_path.exists() {
            let text = std::fs::read_to_string(&modules_path).map_err(|e| RagError::io(&modules_path, e))?;
            let v: Value = serde_json::from_str(&text).map_err(|e| RagError::model(&modules_path, format!("not JSON: {e}")))?;
            for m in v.as_array().ok_or_else(|| RagError::model(&modules_path, "expected a list of modules"))? {
                let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
                let path = m.get("path").and_then(Value::as_str).unwrap_or("");
                match kind.rsplit('.').next().unwrap_or("") {
                    "Transformer" => {}
                    "Pooling" => pooling_dir = Some(dir.join(path)),
                    "Normalize" => normalize = true,
                    other => return Err(RagError::model(&modules_path, format!("module `{other}` ({kind}) is not supported"))),
                }
            }
        }
        let pooling = match pooling_dir {
            Some(p) => Pooling::from_file(&p.join("config.json"))?,
            None => Pooling::Mean,
        };
        let st_config = dir.join("sentence_bert_config.json");
        let max_seq_length = std::fs::read_to_string(&st_config)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("max_seq_length").and_then(Value::as_u64))
            .map_or(512, |x| x as usize);
        let model = BertModel::load(dir, device)?;
        let max_seq_length = max_seq_length.min(model.config.max_position_embeddings);
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| RagError::Tokenizer { path: tok_path.clone(), message: e.to_string() })?;
        let truncation = tokenizers::TruncationParams { max_length: max_seq_length, ..Default::default() };
        tokenizer
            .with_truncation(Some(truncation))
            .map_err(|e| RagError::Tokenizer { path: tok_path.clone(), message: e.to_string() })?;
        tokenizer.with_padding(None);
        tracing::info!(dir = %dir.display(), ?pooling, normalize, max_seq_length, "loaded sentence-transformers model");
        Ok(Self { model, pooling, normalize, max_seq_length, batch_size: 32, tokenizer, dir: dir.to_path_buf(), device: device.clone() })
    }

    /// `texts` tokenized (truncated to `max_seq_length`) and right-padded with 0.
    pub fn tokenize(&self, texts: &[&str]) -> Result<TokenBatch> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| RagError::Tokenizer { path: self.dir.join("tokenizer.json"), message: e.to_string() })?;
        let len = encodings.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let pad = |v: &[u32]| v.iter().copied().chain(std::iter::repeat(0)).take(len).collect::<Vec<_>>();
        Ok(TokenBatch {
            input_ids: encodings.iter().map(|e| pad(e.get_ids())).collect(),
            token_type_ids: encodings.iter().map(|e| pad(e.get_type_ids())).collect(),
            attention_mask: encodings.iter().map(|e| (0..len).map(|i| i < e.get_ids().len()).collect()).collect(),
        })
    }

    /// The encoder's last hidden state for `texts`: `[batch, seq, d]` with the masks.
    pub fn hidden_states(&self, texts: &[&str]) -> Result<(Tensor<B, 3>, Vec<Vec<bool>>)> {
        let TokenBatch { input_ids: ids, token_type_ids: types, attention_mask: mask } = self.tokenize(texts)?;
        let shape = [ids.len(), ids.first().map_or(0, Vec::len)];
        let int = |rows: &[Vec<u32>]| {
            let flat: Vec<i64> = rows.iter().flatten().map(|&x| x as i64).collect();
            Tensor::<B, 2, Int>::from_data(TensorData::new(flat, shape), &self.device)
        };
        Ok((self.model.forward(int(&ids), int(&types), &mask), mask))
    }

    /// Sentence vectors of one batch: `[batch, d]`.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Tensor<B, 2>> {
        let (hidden, mask) = self.hidden_states(texts)?;
        let pooled = self.pooling.pool(hidden, &mask);
        Ok(if self.normalize {
            // torch.nn.functional.normalize: x / max(‖x‖, 1e-12)
            let norm = pooled.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
            pooled / norm
        } else {
            pooled
        })
    }
}

impl<B: Backend> Embedder for SentenceTransformer<B> {
    fn dim(&self) -> usize {
        self.model.config.hidden_size
    }

    /// Batches of `batch_size`, longest texts first (less padding, as sentence-transformers
    /// sorts), returned in input order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].len()));
        let mut out = vec![vec![]; texts.len()];
        for chunk in order.chunks(self.batch_size.max(1)) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let v: Vec<f32> = llm_core::io::host_f32(self.embed_batch(&batch)?).1;
            for (row, &i) in v.chunks(self.dim()).zip(chunk) {
                out[i] = row.to_vec();
            }
        }
        Ok(out)
    }
}

/// What llm-core's server runs behind `/v1/embeddings`.
impl<B: Backend> llm_core::embed::TextEmbedder for SentenceTransformer<B> {
    fn dim(&self) -> usize {
        Embedder::dim(self)
    }

    fn embed_texts(&self, texts: &[&str]) -> std::result::Result<Vec<Vec<f32>>, llm_core::embed::EmbedError> {
        Ok(self.embed(texts)?)
    }

    /// Tokens after truncation, special tokens included, padding excluded.
    fn count_tokens(&self, texts: &[&str]) -> std::result::Result<usize, llm_core::embed::EmbedError> {
        let batch = self.tokenize(texts)?;
        Ok(batch.attention_mask.iter().flatten().filter(|&&m| m).count())
    }
}
