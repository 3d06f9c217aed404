//! Supervised fine-tuning data: tokenization with completion-only labels, padded batches and
//! padding-free packing.
//!
//! Which tokens are trained comes from token spans of the rendered template, never from
//! searching for a marker string (the way trl's old `DataCollatorForCompletionOnlyLM` fails when
//! the marker tokenizes differently in context): the prompt is rendered with the generation
//! prompt, the whole conversation without it, and the common token prefix is the masked part
//! (trl's `completion_only_loss` procedure). For `messages` records every assistant turn is
//! found the same way, turn by turn.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use llm_core::chat::Message;
use llm_core::{ModelInput, Tokenizer};

use crate::data::{SftExample, Turns};
use crate::error::{Result, TrainError};

/// Label of a position that is not trained (PyTorch's `ignore_index`).
pub const IGNORE: i64 = -100;

/// One tokenized example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedExample {
    /// Token ids.
    pub input_ids: Vec<u32>,
    /// Same length: the id where the token is trained, [`IGNORE`] elsewhere (unshifted, as
    /// transformers' `labels`: position `t`'s logits predict `labels[t + 1]`).
    pub labels: Vec<i64>,
}

impl TokenizedExample {
    /// Number of scored positions (targets after the shift).
    pub fn n_targets(&self) -> usize {
        self.labels.iter().skip(1).filter(|&&l| l != IGNORE).count()
    }
}

/// How examples are turned into tokens.
#[derive(Debug, Clone)]
pub struct SftTokenizer<'a> {
    /// Tokenizer with its chat template.
    pub tokenizer: &'a Tokenizer,
    /// Truncate longer examples (from the right), as trl's `max_length`.
    pub max_length: usize,
}

impl SftTokenizer<'_> {
    /// Tokenizes one example with its trained spans.
    pub fn tokenize(&self, example: &SftExample) -> Result<TokenizedExample> {
        let mut ex = match example {
            SftExample::Messages(msgs) => self.conversation(msgs)?,
            SftExample::PromptCompletion { prompt: Turns::Chat(p), completion: Turns::Chat(c) } => {
                let prompt = self.render_ids(p, true)?;
                let full = self.render_ids(&[p.as_slice(), c.as_slice()].concat(), false)?;
                let start = common_prefix(&prompt, &full);
                let labels = full.iter().enumerate().map(|(i, &t)| if i < start { IGNORE } else { t as i64 }).collect();
                TokenizedExample { input_ids: full, labels }
            }
            SftExample::PromptCompletion { prompt, completion } => {
                let (p, c) = match (prompt, completion) {
                    (Turns::Text(p), Turns::Text(c)) => (p, c),
                    _ => return Err(TrainError::config("prompt/completion", "mixed text and message lists")),
                };
                let mut ids = self.tokenizer.encode(p, true)?.ids;
                let n_prompt = ids.len();
                ids.extend(self.tokenizer.encode(c, false)?.ids);
                ids.extend(self.tokenizer.eos_token_id());
                let labels = ids.iter().enumerate().map(|(i, &t)| if i < n_prompt { IGNORE } else { t as i64 }).collect();
                TokenizedExample { input_ids: ids, labels }
            }
            SftExample::Text(t) => {
                let mut ids = self.tokenizer.encode(t, true)?.ids;
                ids.extend(self.tokenizer.eos_token_id());
                let labels = ids.iter().map(|&t| t as i64).collect();
                TokenizedExample { input_ids: ids, labels }
            }
        };
        ex.input_ids.truncate(self.max_length);
        ex.labels.truncate(self.max_length);
        Ok(ex)
    }

    /// Every example; an error names the example's index.
    pub fn tokenize_all(&self, examples: &[SftExample]) -> Result<Vec<TokenizedExample>> {
        examples
            .iter()
            .enumerate()
            .map(|(i, e)| {
                self.tokenize(e).map_err(|err| TrainError::config(format!("example {i}"), err.to_string()))
            })
            .collect()
    }

    /// Trains every assistant turn: the span between the conversation rendered up to the turn
    /// with a generation prompt and rendered through the turn.
    fn conversation(&self, msgs: &[Message]) -> Result<TokenizedExample> {
        let full = self.render_ids(msgs, false)?;
        let mut labels = vec![IGNORE; full.len()];
        for (i, _) in msgs.iter().enumerate().filter(|(_, m)| m.role == "assistant") {
            let start = common_prefix(&self.render_ids(&msgs[..i], true)?, &full);
            let end = common_prefix(&self.render_ids(&msgs[..=i], false)?, &full);
            for t in start..end {
                labels[t] = full[t] as i64;
            }
        }
        Ok(TokenizedExample { input_ids: full, labels })
    }

    /// The template's text tokenized without adding special tokens (the template writes them).
    fn render_ids(&self, msgs: &[Message], add_generation_prompt: bool) -> Result<Vec<u32>> {
        if msgs.is_empty() {
            return Ok(vec![]);
        }
        let text = self.tokenizer.apply_chat_template(msgs, add_generation_prompt)?;
        Ok(self.tokenizer.encode(&text, false)?.ids)
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A batch ready for the model: padded rows, or padding-free packed rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftBatch {
    /// `[rows][len]`
    pub input_ids: Vec<Vec<u32>>,
    /// `[rows][len]`, [`IGNORE`] at padding and untrained positions.
    pub labels: Vec<Vec<i64>>,
    /// `[rows][len]`, false at padding; `None` when nothing is padded.
    pub attention_mask: Option<Vec<Vec<bool>>>,
    /// `[rows][len]` positions restarting at 0 per packed example; `None`: `0..len`.
    pub position_ids: Option<Vec<Vec<usize>>>,
    /// `[rows][len]` packed-example index; `None` when rows are not packed.
    pub segment_ids: Option<Vec<Vec<usize>>>,
}

impl SftBatch {
    /// Right-padded rows (trl's collator): `pad_id` tokens, attention 0 and label [`IGNORE`]
    /// on padding.
    pub fn padded(examples: &[&TokenizedExample], pad_id: u32) -> Self {
        let len = examples.iter().map(|e| e.input_ids.len()).max().unwrap_or(0);
        let pad = |e: &TokenizedExample| {
            let n = len - e.input_ids.len();
            let ids: Vec<u32> = e.input_ids.iter().copied().chain(std::iter::repeat_n(pad_id, n)).collect();
            let labels: Vec<i64> = e.labels.iter().copied().chain(std::iter::repeat_n(IGNORE, n)).collect();
            let mask = (0..len).map(|i| i < e.input_ids.len()).collect::<Vec<bool>>();
            (ids, labels, mask)
        };
        let rows: Vec<_> = examples.iter().map(|e| pad(e)).collect();
        let any_pad = rows.iter().any(|(_, _, m)| m.iter().any(|&x| !x));
        Self {
            input_ids: rows.iter().map(|r| r.0.clone()).collect(),
            labels: rows.iter().map(|r| r.1.clone()).collect(),
            attention_mask: any_pad.then(|| rows.iter().map(|r| r.2.clone()).collect()),
            position_ids: None,
            segment_ids: None,
        }
    }

    /// Padding-free packing: examples placed first-fit-decreasing into rows of at most
    /// `max_len` tokens, each example with positions from 0 and attending only to itself, so a
    /// packed row computes exactly what the examples compute alone. The first token of each
    /// example is never a target (it would be predicted from the previous example). Shorter
    /// rows are right-padded.
    pub fn packed(examples: &[&TokenizedExample], max_len: usize, pad_id: u32) -> Self {
        let mut order: Vec<usize> = (0..examples.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(examples[i].input_ids.len()));
        let mut rows: Vec<Vec<usize>> = vec![];
        let mut used: Vec<usize> = vec![];
        for i in order {
            let n = examples[i].input_ids.len().min(max_len);
            match used.iter().position(|&u| u + n <= max_len) {
                Some(r) => {
                    rows[r].push(i);
                    used[r] += n;
                }
                None => {
                    rows.push(vec![i]);
                    used.push(n);
                }
            }
        }
        // Keep dataset order inside a row (deterministic, and matches trl for one row).
        rows.iter_mut().for_each(|r| r.sort_unstable());
        let len = used.iter().copied().max().unwrap_or(0);
        let mut batch = Self { input_ids: vec![], labels: vec![], attention_mask: None, position_ids: None, segment_ids: None };
        let (mut masks, mut positions, mut segments) = (vec![], vec![], vec![]);
        for row in rows {
            let (mut ids, mut labels, mut pos, mut seg) = (vec![], vec![], vec![], vec![]);
            for (s, &i) in row.iter().enumerate() {
                let e = examples[i];
                let n = e.input_ids.len().min(max_len);
                ids.extend_from_slice(&e.input_ids[..n]);
                labels.push(IGNORE);
                labels.extend_from_slice(&e.labels[1..n]);
                pos.extend(0..n);
                seg.extend(std::iter::repeat_n(s, n));
            }
            let real = ids.len();
            let pad = len - real;
            ids.extend(std::iter::repeat_n(pad_id, pad));
            labels.extend(std::iter::repeat_n(IGNORE, pad));
            pos.extend(0..pad);
            seg.extend(std::iter::repeat_n(row.len(), pad));
            masks.push((0..len).map(|i| i < real).collect::<Vec<_>>());
            batch.input_ids.push(ids);
            batch.labels.push(labels);
            positions.push(pos);
            segments.push(seg);
        }
        batch.attention_mask = masks.iter().any(|m| m.iter().any(|&x| !x)).then_some(masks);
        batch.position_ids = Some(positions);
        batch.segment_ids = Some(segments);
        batch
    }

    /// Tokens in the batch that are not padding.
    pub fn n_tokens(&self) -> usize {
        match &self.attention_mask {
            Some(m) => m.iter().flatten().filter(|&&x| x).count(),
            None => self.input_ids.iter().map(Vec::len).sum(),
        }
    }

    /// Scored positions: `(row, t)` with `labels[row][t + 1] != IGNORE`.
    pub fn n_targets(&self) -> usize {
        self.labels.iter().map(|r| r.iter().skip(1).filter(|&&l| l != IGNORE).count()).sum()
    }

    /// The model input on `device`.
    pub fn model_input<B: Backend>(&self, device: &B::Device) -> ModelInput<B> {
        let (rows, len) = (self.input_ids.len(), self.input_ids.first().map_or(0, Vec::len));
        let flat: Vec<i64> = self.input_ids.iter().flatten().map(|&x| x as i64).collect();
        let mut input = ModelInput::new(Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [rows, len]), device));
        input.attention_mask = self.attention_mask.clone();
        input.position_ids = self.position_ids.clone();
        input.segment_ids = self.segment_ids.clone();
        input
    }
}
