//! Logits processors with transformers' semantics, applied on the host to one row of
//! scores (`[vocab]`) given the ids so far (prompt included).

use std::collections::HashMap;

use super::GenerationConfig;

/// Rewrites one row of next-token scores.
pub trait LogitsProcessor: Send + Sync {
    /// input_ids: prompt and generated ids; prompt_len: how many of them are prompt;
    /// scores: `[vocab]`, rewritten in place (`-inf` removes a token).
    fn process(&self, input_ids: &[u32], prompt_len: usize, scores: &mut [f32]);
}

/// `scores / temperature`.
pub struct Temperature(pub f32);

/// Keep every score >= the k-th largest.
pub struct TopK(pub usize);

/// Nucleus: keep the smallest top set whose probability exceeds `top_p`.
pub struct TopP(pub f32);

/// Drop tokens whose probability is below `min_p` times the largest.
pub struct MinP(pub f32);

/// Locally typical sampling with mass `typical_p`.
pub struct TypicalP(pub f32);

/// transformers' repetition penalty over every id seen (prompt included).
pub struct RepetitionPenalty(pub f32);

/// OpenAI-style penalties over generated ids only.
pub struct FrequencyPresencePenalty {
    /// Times the count.
    pub frequency: f32,
    /// Once per distinct token.
    pub presence: f32,
}

/// Ban the token that would complete an n-gram already present.
pub struct NoRepeatNGram(pub usize);

/// Ban single tokens, and the last token of multi-token sequences whose prefix was just generated.
pub struct BadWords(pub Vec<Vec<u32>>);

impl LogitsProcessor for Temperature {
    fn process(&self, _: &[u32], _: usize, scores: &mut [f32]) {
        scores.iter_mut().for_each(|s| *s /= self.0);
    }
}

impl LogitsProcessor for TopK {
    fn process(&self, _: &[u32], _: usize, scores: &mut [f32]) {
        let k = self.0.max(1).min(scores.len());
        let mut sorted = scores.to_vec();
        let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let kth = *kth;
        scores.iter_mut().filter(|s| **s < kth).for_each(|s| *s = f32::NEG_INFINITY);
    }
}

impl LogitsProcessor for TopP {
    fn process(&self, _: &[u32], _: usize, scores: &mut [f32]) {
        // Entries already at -inf have probability 0 and stay removed: sorting only the finite
        // ones gives the same result and makes top-p after top-k cheap.
        let order = ascending_finite(scores);
        let probs = softmax_in(scores, &order);
        // Drop ascending entries while the cumulative mass (including the entry) <= 1 - top_p;
        // the largest entry always stays.
        let mut cum = 0.0f32;
        for (rank, &i) in order.iter().enumerate() {
            cum += probs[rank];
            if cum <= 1.0 - self.0 && rank + 1 < order.len() {
                scores[i] = f32::NEG_INFINITY;
            }
        }
    }
}

impl LogitsProcessor for MinP {
    fn process(&self, _: &[u32], _: usize, scores: &mut [f32]) {
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        // p_i < min_p * p_max  <=>  s_i - s_max < ln(min_p)
        let threshold = max + self.0.ln();
        scores.iter_mut().filter(|s| **s < threshold).for_each(|s| *s = f32::NEG_INFINITY);
    }
}

impl LogitsProcessor for TypicalP {
    fn process(&self, _: &[u32], _: usize, scores: &mut [f32]) {
        let log_probs = log_softmax(scores);
        let entropy: f32 = -log_probs.iter().filter(|l| l.is_finite()).map(|l| l * l.exp()).sum::<f32>();
        let shifted: Vec<f32> = log_probs.iter().map(|l| (-l - entropy).abs()).collect();
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| shifted[a].total_cmp(&shifted[b]));
        let mut cum = 0.0f32;
        let mut last = 0;
        for (rank, &i) in order.iter().enumerate() {
            cum += log_probs[i].exp();
            if cum < self.0 {
                last = rank + 1;
            }
        }
        let last = last.min(order.len() - 1);
        let cutoff = shifted[order[last]];
        for (rank, &i) in order.iter().enumerate() {
            if shifted[i] > cutoff && rank > 0 {
                scores[i] = f32::NEG_INFINITY;
            }
        }
    }
}

impl LogitsProcessor for RepetitionPenalty {
    fn process(&self, input_ids: &[u32], _: usize, scores: &mut [f32]) {
        let mut seen: Vec<u32> = input_ids.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for id in seen {
            if let Some(s) = scores.get_mut(id as usize) {
                *s = if *s < 0.0 { *s * self.0 } else { *s / self.0 };
            }
        }
    }
}

impl LogitsProcessor for FrequencyPresencePenalty {
    fn process(&self, input_ids: &[u32], prompt_len: usize, scores: &mut [f32]) {
        let mut counts: HashMap<u32, f32> = HashMap::new();
        for &id in &input_ids[prompt_len.min(input_ids.len())..] {
            *counts.entry(id).or_default() += 1.0;
        }
        for (id, n) in counts {
            if let Some(s) = scores.get_mut(id as usize) {
                *s -= self.frequency * n + self.presence;
            }
        }
    }
}

impl LogitsProcessor for NoRepeatNGram {
    fn process(&self, input_ids: &[u32], _: usize, scores: &mut [f32]) {
        let n = self.0;
        if n == 0 || input_ids.len() + 1 < n {
            return;
        }
        let prefix = &input_ids[input_ids.len() + 1 - n..];
        for window in input_ids.windows(n) {
            if &window[..n - 1] == prefix {
                if let Some(s) = scores.get_mut(window[n - 1] as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
}

impl LogitsProcessor for BadWords {
    fn process(&self, input_ids: &[u32], _: usize, scores: &mut [f32]) {
        for seq in &self.0 {
            let Some((&last, prefix)) = seq.split_last() else { continue };
            if input_ids.ends_with(prefix) {
                if let Some(s) = scores.get_mut(last as usize) {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// The processors `config` asks for, in transformers' order: penalties and bans first, then
/// (when sampling) temperature, top-k, top-p, min-p, typical-p.
pub fn processors_for(config: &GenerationConfig) -> Vec<Box<dyn LogitsProcessor>> {
    let mut out: Vec<Box<dyn LogitsProcessor>> = vec![];
    if config.repetition_penalty != 1.0 {
        out.push(Box::new(RepetitionPenalty(config.repetition_penalty)));
    }
    if config.frequency_penalty != 0.0 || config.presence_penalty != 0.0 {
        out.push(Box::new(FrequencyPresencePenalty {
            frequency: config.frequency_penalty,
            presence: config.presence_penalty,
        }));
    }
    if config.no_repeat_ngram_size > 0 {
        out.push(Box::new(NoRepeatNGram(config.no_repeat_ngram_size)));
    }
    if !config.bad_words_ids.is_empty() {
        out.push(Box::new(BadWords(config.bad_words_ids.clone())));
    }
    if config.do_sample {
        if config.temperature != 1.0 {
            out.push(Box::new(Temperature(config.temperature)));
        }
        if config.top_k != 0 {
            out.push(Box::new(TopK(config.top_k)));
        }
        if config.top_p < 1.0 {
            out.push(Box::new(TopP(config.top_p)));
        }
        if let Some(m) = config.min_p {
            out.push(Box::new(MinP(m)));
        }
        if config.typical_p < 1.0 {
            out.push(Box::new(TypicalP(config.typical_p)));
        }
    }
    out
}

fn ascending_finite(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] > f32::NEG_INFINITY).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    order
}

/// Softmax of `scores` listed in `order`.
fn softmax_in(scores: &[f32], order: &[usize]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = order.iter().map(|&i| (scores[i] - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// log-softmax of a row.
pub fn log_softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + scores.iter().map(|s| (s - max).exp()).sum::<f32>().ln();
    scores.iter().map(|s| s - lse).collect()
}
