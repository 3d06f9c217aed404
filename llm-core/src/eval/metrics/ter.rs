//! TER, translation edit rate (Snover et al., 2006), as sacrebleu 2.6.0's `TER()` computes it:
//! the tercom tokenizer with sacrebleu's defaults (lowercased, whitespace-split, not normalized,
//! punctuation kept, no Asian-script splitting), then the fewest word insertions, deletions,
//! substitutions and block shifts that turn the hypothesis into a reference (the shift search
//! and beam edit distance of sacrebleu's `lib_ter`, in [`super::ter_shift`]).
//!
//! A segment keeps its smallest edit count over the references and divides by their *average*
//! length; a corpus sums both before dividing. An empty reference gives the hypothesis length as
//! edits over length 0: TER 100 when the hypothesis has words, 0 when it has none.

use super::pystr::{py_rstrip, py_squeeze};
use super::ter_shift::translation_edit_rate;
use super::{check_corpus, check_refs};
use crate::error::Result;

/// A TER score and its statistics (sacrebleu's `TERScore`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TerScore {
    /// TER on 0-100 (lower is better; above 100 when edits outnumber reference words).
    pub score: f64,
    /// Edits summed over the segments (the best reference's per segment).
    pub num_edits: u64,
    /// Average reference length summed over the segments.
    pub ref_length: f64,
}

/// Corpus TER with sacrebleu's defaults (`corpus_ter(hyps, refs)`); `refs[i]` are the
/// references of `hyps[i]`.
///
/// # Errors
/// [`LlmError::Shape`](crate::error::LlmError::Shape) when the corpus is empty, `refs` is not
/// one list per hypothesis, or a hypothesis has no reference.
pub fn corpus_ter<H, Rs, R>(hyps: &[H], refs: &[Rs]) -> Result<TerScore>
where
    H: AsRef<str>,
    Rs: AsRef<[R]>,
    R: AsRef<str>,
{
    check_corpus(hyps.len(), refs)?;
    let (mut edits, mut length) = (0u64, 0.0f64);
    for (hyp, r) in hyps.iter().zip(refs) {
        let (e, l) = segment_stats(hyp.as_ref(), r.as_ref());
        edits += e;
        length += l;
    }
    Ok(ter_score(edits, length))
}

/// Sentence TER with sacrebleu's defaults (`sentence_ter(hyp, refs)`).
///
/// # Errors
/// [`LlmError::Shape`](crate::error::LlmError::Shape) when `refs` is empty.
pub fn sentence_ter<R: AsRef<str>>(hyp: &str, refs: &[R]) -> Result<TerScore> {
    check_refs(refs, "references")?;
    let (edits, length) = segment_stats(hyp, refs);
    Ok(ter_score(edits, length))
}

/// sacrebleu's `TercomTokenizer` with its defaults (after `TER`'s `rstrip`): lowercase, words
/// separated by single spaces.
pub fn tokenize_ter(sent: &str) -> String {
    py_squeeze(&py_rstrip(sent).to_lowercase())
}

/// `(fewest edits over the references, average reference length)`.
fn segment_stats<R: AsRef<str>>(hyp: &str, refs: &[R]) -> (u64, f64) {
    let hyp_text = tokenize_ter(hyp);
    let hyp_words = words(&hyp_text);
    let mut best = u64::MAX;
    let mut ref_lengths = 0usize;
    for r in refs {
        let ref_text = tokenize_ter(r.as_ref());
        let (edits, ref_len) = translation_edit_rate(&hyp_words, &words(&ref_text));
        ref_lengths += ref_len;
        best = best.min(edits);
    }
    (best, ref_lengths as f64 / refs.len() as f64)
}

fn words(text: &str) -> Vec<&str> {
    text.split(' ').filter(|w| !w.is_empty()).collect()
}

fn ter_score(edits: u64, ref_length: f64) -> TerScore {
    let rate = if ref_length > 0.0 {
        edits as f64 / ref_length
    } else if edits > 0 {
        1.0
    } else {
        0.0
    };
    TerScore { score: 100.0 * rate, num_edits: edits, ref_length }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_shift_counts_as_one_edit() {
        // "d e a b c" -> "a b c d e": one shift of "a b c" instead of four edits.
        let s = sentence_ter("d e a b c", &["a b c d e"]).unwrap();
        assert_eq!(s.num_edits, 1);
        assert!((s.score - 20.0).abs() < 1e-12);
    }

    #[test]
    fn empty_reference_scores_100_unless_both_are_empty() {
        assert_eq!(sentence_ter("a b", &[""]).unwrap().score, 100.0);
        assert_eq!(sentence_ter("", &[""]).unwrap().score, 0.0);
    }

    #[test]
    fn case_is_ignored() {
        assert_eq!(sentence_ter("The END", &["the end"]).unwrap().score, 0.0);
    }
}
