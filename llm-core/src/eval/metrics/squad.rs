//! SQuAD v1.1 exact match and token F1, as the official `evaluate-v1.1.py` scores them.
//!
//! Answers are normalized (lowercased, ASCII punctuation removed, the articles `a`/`an`/`the`
//! removed as whole words, whitespace collapsed); exact match compares the normalized strings,
//! F1 the bags of their whitespace-separated tokens. A prediction takes its best score over the
//! gold answers.
//!
//! One approximation: Python's `\b` word characters are `str.isalnum()` plus `_`; here
//! `char::is_alphanumeric()` plus `_`, which also counts the combining marks Unicode calls
//! alphabetic (some Indic vowel signs). Only an article glued to such a mark can score
//! differently.

use std::collections::HashMap;

use super::pystr::{py_split, py_squeeze};
use super::{check_corpus, check_refs};
use crate::error::Result;

/// Corpus scores on 0-100, as the official script prints them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SquadScore {
    /// Share of predictions equal to some gold answer after normalization, 0-100.
    pub exact_match: f64,
    /// Mean of the per-prediction best token F1, 0-100.
    pub f1: f64,
}

/// The official `normalize_answer`: lowercase, drop ASCII punctuation, drop the words `a`,
/// `an`, `the`, collapse whitespace.
pub fn normalize_answer(s: &str) -> String {
    let no_punct: String = s.to_lowercase().chars().filter(|c| !c.is_ascii_punctuation()).collect();
    py_squeeze(&remove_articles(&no_punct))
}

/// `re.sub(r'\b(a|an|the)\b', ' ', text)`: a maximal run of word characters that is exactly an
/// article becomes a space.
fn remove_articles(text: &str) -> String {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(is_word) {
        out.push_str(&rest[..start]);
        let len = rest[start..].find(|c: char| !is_word(c)).unwrap_or(rest.len() - start);
        let run = &rest[start..start + len];
        out.push_str(if matches!(run, "a" | "an" | "the") { " " } else { run });
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

/// Exact match (1.0 or 0.0) of `prediction` against its best gold answer.
///
/// # Errors
/// [`LlmError::Shape`](crate::error::LlmError::Shape) when `golds` is empty.
pub fn squad_exact_match<G: AsRef<str>>(prediction: &str, golds: &[G]) -> Result<f64> {
    check_refs(golds, "gold answers")?;
    let pred = normalize_answer(prediction);
    Ok(if golds.iter().any(|g| normalize_answer(g.as_ref()) == pred) { 1.0 } else { 0.0 })
}

/// Token F1 (0-1) of `prediction` against its best gold answer.
///
/// # Errors
/// [`LlmError::Shape`](crate::error::LlmError::Shape) when `golds` is empty.
pub fn squad_f1<G: AsRef<str>>(prediction: &str, golds: &[G]) -> Result<f64> {
    check_refs(golds, "gold answers")?;
    let pred = normalize_answer(prediction);
    Ok(golds.iter().map(|g| token_f1(&pred, &normalize_answer(g.as_ref()))).fold(f64::NEG_INFINITY, f64::max))
}

/// EM and F1 over a dataset on 0-100 (the official `evaluate`); `golds[i]` are the gold
/// answers of `predictions[i]`.
///
/// # Errors
/// [`LlmError::Shape`](crate::error::LlmError::Shape) when there are no predictions, `golds`
/// is not one list per prediction, or a prediction has no gold answer.
pub fn squad_corpus<P, Gs, G>(predictions: &[P], golds: &[Gs]) -> Result<SquadScore>
where
    P: AsRef<str>,
    Gs: AsRef<[G]>,
    G: AsRef<str>,
{
    check_corpus(predictions.len(), golds)?;
    let (mut em, mut f1) = (0.0, 0.0);
    for (p, g) in predictions.iter().zip(golds) {
        em += squad_exact_match(p.as_ref(), g.as_ref())?;
        f1 += squad_f1(p.as_ref(), g.as_ref())?;
    }
    let n = predictions.len() as f64;
    Ok(SquadScore { exact_match: 100.0 * em / n, f1: 100.0 * f1 / n })
}

/// The official `f1_score` on already normalized strings.
fn token_f1(prediction: &str, gold: &str) -> f64 {
    let (p, g): (Vec<&str>, Vec<&str>) = (py_split(prediction).collect(), py_split(gold).collect());
    let mut gold_counts: HashMap<&str, usize> = HashMap::new();
    g.iter().for_each(|t| *gold_counts.entry(t).or_default() += 1);
    let mut same = 0usize;
    for t in &p {
        if let Some(n) = gold_counts.get_mut(t).filter(|n| **n > 0) {
            *n -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_drops_case_punctuation_and_articles() {
        assert_eq!(normalize_answer("The  Denver Broncos!"), "denver broncos");
        assert_eq!(normalize_answer("an apple, a theory; Anna"), "apple theory anna");
        assert_eq!(normalize_answer("the1 a. théâtre the_the"), "the1 théâtre thethe");
    }

    #[test]
    fn f1_is_over_token_bags() {
        assert_eq!(squad_f1("Santa Clara", &["Santa Clara, California"]).unwrap(), 0.8);
        assert_eq!(squad_exact_match("the Eiffel Tower", &["Eiffel Tower"]).unwrap(), 1.0);
    }
}
