//! BLEU (Papineni et al., 2002) as sacrebleu 2.6.0 computes it: the `13a` tokenizer (mteval-v13a,
//! what WMT reports), case kept, n-grams up to 4, clipped counts against the per-n-gram maximum
//! over the references, the closest reference length for the brevity penalty (shorter on a tie)
//! and smoothing method `exp` (mteval's: the k-th order without matches gets precision
//! `100 / (2^k * total)`).
//!
//! The corpus score sums the statistics of all segments first; the sentence score additionally
//! uses sacrebleu's `effective_order` (`sentence_bleu`'s default): orders the hypothesis is too
//! short to have are left out of the geometric mean instead of counting as zero.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::pystr::{ngram_counts, py_rstrip, py_squeeze};
use super::{check_corpus, check_refs};
use crate::error::Result;

/// The largest n-gram order BLEU counts (sacrebleu's `MAX_NGRAM_ORDER`).
pub const MAX_NGRAM_ORDER: usize = 4;

/// sacrebleu's `my_log(0)`: a log floored so that a zero precision zeroes the score.
const LOG_ZERO: f64 = -9_999_999_999.0;

/// A BLEU score with the statistics behind it, the fields of sacrebleu's `BLEUScore`.
#[derive(Debug, Clone, PartialEq)]
pub struct BleuScore {
    /// BLEU on 0-100.
    pub score: f64,
    /// Matched (clipped) n-grams per order, 1..=4.
    pub counts: [u64; MAX_NGRAM_ORDER],
    /// Hypothesis n-grams per order.
    pub totals: [u64; MAX_NGRAM_ORDER],
    /// Smoothed precisions on 0-100 (all zero when nothing matched at all).
    pub precisions: [f64; MAX_NGRAM_ORDER],
    /// Brevity penalty.
    pub bp: f64,
    /// Hypothesis tokens.
    pub sys_len: u64,
    /// Reference tokens (closest reference length per segment).
    pub ref_len: u64,
}

/// Corpus BLEU, sacrebleu's `corpus_bleu(hyps, refs)` with its defaults.
///
/// `refs[i]` are the references of `hyps[i]` (see the module docs for the layout).
///
/// # Errors
/// [`LlmError::Shape`](crate::error::LlmError::Shape) when the corpus is empty, `refs` is not
/// one list per hypothesis, or a hypothesis has no reference.
pub fn corpus_bleu<H, Rs, R>(hyps: &[H], refs: &[Rs]) -> Result<BleuScore>
where
    H: AsRef<str>,
    Rs: AsRef<[R]>,
    R: AsRef<str>,
{
    check_corpus(hyps.len(), refs)?;
    let mut stats = BleuStats::default();
    for (hyp, r) in hyps.iter().zip(refs) {
        stats.add(&segment_stats(hyp.as_ref(), r.as_ref()));
    }
    Ok(stats.score(false))
}

/// Sentence BLEU, sacrebleu's `sentence_bleu(hyp, refs)`: smoothing `exp`, effective order on.
///
/// # Errors
/// [`LlmError::Shape`](crate::error::LlmError::Shape) when `refs` is empty.
pub fn sentence_bleu<R: AsRef<str>>(hyp: &str, refs: &[R]) -> Result<BleuScore> {
    check_refs(refs, "references")?;
    Ok(segment_stats(hyp, refs).score(true))
}

/// sacrebleu's `Tokenizer13a`: mteval-v13a's language-independent clean-up, then punctuation
/// split off (periods and commas only away from digits, a dash only after a digit), tokens
/// joined by single spaces.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    let mut padded = String::with_capacity(line.len() * 2 + 2);
    padded.push(' ');
    for c in line.chars() {
        if is_13a_symbol(c) {
            padded.extend([' ', c, ' ']);
        } else {
            padded.push(c);
        }
    }
    padded.push(' ');
    let mut text = padded;
    for (re, replacement) in TOKENIZER_RULES.iter() {
        text = re.replace_all(&text, *replacement).into_owned();
    }
    py_squeeze(&text)
}

/// mteval's first rule, `[\{-\~\[-\` -\&\(-\+\:-\@\/]` -> ` \1 `: ASCII symbols other than
/// `'`, `,`, `-`, `.` are always tokens of their own.
fn is_13a_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// The context-dependent rules of sacrebleu's `TokenizerRegexp`, in order. Both engines take
/// leftmost, non-overlapping matches, so `replace_all` is `re.sub`.
static TOKENIZER_RULES: LazyLock<[(Regex, &'static str); 3]> = LazyLock::new(|| {
    let rule = |pattern: &str, replacement| (Regex::new(pattern).expect("13a rule"), replacement);
    [
        // period and comma unless preceded by a digit
        rule(r"([^0-9])([\.,])", "${1} ${2} "),
        // period and comma unless followed by a digit
        rule(r"([\.,])([^0-9])", " ${1} ${2}"),
        // dash when preceded by a digit
        rule(r"([0-9])(-)", "${1} ${2} "),
    ]
});

/// One segment's (or the summed corpus') sufficient statistics.
#[derive(Debug, Default, Clone)]
struct BleuStats {
    sys_len: u64,
    ref_len: u64,
    correct: [u64; MAX_NGRAM_ORDER],
    total: [u64; MAX_NGRAM_ORDER],
}

impl BleuStats {
    fn add(&mut self, other: &BleuStats) {
        self.sys_len += other.sys_len;
        self.ref_len += other.ref_len;
        for n in 0..MAX_NGRAM_ORDER {
            self.correct[n] += other.correct[n];
            self.total[n] += other.total[n];
        }
    }

    /// sacrebleu's `BLEU.compute_bleu` with `smooth_method='exp'`.
    fn score(&self, effective_order: bool) -> BleuScore {
        let bp = brevity_penalty(self.sys_len, self.ref_len);
        let mut out = BleuScore {
            score: 0.0,
            counts: self.correct,
            totals: self.total,
            precisions: [0.0; MAX_NGRAM_ORDER],
            bp,
            sys_len: self.sys_len,
            ref_len: self.ref_len,
        };
        if self.correct.iter().all(|&c| c == 0) {
            return out;
        }
        let mut smooth = 1.0;
        let mut order = MAX_NGRAM_ORDER;
        for n in 0..MAX_NGRAM_ORDER {
            if self.total[n] == 0 {
                break;
            }
            if effective_order {
                order = n + 1;
            }
            let total = self.total[n] as f64;
            out.precisions[n] = if self.correct[n] == 0 {
                smooth *= 2.0;
                100.0 / (smooth * total)
            } else {
                100.0 * self.correct[n] as f64 / total
            };
        }
        let log = |p: f64| if p == 0.0 { LOG_ZERO } else { p.ln() };
        let log_sum: f64 = out.precisions[..order].iter().map(|&p| log(p)).sum();
        out.score = bp * (log_sum / order as f64).exp();
        out
    }
}

fn brevity_penalty(sys_len: u64, ref_len: u64) -> f64 {
    if sys_len >= ref_len {
        1.0
    } else if sys_len > 0 {
        (1.0 - ref_len as f64 / sys_len as f64).exp()
    } else {
        0.0
    }
}

/// sacrebleu's `_extract_reference_info` + `_compute_segment_statistics` for one hypothesis.
fn segment_stats<R: AsRef<str>>(hyp: &str, refs: &[R]) -> BleuStats {
    let ref_texts: Vec<String> = refs.iter().map(|r| tokenize_13a(py_rstrip(r.as_ref()))).collect();
    let ref_tokens: Vec<Vec<&str>> = ref_texts.iter().map(|t| tokens(t)).collect();
    let mut ref_max: HashMap<&[&str], u64> = HashMap::new();
    for tokens in &ref_tokens {
        for n in 1..=MAX_NGRAM_ORDER {
            for (gram, count) in ngram_counts(tokens, n) {
                let slot = ref_max.entry(gram).or_insert(0);
                *slot = (*slot).max(count);
            }
        }
    }
    let hyp_text = tokenize_13a(py_rstrip(hyp));
    let hyp_tokens = tokens(&hyp_text);
    let ref_lens: Vec<u64> = ref_tokens.iter().map(|t| t.len() as u64).collect();
    let mut stats = BleuStats {
        sys_len: hyp_tokens.len() as u64,
        ref_len: closest_ref_len(hyp_tokens.len() as u64, &ref_lens),
        ..BleuStats::default()
    };
    for n in 1..=MAX_NGRAM_ORDER {
        for (gram, count) in ngram_counts(&hyp_tokens, n) {
            stats.total[n - 1] += count;
            stats.correct[n - 1] += ref_max.get(gram).map_or(0, |&r| count.min(r));
        }
    }
    stats
}

/// The tokens of [`tokenize_13a`]'s output.
fn tokens(text: &str) -> Vec<&str> {
    text.split(' ').filter(|w| !w.is_empty()).collect()
}

/// The reference length closest to the hypothesis length; the shorter one on a tie.
fn closest_ref_len(hyp_len: u64, ref_lens: &[u64]) -> u64 {
    ref_lens.iter().copied().min_by_key(|&r| (r.abs_diff(hyp_len), r)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_13a_splits_punctuation_but_not_numbers() {
        assert_eq!(tokenize_13a("It costs $3.50, not 4,000."), "It costs $ 3.50 , not 4,000 .");
        assert_eq!(tokenize_13a("555-1234 well-known"), "555 - 1234 well-known");
        assert_eq!(tokenize_13a("&quot;a&quot; &amp; b"), "\" a \" & b");
    }

    #[test]
    fn identical_sentence_scores_100() {
        let s = sentence_bleu("The cat sat on the mat.", &["The cat sat on the mat."]).unwrap();
        assert!((s.score - 100.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.counts, [7, 6, 5, 4]);
    }

    #[test]
    fn empty_hypothesis_scores_zero_with_zero_brevity_penalty() {
        let s = corpus_bleu(&[""], &[["a b c"]]).unwrap();
        assert_eq!((s.score, s.bp, s.sys_len, s.ref_len), (0.0, 0.0, 0, 3));
    }

    #[test]
    fn reference_count_mismatch_is_a_shape_error() {
        let refs: [[&str; 1]; 1] = [["a"]];
        assert!(corpus_bleu(&["a", "b"], &refs).is_err());
        assert!(sentence_bleu("a", &[] as &[&str]).is_err());
    }
}
