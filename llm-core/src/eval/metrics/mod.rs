//! Text metrics that give the same numbers as the Python tools evaluations are reported with.
//!
//! | metric | reference tool | here |
//! |---|---|---|
//! | BLEU | sacrebleu 2.6.0 `corpus_bleu` / `sentence_bleu` | [`corpus_bleu`], [`sentence_bleu`] |
//! | chrF, chrF++ | sacrebleu 2.6.0 `CHRF(word_order=0 / 2)` | [`Chrf`], [`corpus_chrf`], [`sentence_chrf`] |
//! | TER | sacrebleu 2.6.0 `TER()` and its `lib_ter` shift search | [`corpus_ter`], [`sentence_ter`] |
//! | ROUGE-1/2/L/Lsum | rouge-score 0.1.2 `RougeScorer`, `use_stemmer` either way | [`Rouge`] |
//! | SQuAD EM / F1 | the official `evaluate-v1.1.py` | [`squad_exact_match`], [`squad_f1`], [`squad_corpus`] |
//!
//! Each follows its tool's defaults (listed in the item's docs) down to the tokenizer, the
//! smoothing and the tie-breaking, so a score printed here can stand beside one from the tool:
//! `tests/core/text_metrics.rs` holds them to the tools' own outputs
//! (`scripts/text-metrics-reference.sh` writes the fixture).
//!
//! **Layout of references.** A corpus is `hyps: &[H]` and `refs: &[Rs]` with `refs[i]` every
//! reference of `hyps[i]` (one or more, possibly a different number per hypothesis). sacrebleu
//! takes the transpose (`refs[k][i]`, one stream per reference index, `None` for a missing one);
//! nothing else differs. Every function takes the hypothesis (prediction) first, the
//! reference(s) second, including ROUGE, whose `RougeScorer.score(target, prediction)` takes them
//! the other way round.
//!
//! **Scales.** BLEU, chrF, TER and the corpus SQuAD scores are on 0-100 as the tools print them;
//! ROUGE and the per-answer SQuAD scores on 0-1.
//!
//! **Errors.** An empty corpus, a reference list whose length is not the number of hypotheses,
//! or a hypothesis without any reference is [`LlmError::Shape`], naming the argument (the tools
//! raise, or divide by zero, on these).

mod bleu;
mod chrf;
mod porter;
pub(crate) mod pystr;
mod rouge;
mod squad;
mod ter;
mod ter_shift;

pub use bleu::{corpus_bleu, sentence_bleu, tokenize_13a, BleuScore, MAX_NGRAM_ORDER};
pub use chrf::{corpus_chrf, sentence_chrf, Chrf, ChrfScore};
pub use porter::porter_stem;
pub use rouge::{Rouge, RougeScore, RougeScores};
pub use squad::{normalize_answer, squad_corpus, squad_exact_match, squad_f1, SquadScore};
pub use ter::{corpus_ter, sentence_ter, tokenize_ter, TerScore};

use crate::error::{LlmError, Result};

/// Checks a corpus: at least one hypothesis, one reference list per hypothesis, and at least
/// one reference in each.
fn check_corpus<Rs, R>(n_hyps: usize, refs: &[Rs]) -> Result<()>
where
    Rs: AsRef<[R]>,
    R: AsRef<str>,
{
    if n_hyps == 0 {
        return Err(shape("hypotheses", "at least one hypothesis", 0));
    }
    if refs.len() != n_hyps {
        let expected = format!("one reference list per hypothesis ({n_hyps})");
        return Err(shape("references", &expected, refs.len()));
    }
    for (i, r) in refs.iter().enumerate() {
        check_refs(r.as_ref(), &format!("references of hypothesis {i}"))?;
    }
    Ok(())
}

/// Checks that one hypothesis has at least one reference; `what` names the argument.
fn check_refs<R: AsRef<str>>(refs: &[R], what: &str) -> Result<()> {
    if refs.is_empty() {
        return Err(shape(what, "at least one reference", 0));
    }
    Ok(())
}

fn shape(what: &str, expected: &str, got: usize) -> LlmError {
    LlmError::Shape { what: what.to_string(), expected: expected.to_string(), got: vec![got] }
}
