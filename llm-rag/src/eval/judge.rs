//! Ragas' LLM-judged RAG metrics with any [`Llm`] as the judge and any [`Embedder`]: context
//! precision, context recall, faithfulness and answer relevancy.

use serde_json::json;

use super::parse::{parse_question, parse_statements, parse_verdict, parse_verdicts, sentences};
use super::prompts::{prompt, PromptSpec, NLI, PRECISION, RECALL, RELEVANCY, STATEMENTS};
use llm_core::generate::Constraint;
use crate::embed::{cosine, Embedder};
use crate::error::Result;
use crate::retrieve::query::Llm;

/// One sample to judge (Ragas' `SingleTurnSample`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RagasSample {
    /// The user's question (`user_input`).
    pub question: String,
    /// The generated answer (`response`).
    pub answer: String,
    /// The retrieved contexts, best first (`retrieved_contexts`).
    pub contexts: Vec<String>,
    /// The ground-truth answer (`reference`).
    pub reference: String,
}

/// One metric on one sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    /// Never NaN; in `[0, 1]` (answer relevancy is a mean cosine, in `[-1, 1]`).
    pub value: f64,
    /// What was judged: contexts, statements or generated questions.
    pub items: usize,
    /// Of `items`, those whose judgement never parsed, even when asked again; each scored 0.
    pub unparsed: usize,
    /// Nothing to judge (no contexts, zero statements): `value` is 0, where Ragas gives NaN.
    pub empty: bool,
}

impl Score {
    fn of(value: f64, items: usize, unparsed: usize) -> Self {
        Self { value: if value.is_finite() { value } else { 0.0 }, items, unparsed, empty: items == 0 }
    }

    /// The fraction of `n` statements judged true; all `n` unparsed when the verdicts are missing.
    fn fraction(verdicts: Option<Vec<bool>>, n: usize) -> Self {
        match verdicts {
            Some(v) => Self::of(v.iter().filter(|&&b| b).count() as f64 / n as f64, n, 0),
            None => Self::of(0.0, n, n),
        }
    }
}

/// The four metrics of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RagasScores {
    /// Ranked usefulness of the contexts for the reference ([`average_precision`] of verdicts).
    pub context_precision: Score,
    /// Fraction of the reference's sentences attributable to the contexts.
    pub context_recall: Score,
    /// Fraction of the answer's statements supported by the contexts.
    pub faithfulness: Score,
    /// Mean cosine of questions generated from the answer to the question.
    pub answer_relevancy: Score,
}

impl RagasScores {
    /// The four scores, in field order.
    pub fn all(&self) -> [Score; 4] {
        [self.context_precision, self.context_recall, self.faithfulness, self.answer_relevancy]
    }
}

/// Means over samples of each metric; samples where the metric had nothing to judge are left
/// out (Ragas' NaNs, which its `nanmean` skips), and a metric empty everywhere means 0.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RagasMeans {
    /// Mean context precision.
    pub context_precision: f64,
    /// Mean context recall.
    pub context_recall: f64,
    /// Mean faithfulness.
    pub faithfulness: f64,
    /// Mean answer relevancy.
    pub answer_relevancy: f64,
}

/// Scores of a set of samples.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RagasReport {
    /// Per sample, in input order.
    pub samples: Vec<RagasScores>,
    /// Means over samples.
    pub mean: RagasMeans,
    /// Judgements that never parsed, over all samples and metrics.
    pub unparsed: usize,
    /// Sample-metric pairs with nothing to judge.
    pub empty: usize,
}

impl RagasReport {
    /// Totals and means of `samples`.
    pub fn new(samples: Vec<RagasScores>) -> Self {
        let mean = |pick: fn(&RagasScores) -> Score| {
            let kept: Vec<f64> = samples.iter().map(pick).filter(|s| !s.empty).map(|s| s.value).collect();
            if kept.is_empty() { 0.0 } else { kept.iter().sum::<f64>() / kept.len() as f64 }
        };
        let mean = RagasMeans {
            context_precision: mean(|s| s.context_precision),
            context_recall: mean(|s| s.context_recall),
            faithfulness: mean(|s| s.faithfulness),
            answer_relevancy: mean(|s| s.answer_relevancy),
        };
        let scores = || samples.iter().flat_map(RagasScores::all);
        let (unparsed, empty) = (scores().map(|s| s.unparsed).sum::<usize>(), scores().filter(|s| s.empty).count());
        Self { samples, mean, unparsed, empty }
    }
}

/// Ragas' average precision of ranked usefulness verdicts:
/// `Σ_i precision@i · v_i / Σ_i v_i` (0 when nothing is useful). `[1, 0, 1]` gives
/// `(1/1 + 2/3) / 2`.
pub fn average_precision(verdicts: &[bool]) -> f64 {
    let (mut useful, mut sum) = (0usize, 0.0);
    for (i, _) in verdicts.iter().enumerate().filter(|(_, v)| **v) {
        useful += 1;
        sum += useful as f64 / (i + 1) as f64;
    }
    if useful == 0 { 0.0 } else { sum / useful as f64 }
}

/// Ragas' metrics with `llm` as the judge and `embedder` for answer relevancy.
pub struct RagasJudge<'a> {
    /// The judge.
    pub llm: &'a dyn Llm,
    /// Embeds questions for answer relevancy.
    pub embedder: &'a dyn Embedder,
    /// Questions generated per answer for answer relevancy (Ragas' `strictness`, 3). The
    /// questions only differ when the judge samples.
    pub strictness: usize,
}

impl<'a> RagasJudge<'a> {
    /// A judge with Ragas' default strictness (3).
    pub fn new(llm: &'a dyn Llm, embedder: &'a dyn Embedder) -> Self {
        Self { llm, embedder, strictness: 3 }
    }

    /// Asks `spec` with `input`, the reply constrained to the spec's schema for `n` items
    /// where the judge can be constrained, and once more when `parse` reads nothing from it.
    fn ask<T>(&self, spec: &PromptSpec, input: serde_json::Value, n: usize, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>> {
        let text = prompt(spec, input);
        let schema = Constraint::JsonSchema((spec.schema)(n));
        for _ in 0..2 {
            if let Some(t) = parse(&self.llm.complete_constrained(&text, &schema)?) {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }

    /// Each context judged useful or not for reaching the reference (one call per context),
    /// scored by [`average_precision`] in rank order (Ragas' `LLMContextPrecisionWithReference`).
    pub fn context_precision(&self, sample: &RagasSample) -> Result<Score> {
        let (mut verdicts, mut unparsed) = (vec![], 0);
        for context in &sample.contexts {
            let input = json!({"question": sample.question, "context": context, "answer": sample.reference});
            let verdict = self.ask(&PRECISION, input, 1, parse_verdict)?;
            unparsed += usize::from(verdict.is_none());
            verdicts.push(verdict.unwrap_or(false));
        }
        Ok(Score::of(average_precision(&verdicts), verdicts.len(), unparsed))
    }

    /// The reference's [`sentences`] classified as attributable to the contexts or not, in one
    /// call (Ragas' `LLMContextRecall`; Ragas lets the judge split the reference, here it is
    /// split beforehand so a reply with the wrong number of verdicts is caught).
    pub fn context_recall(&self, sample: &RagasSample) -> Result<Score> {
        let statements = sentences(&sample.reference);
        if statements.is_empty() {
            return Ok(Score::of(0.0, 0, 0));
        }
        let input = json!({"question": sample.question, "context": sample.contexts.join("\n"), "statements": statements});
        let verdicts = self.ask(&RECALL, input, statements.len(), |r| parse_verdicts(r, statements.len()))?;
        Ok(Score::fraction(verdicts, statements.len()))
    }

    /// The answer broken into statements by the judge, then each statement judged as inferable
    /// from the contexts or not, in one call (Ragas' `Faithfulness`).
    pub fn faithfulness(&self, sample: &RagasSample) -> Result<Score> {
        let statements = if sample.answer.trim().is_empty() {
            vec![]
        } else {
            let input = json!({"question": sample.question, "answer": sample.answer});
            self.ask(&STATEMENTS, input, 0, parse_statements)?.unwrap_or_default()
        };
        if statements.is_empty() {
            return Ok(Score::of(0.0, 0, 0));
        }
        let input = json!({"context": sample.contexts.join("\n"), "statements": statements});
        let verdicts = self.ask(&NLI, input, statements.len(), |r| parse_verdicts(r, statements.len()))?;
        Ok(Score::fraction(verdicts, statements.len()))
    }

    /// `strictness` questions generated from the answer; the mean cosine of their embeddings to
    /// the question's, unparsed generations counting 0, and 0 when every generation calls the
    /// answer noncommittal (Ragas' `AnswerRelevancy`).
    pub fn answer_relevancy(&self, sample: &RagasSample) -> Result<Score> {
        let mut generated = vec![];
        for _ in 0..self.strictness {
            generated.push(self.ask(&RELEVANCY, json!({"response": sample.answer}), 1, parse_question)?);
        }
        let parsed: Vec<&(String, bool)> = generated.iter().flatten().collect();
        let unparsed = self.strictness - parsed.len();
        if parsed.is_empty() || parsed.iter().all(|(_, noncommittal)| *noncommittal) {
            return Ok(Score::of(0.0, self.strictness, unparsed));
        }
        let texts: Vec<&str> = std::iter::once(sample.question.as_str()).chain(parsed.iter().map(|(q, _)| q.as_str())).collect();
        let vectors = self.embedder.embed(&texts)?;
        let similarity: f64 = vectors.iter().skip(1).map(|v| cosine(&vectors[0], v) as f64).sum();
        Ok(Score::of(similarity / self.strictness as f64, self.strictness, unparsed))
    }

    /// All four metrics of one sample.
    pub fn score(&self, sample: &RagasSample) -> Result<RagasScores> {
        Ok(RagasScores {
            context_precision: self.context_precision(sample)?,
            context_recall: self.context_recall(sample)?,
            faithfulness: self.faithfulness(sample)?,
            answer_relevancy: self.answer_relevancy(sample)?,
        })
    }

    /// All four metrics of every sample, with means and counts.
    pub fn evaluate(&self, samples: &[RagasSample]) -> Result<RagasReport> {
        Ok(RagasReport::new(samples.iter().map(|s| self.score(s)).collect::<Result<_>>()?))
    }
}
