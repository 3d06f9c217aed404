//! chrF (Popović, 2015) and chrF++ (Popović, 2017) as sacrebleu 2.6.0 computes them.
//!
//! Character n-grams of orders 1..=`char_order` over the text with all whitespace removed, plus
//! (chrF++) word n-grams of orders 1..=`word_order` over whitespace-split words with one leading
//! or trailing ASCII punctuation mark split off. Per order: hypothesis, reference and clipped
//! match counts. The score averages precision and recall over the orders both sides have
//! (sacrebleu's default `eps_smoothing=False`, its "effective order"), then takes F-beta, beta 2.
//! A corpus sums the counts of its segments; a segment with several references keeps the
//! counts of the reference with the best segment score (the first on a tie). Case is kept.

use std::collections::HashMap;

use super::pystr::{clipped_matches, is_py_space, ngram_counts, py_split};
use super::{check_corpus, check_refs};
use crate::error::Result;

/// chrF's configuration; `Chrf::default()` is chrF2 (sacrebleu's `CHRF()`),
/// [`Chrf::plus_plus`] is chrF++ (`CHRF(word_order=2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chrf {
    /// Character n-gram orders, 1..=char_order (6).
    pub char_order: usize,
    /// Word n-gram orders, 1..=word_order (0; 2 for chrF++).
    pub word_order: usize,
    /// Weight of recall over precision (2).
    pub beta: u32,
}

/// A chrF score and the configuration that produced it (sacrebleu's `CHRFScore`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChrfScore {
    /// chrF on 0-100.
    pub score: f64,
    /// Character n-gram orders used.
    pub char_order: usize,
    /// Word n-gram orders used.
    pub word_order: usize,
    /// The beta used.
    pub beta: u32,
}

impl Default for Chrf {
    fn default() -> Self {
        Self { char_order: 6, word_order: 0, beta: 2 }
    }
}

/// Corpus chrF with sacrebleu's defaults (`corpus_chrf(hyps, refs)`); `refs[i]` are the
/// references of `hyps[i]`.
///
/// # Errors
/// As [`Chrf::corpus_score`].
pub fn corpus_chrf<H, Rs, R>(hyps: &[H], refs: &[Rs]) -> Result<ChrfScore>
where
    H: AsRef<str>,
    Rs: AsRef<[R]>,
    R: AsRef<str>,
{
    Chrf::default().corpus_score(hyps, refs)
}

/// Sentence chrF with sacrebleu's defaults (`sentence_chrf(hyp, refs)`).
///
/// # Errors
/// As [`Chrf::sentence_score`].
pub fn sentence_chrf<R: AsRef<str>>(hyp: &str, refs: &[R]) -> Result<ChrfScore> {
    Chrf::default().sentence_score(hyp, refs)
}

/// One order's `[hypothesis n-grams, reference n-grams, matches]` (sacrebleu's triplets).
type OrderStats = [u64; 3];

/// Character n-grams per order, then word n-grams per order.
struct Ngrams<'a> {
    chars: Vec<HashMap<&'a [char], u64>>,
    words: Vec<HashMap<&'a [&'a str], u64>>,
}

impl Chrf {
    /// chrF++: word n-grams up to order 2 added to chrF2's character n-grams.
    pub fn plus_plus() -> Self {
        Self { word_order: 2, ..Self::default() }
    }

    /// Corpus score: segment counts summed, then scored.
    ///
    /// # Errors
    /// [`LlmError::Shape`](crate::error::LlmError::Shape) when the corpus is empty, `refs` is
    /// not one list per hypothesis, or a hypothesis has no reference.
    pub fn corpus_score<H, Rs, R>(&self, hyps: &[H], refs: &[Rs]) -> Result<ChrfScore>
    where
        H: AsRef<str>,
        Rs: AsRef<[R]>,
        R: AsRef<str>,
    {
        check_corpus(hyps.len(), refs)?;
        let mut total = vec![[0u64; 3]; self.char_order + self.word_order];
        for (hyp, r) in hyps.iter().zip(refs) {
            for (sum, seg) in total.iter_mut().zip(self.segment_stats(hyp.as_ref(), r.as_ref())) {
                (0..3).for_each(|k| sum[k] += seg[k]);
            }
        }
        Ok(self.wrap(self.f_score(&total)))
    }

    /// One hypothesis against its references.
    ///
    /// # Errors
    /// [`LlmError::Shape`](crate::error::LlmError::Shape) when `refs` is empty.
    pub fn sentence_score<R: AsRef<str>>(&self, hyp: &str, refs: &[R]) -> Result<ChrfScore> {
        check_refs(refs, "references")?;
        Ok(self.wrap(self.f_score(&self.segment_stats(hyp, refs))))
    }

    fn wrap(&self, score: f64) -> ChrfScore {
        ChrfScore { score, char_order: self.char_order, word_order: self.word_order, beta: self.beta }
    }

    /// The counts against the reference with the best segment score (first on a tie).
    fn segment_stats<R: AsRef<str>>(&self, hyp: &str, refs: &[R]) -> Vec<OrderStats> {
        let (hyp_chars, hyp_words) = (stripped_chars(hyp), chrf_words(hyp));
        let hyp_grams = self.ngrams(&hyp_chars, &hyp_words);
        let mut best: (f64, Vec<OrderStats>) = (-1.0, Vec::new());
        for r in refs {
            let (ref_chars, ref_words) = (stripped_chars(r.as_ref()), chrf_words(r.as_ref()));
            let ref_grams = self.ngrams(&ref_chars, &ref_words);
            let stats = match_stats(&hyp_grams, &ref_grams);
            let f = self.f_score(&stats);
            if f > best.0 {
                best = (f, stats);
            }
        }
        best.1
    }

    fn ngrams<'a>(&self, chars: &'a [char], words: &'a [&'a str]) -> Ngrams<'a> {
        Ngrams {
            chars: (1..=self.char_order).map(|n| ngram_counts(chars, n)).collect(),
            words: (1..=self.word_order).map(|n| ngram_counts(words, n)).collect(),
        }
    }

    /// sacrebleu's `_compute_f_score` without eps smoothing: precision and recall averaged over
    /// the orders where both sides have n-grams, then F-beta, on 0-100.
    fn f_score(&self, stats: &[OrderStats]) -> f64 {
        let factor = f64::from(self.beta * self.beta);
        let (mut avg_prec, mut avg_rec, mut effective_order) = (0.0, 0.0, 0u32);
        for &[n_hyp, n_ref, n_match] in stats {
            if n_hyp > 0 && n_ref > 0 {
                avg_prec += n_match as f64 / n_hyp as f64;
                avg_rec += n_match as f64 / n_ref as f64;
                effective_order += 1;
            }
        }
        if effective_order == 0 {
            return 0.0;
        }
        avg_prec /= f64::from(effective_order);
        avg_rec /= f64::from(effective_order);
        if avg_prec + avg_rec == 0.0 {
            return 0.0;
        }
        let mut score = (1.0 + factor) * avg_prec * avg_rec;
        score /= factor * avg_prec + avg_rec;
        100.0 * score
    }
}

/// sacrebleu's `_get_match_statistics` for every order. A hypothesis n-gram only counts when
/// the reference has n-grams of that order.
fn match_stats(hyp: &Ngrams<'_>, reference: &Ngrams<'_>) -> Vec<OrderStats> {
    fn order<K: Eq + std::hash::Hash>(h: &HashMap<K, u64>, r: &HashMap<K, u64>) -> OrderStats {
        let n_hyp = if r.is_empty() { 0 } else { h.values().sum() };
        [n_hyp, r.values().sum(), clipped_matches(h, r)]
    }
    let chars = hyp.chars.iter().zip(&reference.chars).map(|(h, r)| order(h, r));
    let words = hyp.words.iter().zip(&reference.words).map(|(h, r)| order(h, r));
    chars.chain(words).collect()
}

/// The characters with every whitespace character removed (`''.join(line.split())`).
fn stripped_chars(text: &str) -> Vec<char> {
    text.chars().filter(|&c| !is_py_space(c)).collect()
}

/// sacrebleu's `CHRF._remove_punctuation`: whitespace-split words, and of a word longer than one
/// character a trailing ASCII punctuation mark, or else a leading one, split off (so `(hi)`
/// gives `(hi` and `)`, as sacrebleu does).
fn chrf_words(text: &str) -> Vec<&str> {
    let is_punct = |c: char| c.is_ascii_punctuation();
    let mut words = Vec::new();
    for w in py_split(text) {
        let mut chars = w.char_indices();
        let (first, last) = (chars.next(), chars.next_back());
        match (first, last) {
            (Some(_), Some((i, c))) if is_punct(c) => words.extend([&w[..i], &w[i..]]),
            (Some((_, c)), Some(_)) if is_punct(c) => {
                let split = c.len_utf8();
                words.extend([&w[..split], &w[split..]]);
            }
            _ => words.push(w),
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_one_punctuation_mark_like_sacrebleu() {
        let words = chrf_words("(hi) there, x . \"quoted\"");
        assert_eq!(words, ["(hi", ")", "there", ",", "x", ".", "\"quoted", "\""]);
    }

    #[test]
    fn identical_text_scores_100_and_disjoint_text_0() {
        let same = sentence_chrf("The cat sat.", &["The cat sat."]).unwrap();
        assert!((same.score - 100.0).abs() < 1e-12);
        assert_eq!(sentence_chrf("xyz", &["abc"]).unwrap().score, 0.0);
    }
}
