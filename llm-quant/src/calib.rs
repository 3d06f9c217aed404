//! Calibration data: token sequences that drive GPTQ's Hessians.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use llm_core::Tokenizer;

use crate::error::{QuantError, Result};

/// Equal-length token sequences fed through the model during calibration.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// `[n_samples][seq_len]` token ids.
    pub sequences: Vec<Vec<u32>>,
}

impl Calibration {
    /// Checks that there is at least one sequence, all of the same non-zero length.
    pub fn new(sequences: Vec<Vec<u32>>) -> Result<Self> {
        let len = sequences.first().map_or(0, Vec::len);
        if len == 0 {
            return Err(QuantError::Calibration("no calibration sequence (need at least one non-empty)".into()));
        }
        if let Some((i, s)) = sequences.iter().enumerate().find(|(_, s)| s.len() != len) {
            return Err(QuantError::Calibration(format!("sequence {i} has {} tokens, the first has {len}", s.len())));
        }
        Ok(Self { sequences })
    }

    /// Tokenizes `text` (no special tokens) and cuts it into up to `n_samples` consecutive,
    /// non-overlapping windows of `seq_len` tokens, each starting with BOS when the model has
    /// one (as GPTQModel's examples tokenize each sample).
    ///
    /// A text shorter than one window is an error, not a silently tiny calibration set.
    pub fn from_text(tokenizer: &Tokenizer, text: &str, n_samples: usize, seq_len: usize, bos: Option<u32>) -> Result<Self> {
        if n_samples == 0 || seq_len < 2 {
            return Err(QuantError::config("calibration", format!("need n_samples >= 1 and seq_len >= 2, got {n_samples} and {seq_len}")));
        }
        let ids = tokenizer.encode(text, false)?.ids;
        let body = seq_len - usize::from(bos.is_some());
        if ids.len() < body {
            return Err(QuantError::Calibration(format!(
                "the text has {} tokens, shorter than one sequence of {seq_len}",
                ids.len()
            )));
        }
        let sequences = ids
            .chunks_exact(body)
            .take(n_samples)
            .map(|chunk| bos.into_iter().chain(chunk.iter().copied()).collect())
            .collect();
        Self::new(sequences)
    }

    /// The sequences as id batches of up to `batch_size` rows, each `[rows, seq_len]`: what
    /// calibration forwards embed. An empty calibration (built by hand) is an error.
    pub fn id_batches<B: Backend>(&self, batch_size: usize, device: &B::Device) -> Result<Vec<Tensor<B, 2, Int>>> {
        let seq = self.sequences.first().map(Vec::len).filter(|&n| n > 0).ok_or_else(|| {
            QuantError::Calibration("no calibration sequence (need at least one non-empty)".into())
        })?;
        Ok(self
            .sequences
            .chunks(batch_size.max(1))
            .map(|chunk| {
                let flat: Vec<i64> = chunk.iter().flatten().map(|&t| i64::from(t)).collect();
                Tensor::from_data(TensorData::new(flat, [chunk.len(), seq]), device)
            })
            .collect())
    }

    /// Total tokens.
    pub fn n_tokens(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }
}
