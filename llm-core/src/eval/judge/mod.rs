//! LLM-as-a-judge, MT-Bench style (FastChat's `llm_judge`): single-answer grading on a scale
//! of 1 to 10, and pairwise comparison played in both position orders.
//!
//! Any [`CausalLm`] is the judge, prompted through its tokenizer's chat template with
//! FastChat's [`prompts`]. FastChat asks for an explanation and then a verdict, and reads the
//! verdict with a regex ([`verdict`]); a small local judge often forgets the format, so by
//! default the reply is held to it with constrained decoding ([`JudgeOutput`]): it ends in
//! `[[N]]` or `[[A]]` / `[[B]]` / `[[C]]` within `max_new_tokens`, and FastChat's parser
//! then always finds the verdict.
//!
//! ```no_run
//! # use llm_core::{eval::judge::*, generate::GenerationConfig, CausalLm, Tokenizer};
//! # fn run<B: burn::tensor::backend::Backend>(model: &CausalLm<B>, tok: &Tokenizer) -> llm_core::Result<()> {
//! let generation = GenerationConfig { eos_token_id: vec![2], ..GenerationConfig::greedy(256) };
//! let judge = Judge::new(model, tok, generation, JudgeOutput::Explained)?;
//! let grade = judge.grade("What is 2+2?", "4")?;
//! let pair = judge.compare("What is 2+2?", "4", "5")?;
//! println!("{:?} {:?}", grade.rating, pair.winner);
//! # Ok(()) }
//! ```

pub mod prompts;
pub mod verdict;

use burn::tensor::backend::Backend;

pub use prompts::{JudgePrompt, OutputFormat, PAIR_MATH_V1, PAIR_V2, SINGLE_MATH_V1, SINGLE_V1};
pub use verdict::{mean_rating, parse_pair_verdict, parse_rating, PairTally, PairVerdict, PairWinner, Rating};

use crate::chat::Message;
use crate::error::{LlmError, Result};
use crate::generate::{CompiledConstraint, Constraint, ConstraintEngine, GenerationConfig, Generator};
use crate::model::CausalLm;
use crate::tokenizer::Tokenizer;

/// How the judge's reply is held to the verdict format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeOutput {
    /// A short explanation, then the verdict, as FastChat's prompts ask. The explanation is
    /// printable ASCII and newlines without brackets, at most `max_new_tokens` less the
    /// verdict's length in characters: every token carries at least one byte, so the verdict
    /// always fits in the budget, and being the only bracketed text it is what the parser finds.
    Explained,
    /// The verdict alone (`[[N]]`, `[[A]]`...): the cheapest judgement, no reasoning.
    VerdictOnly,
    /// No constraint: the reply as the model writes it, read by FastChat's parser, which may
    /// find nothing ([`Rating::Error`], [`PairVerdict::Error`]).
    Free,
}

/// The longest verdicts: `[[10]]` and `[[A]]`.
const RATING_VERDICT_LEN: usize = 6;
const PAIR_VERDICT_LEN: usize = 5;

/// Explanation characters: printable ASCII but `[` and `]`, tab and newlines.
const EXPLANATION_CLASS: &str = r"[\t\n\r\x20-\x5A\x5C\x5E-\x7E]";

/// The regex a reply in `output_format` matches under `output` (`None` for
/// [`JudgeOutput::Free`]); `max_new_tokens` bounds the explanation.
pub fn verdict_constraint(output_format: OutputFormat, output: JudgeOutput, max_new_tokens: usize) -> Result<Option<Constraint>> {
    let (verdict, len) = match output_format {
        OutputFormat::Rating => (r"\[\[(10|[1-9])\]\]", RATING_VERDICT_LEN),
        OutputFormat::Pair => (r"\[\[[ABC]\]\]", PAIR_VERDICT_LEN),
    };
    if output != JudgeOutput::Free && max_new_tokens < len {
        return Err(LlmError::config(
            "max_new_tokens",
            format!("{max_new_tokens} cannot hold the judge's verdict of up to {len} tokens"),
        ));
    }
    Ok(match output {
        JudgeOutput::Explained => Some(Constraint::Regex(format!("{EXPLANATION_CLASS}{{0,{}}}{verdict}", max_new_tokens - len))),
        JudgeOutput::VerdictOnly => Some(Constraint::Regex(verdict.into())),
        JudgeOutput::Free => None,
    })
}

/// A question to judge answers to, with the reference answer for the categories that need
/// one (then FastChat's `-math-` prompts are used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JudgeQuestion<'q> {
    /// The user's question.
    pub question: &'q str,
    /// A reference answer (MT-Bench's for math, reasoning and coding).
    pub reference: Option<&'q str>,
}

impl<'q> From<&'q str> for JudgeQuestion<'q> {
    fn from(question: &'q str) -> Self {
        Self { question, reference: None }
    }
}

/// One single-answer grading (FastChat's `play_a_match_single` record).
#[derive(Debug, Clone, PartialEq)]
pub struct SingleJudgment {
    /// FastChat's name of the prompt (`single-v1`, `single-math-v1`).
    pub prompt_name: &'static str,
    /// The user message the judge saw (under the prompt's system message).
    pub user_prompt: String,
    /// The judge's reply (special tokens removed).
    pub judgment: String,
    /// The rating read from the reply.
    pub rating: Rating,
}

/// One game of a pairwise match: one position order.
#[derive(Debug, Clone, PartialEq)]
pub struct PairGame {
    /// The user message, with one answer as assistant A and the other as B.
    pub user_prompt: String,
    /// The judge's reply.
    pub judgment: String,
    /// The verdict read from the reply, by position.
    pub verdict: PairVerdict,
}

/// A pairwise match (FastChat's `play_a_match_pair` record): game 1 shows model 1's answer as
/// assistant A, game 2 shows it as B.
#[derive(Debug, Clone, PartialEq)]
pub struct PairJudgment {
    /// The prompt's FastChat name (`pair-v2`, `pair-math-v1`).
    pub prompt_name: &'static str,
    /// Model 1's answer first.
    pub game_1: PairGame,
    /// The answers swapped.
    pub game_2: PairGame,
    /// Both games combined ([`PairWinner::combine`]).
    pub winner: PairWinner,
}

/// A model judging answers with FastChat's prompts.
pub struct Judge<'a, B: Backend> {
    model: &'a CausalLm<B>,
    tokenizer: &'a Tokenizer,
    generation: GenerationConfig,
    output: JudgeOutput,
    /// The rating and the pair constraints, compiled once (none for [`JudgeOutput::Free`]).
    constraints: Option<(CompiledConstraint, CompiledConstraint)>,
}

impl<'a, B: Backend> Judge<'a, B> {
    /// A judge decoding with `generation` (FastChat judges at temperature 0: use greedy
    /// decoding). Without EOS ids in `generation`, the tokenizer's EOS ends a reply. The
    /// constraints of `output` are compiled here; errors name what failed.
    pub fn new(model: &'a CausalLm<B>, tokenizer: &'a Tokenizer, mut generation: GenerationConfig, output: JudgeOutput) -> Result<Self> {
        generation.validate()?;
        if generation.eos_token_id.is_empty() {
            generation.eos_token_id.extend(tokenizer.eos_token_id());
        }
        let n = generation.max_new_tokens;
        let constraints = match (
            verdict_constraint(OutputFormat::Rating, output, n)?,
            verdict_constraint(OutputFormat::Pair, output, n)?,
        ) {
            (Some(rating), Some(pair)) => {
                let engine = ConstraintEngine::new(tokenizer, model.config.vocab_size, &generation.eos_token_id)?;
                Some((engine.compile(&rating)?, engine.compile(&pair)?))
            }
            _ => None,
        };
        Ok(Self { model, tokenizer, generation, output, constraints })
    }

    /// How replies are constrained.
    pub fn output(&self) -> JudgeOutput {
        self.output
    }

    /// Grades `answer` to `question` on a scale of 1 to 10 (`single-v1`, or `single-math-v1`
    /// with a reference).
    pub fn grade<'q>(&self, question: impl Into<JudgeQuestion<'q>>, answer: &str) -> Result<SingleJudgment> {
        let q = question.into();
        let prompt = JudgePrompt::for_format(OutputFormat::Rating, q.reference.is_some());
        let mut fields = vec![("question", q.question), ("answer", answer)];
        fields.extend(q.reference.map(|r| ("ref_answer_1", r)));
        let user_prompt = prompt.render(&fields);
        let constraint = self.constraints.as_ref().map(|(rating, _)| rating);
        let judgment = self.reply(prompt.system_prompt, &[&user_prompt], constraint)?.remove(0);
        Ok(SingleJudgment { prompt_name: prompt.name, rating: parse_rating(&judgment), user_prompt, judgment })
    }

    /// Compares `answer_1` and `answer_2` to `question` (`pair-v2`, or `pair-math-v1` with a
    /// reference) in both position orders, one batch of two prompts, and combines the games.
    pub fn compare<'q>(&self, question: impl Into<JudgeQuestion<'q>>, answer_1: &str, answer_2: &str) -> Result<PairJudgment> {
        let q = question.into();
        let prompt = JudgePrompt::for_format(OutputFormat::Pair, q.reference.is_some());
        let render = |a: &str, b: &str| {
            let mut fields = vec![("question", q.question), ("answer_a", a), ("answer_b", b)];
            fields.extend(q.reference.map(|r| ("ref_answer_1", r)));
            prompt.render(&fields)
        };
        let prompts = [render(answer_1, answer_2), render(answer_2, answer_1)];
        let constraint = self.constraints.as_ref().map(|(_, pair)| pair);
        let replies = self.reply(prompt.system_prompt, &[&prompts[0], &prompts[1]], constraint)?;
        let [p1, p2] = prompts;
        let game = |user_prompt: String, judgment: &String| PairGame {
            user_prompt,
            verdict: parse_pair_verdict(judgment),
            judgment: judgment.clone(),
        };
        let (game_1, game_2) = (game(p1, &replies[0]), game(p2, &replies[1]));
        let winner = PairWinner::combine(game_1.verdict, game_2.verdict);
        Ok(PairJudgment { prompt_name: prompt.name, game_1, game_2, winner })
    }

    /// The judge's replies to `user_prompts` under `system`, generated as one batch.
    fn reply(&self, system: &str, user_prompts: &[&str], constraint: Option<&CompiledConstraint>) -> Result<Vec<String>> {
        let ids = user_prompts
            .iter()
            .map(|user| {
                let messages = [Message::new("system", system), Message::new("user", *user)];
                let text = self.tokenizer.apply_chat_template(&messages, true)?;
                Ok(self.tokenizer.encode(&text, false)?.ids)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut generator = Generator::new(self.model, self.generation.clone())?;
        if let Some(c) = constraint {
            generator = generator.with_constraint(c.clone());
        }
        let out = generator.generate(&ids)?;
        out.sequences.iter().map(|seq| self.tokenizer.decode(seq, true)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regex(c: Option<Constraint>) -> regex::Regex {
        match c {
            Some(Constraint::Regex(r)) => regex::Regex::new(&format!("^(?:{r})$")).unwrap(),
            other => panic!("expected a regex constraint, got {other:?}"),
        }
    }

    #[test]
    fn explained_constraint_ends_in_a_verdict_within_the_budget() {
        let rating = regex(verdict_constraint(OutputFormat::Rating, JudgeOutput::Explained, 20).unwrap());
        assert!(rating.is_match("Good.\nRating: [[10]]"));
        assert!(rating.is_match("[[1]]"));
        // 14 explanation characters fit 20 tokens with "[[10]]".
        assert!(rating.is_match(&format!("{}[[7]]", "x".repeat(14))));
        assert!(!rating.is_match(&format!("{}[[7]]", "x".repeat(15))));
        for bad in ["Rating: [[0]]", "Rating: [[11]]", "[[5]] more", "no verdict", "[x] [[5]]", "é [[5]]"] {
            assert!(!rating.is_match(bad), "{bad:?}");
        }
        let pair = regex(verdict_constraint(OutputFormat::Pair, JudgeOutput::Explained, 20).unwrap());
        for ok in ["A is better. [[A]]", "[[B]]", "tie\n[[C]]"] {
            assert!(pair.is_match(ok), "{ok:?}");
        }
        for bad in ["[[D]]", "[[A]][[B]]", "[[a]]"] {
            assert!(!pair.is_match(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_constrained_reply_parses_as_fastchat_reads_it() {
        let rating = regex(verdict_constraint(OutputFormat::Rating, JudgeOutput::VerdictOnly, 8).unwrap());
        for n in 1..=10 {
            let text = format!("[[{n}]]");
            assert!(rating.is_match(&text));
            assert_eq!(parse_rating(&text), Rating::Score(n as f64));
        }
        assert!(!rating.is_match("Rating: [[5]]"), "verdict only");
        let pair = regex(verdict_constraint(OutputFormat::Pair, JudgeOutput::VerdictOnly, 8).unwrap());
        for (text, v) in [("[[A]]", PairVerdict::A), ("[[B]]", PairVerdict::B), ("[[C]]", PairVerdict::Tie)] {
            assert!(pair.is_match(text));
            assert_eq!(parse_pair_verdict(text), v);
        }
    }

    #[test]
    fn a_budget_too_small_for_the_verdict_is_a_config_error() {
        let err = verdict_constraint(OutputFormat::Rating, JudgeOutput::Explained, 5).unwrap_err();
        assert!(matches!(&err, LlmError::Config { field, .. } if field == "max_new_tokens"), "{err}");
        assert!(verdict_constraint(OutputFormat::Pair, JudgeOutput::VerdictOnly, 5).unwrap().is_some());
        assert_eq!(verdict_constraint(OutputFormat::Rating, JudgeOutput::Free, 0).unwrap(), None);
    }
}
