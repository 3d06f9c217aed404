//! Attention masks: causal, sliding-window and padding, combined into one boolean tensor.

use burn::tensor::{backend::Backend, Bool, Tensor, TensorData};

/// What a forward pass's queries may see.
#[derive(Debug, Clone)]
pub struct MaskSpec<'a> {
    /// Rows in the batch.
    pub batch: usize,
    /// Positions already in the cache (queries start here).
    pub past_len: usize,
    /// New positions in this forward.
    pub seq: usize,
    /// `[batch][past_len + seq]`, false at padding. `None`: no padding.
    pub attention_mask: Option<&'a [Vec<bool>]>,
    /// `[batch][seq]` packed-example index of each position (no cache): a query sees only keys
    /// of its own segment, the block-diagonal causal mask of padding-free packing
    /// (flash-attention's `cu_seq_lens`). `None`: one sequence per row.
    pub segment_ids: Option<&'a [Vec<usize>]>,
}

impl MaskSpec<'_> {
    /// Keys visible to every query.
    pub fn total_len(&self) -> usize {
        self.past_len + self.seq
    }

    /// Whether query `i` (row `b`) may not attend to key `j` (positions in the cache).
    fn masked(&self, b: usize, i: usize, j: usize, window: Option<usize>) -> bool {
        let q = self.past_len + i;
        let causal = j > q;
        // transformers: a key is visible when q - k < sliding_window.
        let outside_window = window.is_some_and(|w| q >= j + w);
        let padding = self.attention_mask.is_some_and(|m| !m[b][j]);
        let other_segment = self.segment_ids.is_some_and(|s| s[b][j] != s[b][q]);
        causal || outside_window || padding || other_segment
    }

    /// The mask for one layer kind, `[batch, 1, seq, past_len + seq]` with true = hidden;
    /// `None` when nothing is hidden (a single new token without padding or window).
    ///
    /// A query whose every key is hidden (a padding position in a left-padded row) is allowed to
    /// see itself, as transformers does, so its softmax stays finite; its output is never used.
    pub fn build<B: Backend>(&self, window: Option<usize>, device: &B::Device) -> Option<Tensor<B, 4, Bool>> {
        let data = self.hidden(window)?;
        Some(Tensor::from_data(TensorData::new(data, [self.batch, 1, self.seq, self.total_len()]), device))
    }

    /// [`Self::build`]'s values on the host: `[batch * seq * (past_len + seq)]` row-major, true =
    /// hidden; `None` when nothing is hidden.
    pub fn hidden(&self, window: Option<usize>) -> Option<Vec<bool>> {
        let t = self.total_len();
        let mut any = false;
        let mut data = Vec::with_capacity(self.batch * self.seq * t);
        for b in 0..self.batch {
            for i in 0..self.seq {
                let row_start = data.len();
                data.extend((0..t).map(|j| self.masked(b, i, j, window)));
                if data[row_start..].iter().all(|&m| m) {
                    data[row_start + self.past_len + i] = false;
                }
                any |= data[row_start..].iter().any(|&m| m);
            }
        }
        any.then_some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(spec: &MaskSpec, window: Option<usize>) -> Vec<Vec<bool>> {
        let t = spec.total_len();
        (0..spec.batch * spec.seq)
            .map(|r| (0..t).map(|j| spec.masked(r / spec.seq, r % spec.seq, j, window)).collect())
            .collect()
    }

    #[test]
    fn causal_window_and_padding_combine() {
        let pad = vec![vec![false, true, true, true]];
        let spec = MaskSpec { batch: 1, past_len: 0, seq: 4, attention_mask: Some(&pad), segment_ids: None };
        let m = rows(&spec, Some(2));
        // query 3 sees keys 2 and 3 only (window 2); key 0 is padding everywhere.
        assert_eq!(m[3], vec![true, true, false, false]);
        assert_eq!(m[1], vec![true, false, true, true]);
    }

    #[test]
    fn packed_segments_see_only_themselves() {
        let seg = vec![vec![0, 0, 1, 1, 1]];
        let spec = MaskSpec { batch: 1, past_len: 0, seq: 5, attention_mask: None, segment_ids: Some(&seg) };
        let m = rows(&spec, None);
        assert_eq!(m[1], vec![false, false, true, true, true]);
        assert_eq!(m[3], vec![true, true, false, false, true]);
    }

    #[test]
    fn single_decode_step_without_padding_needs_no_mask() {
        let spec = MaskSpec { batch: 2, past_len: 7, seq: 1, attention_mask: None, segment_ids: None };
        assert!(spec.build::<burn::backend::Flex>(None, &Default::default()).is_none());
    }
}
