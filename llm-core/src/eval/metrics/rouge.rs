//! ROUGE (Lin, 2004) as Google's rouge-score 0.1.2 computes it with
//! `RougeScorer(['rouge1', 'rouge2', 'rougeL', 'rougeLsum'], use_stemmer=...)`.
//!
//! Tokens: the text lowercased, every run of characters outside `[a-z0-9]` a separator (so
//! `café` gives `caf`, and non-Latin scripts give nothing), and with the stemmer nltk's Porter
//! stemmer applied to tokens longer than 3 characters. ROUGE-N counts clipped n-gram matches;
//! ROUGE-L is the longest common subsequence of the two token lists; ROUGE-Lsum splits both
//! texts into sentences at `\n` (rouge-score's default, no sentence splitter) and counts the
//! union LCS of each reference sentence against every prediction sentence, each token used at
//! most as often as it occurs on both sides. Precision is over the prediction, recall over the
//! target, F1 their harmonic mean; empty sides give 0.

use std::collections::HashMap;

use super::check_refs;
use super::porter::porter_stem;
use super::pystr::{clipped_matches, ngram_counts};
use crate::error::Result;

/// Precision, recall and F-measure on 0-1 (rouge-score's `Score`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RougeScore {
    /// Matches over prediction size.
    pub precision: f64,
    /// Matches over target size.
    pub recall: f64,
    /// Harmonic mean of the two (0 when both are 0).
    pub fmeasure: f64,
}

/// The four scores `RougeScorer(['rouge1', 'rouge2', 'rougeL', 'rougeLsum'])` returns.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RougeScores {
    /// Unigram overlap.
    pub rouge1: RougeScore,
    /// Bigram overlap.
    pub rouge2: RougeScore,
    /// Longest common subsequence over the whole text.
    pub rouge_l: RougeScore,
    /// Summary-level LCS over `\n`-separated sentences.
    pub rouge_lsum: RougeScore,
}

/// A ROUGE scorer: rouge-score's `RougeScorer` with its default tokenizer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rouge {
    /// Stem tokens longer than 3 characters with nltk's Porter stemmer (`use_stemmer=True`).
    pub use_stemmer: bool,
}

impl Rouge {
    /// All four scores of `prediction` against one `target` (rouge-score's
    /// `score(target, prediction)`: note the order there).
    pub fn score(&self, prediction: &str, target: &str) -> RougeScores {
        let (p, t) = (self.tokenize(prediction), self.tokenize(target));
        RougeScores {
            rouge1: score_ngrams(&p, &t, 1),
            rouge2: score_ngrams(&p, &t, 2),
            rouge_l: score_lcs(&p, &t),
            rouge_lsum: self.score_lsum(prediction, target),
        }
    }

    /// Against several targets, each score type separately takes the target with the highest
    /// F-measure, the first on a tie (rouge-score's `score_multi`).
    ///
    /// # Errors
    /// [`LlmError::Shape`](crate::error::LlmError::Shape) when `targets` is empty.
    pub fn score_multi<R: AsRef<str>>(&self, prediction: &str, targets: &[R]) -> Result<RougeScores> {
        check_refs(targets, "targets")?;
        let all: Vec<RougeScores> = targets.iter().map(|t| self.score(prediction, t.as_ref())).collect();
        // np.argmax: the first of the highest.
        let best = |get: fn(&RougeScores) -> RougeScore| {
            all.iter().map(get).reduce(|b, s| if s.fmeasure > b.fmeasure { s } else { b }).unwrap_or_default()
        };
        Ok(RougeScores {
            rouge1: best(|s| s.rouge1),
            rouge2: best(|s| s.rouge2),
            rouge_l: best(|s| s.rouge_l),
            rouge_lsum: best(|s| s.rouge_lsum),
        })
    }

    /// ROUGE-N for any `n` >= 1 (`rouge{n}`).
    pub fn rouge_n(&self, prediction: &str, target: &str, n: usize) -> RougeScore {
        score_ngrams(&self.tokenize(prediction), &self.tokenize(target), n)
    }

    /// rouge-score's `tokenize.tokenize`: lowercase, `[a-z0-9]+` runs, optionally stemmed.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let lower = text.to_lowercase();
        let tokens = lower.split(|c: char| !matches!(c, 'a'..='z' | '0'..='9')).filter(|t| !t.is_empty());
        if self.use_stemmer {
            tokens.map(|t| if t.len() > 3 { porter_stem(t) } else { t.to_string() }).collect()
        } else {
            tokens.map(str::to_string).collect()
        }
    }

    /// rouge-score's `_summary_level_lcs` over `\n`-separated sentences.
    fn score_lsum(&self, prediction: &str, target: &str) -> RougeScore {
        let sentences = |text: &str| -> Vec<Vec<String>> {
            text.split('\n').filter(|s| !s.is_empty()).map(|s| self.tokenize(s)).collect()
        };
        summary_level_lcs(&sentences(prediction), &sentences(target))
    }
}

fn score(matches: usize, prediction_len: usize, target_len: usize) -> RougeScore {
    let precision = matches as f64 / prediction_len.max(1) as f64;
    let recall = matches as f64 / target_len.max(1) as f64;
    RougeScore { precision, recall, fmeasure: fmeasure(precision, recall) }
}

fn fmeasure(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

fn score_ngrams(prediction: &[String], target: &[String], n: usize) -> RougeScore {
    let (p, t) = (ngram_counts(prediction, n), ngram_counts(target, n));
    let matches = clipped_matches(&t, &p) as usize;
    score(matches, p.values().sum::<u64>() as usize, t.values().sum::<u64>() as usize)
}

fn score_lcs(prediction: &[String], target: &[String]) -> RougeScore {
    if prediction.is_empty() || target.is_empty() {
        return RougeScore::default();
    }
    let table = lcs_table(target, prediction);
    score(table[target.len()][prediction.len()], prediction.len(), target.len())
}

/// `table[i][j]`: LCS length of `reference[..i]` and `candidate[..j]`.
fn lcs_table(reference: &[String], candidate: &[String]) -> Vec<Vec<usize>> {
    let mut table = vec![vec![0; candidate.len() + 1]; reference.len() + 1];
    for i in 1..=reference.len() {
        for j in 1..=candidate.len() {
            table[i][j] = if reference[i - 1] == candidate[j - 1] {
                table[i - 1][j - 1] + 1
            } else {
                table[i - 1][j].max(table[i][j - 1])
            };
        }
    }
    table
}

/// The reference positions of one LCS, read back as rouge-score's `_backtrack_norec` does
/// (which LCS it picks matters for the union).
fn lcs_indices(reference: &[String], candidate: &[String]) -> Vec<usize> {
    let table = lcs_table(reference, candidate);
    let (mut i, mut j) = (reference.len(), candidate.len());
    let mut indices = Vec::new();
    while i > 0 && j > 0 {
        if reference[i - 1] == candidate[j - 1] {
            indices.push(i - 1);
            i -= 1;
            j -= 1;
        } else if table[i][j - 1] > table[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    indices
}

fn summary_level_lcs(prediction: &[Vec<String>], target: &[Vec<String>]) -> RougeScore {
    let m: usize = target.iter().map(Vec::len).sum();
    let n: usize = prediction.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::default();
    }
    let mut counts_t: HashMap<&str, usize> = HashMap::new();
    let mut counts_p: HashMap<&str, usize> = HashMap::new();
    target.iter().flatten().for_each(|t| *counts_t.entry(t).or_default() += 1);
    prediction.iter().flatten().for_each(|t| *counts_p.entry(t).or_default() += 1);
    let mut hits = 0;
    for sentence in target {
        let mut union: Vec<usize> = prediction.iter().flat_map(|c| lcs_indices(sentence, c)).collect();
        union.sort_unstable();
        union.dedup();
        for token in union.iter().map(|&i| sentence[i].as_str()) {
            let (ct, cp) = (counts_t.get_mut(token), counts_p.get_mut(token));
            if let (Some(ct), Some(cp)) = (ct, cp) {
                if *ct > 0 && *cp > 0 {
                    hits += 1;
                    *ct -= 1;
                    *cp -= 1;
                }
            }
        }
    }
    let (precision, recall) = (hits as f64 / n as f64, hits as f64 / m as f64);
    RougeScore { precision, recall, fmeasure: fmeasure(precision, recall) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lowercase_ascii_alphanumeric_runs() {
        assert_eq!(Rouge::default().tokenize("Café au-lait, NO.5!"), ["caf", "au", "lait", "no", "5"]);
    }

    #[test]
    fn rouge_l_is_lcs_over_lengths() {
        let s = Rouge::default().score("the cat was found under the bed", "the cat was under the bed");
        assert!((s.rouge_l.recall - 1.0).abs() < 1e-12);
        assert!((s.rouge_l.precision - 6.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn stemming_conflates_inflections() {
        let stemmed = Rouge { use_stemmer: true }.score("connections connected", "connect connecting");
        assert_eq!(stemmed.rouge1.fmeasure, 1.0);
    }
}
