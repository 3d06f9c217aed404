//! LLM-as-a-judge with SmolLM2-135M-Instruct (Q4_1 GGUF) as the judge, on two questions (one
//! with a reference answer, so both FastChat prompt families run). A 135M judge's opinions are
//! not the point: constrained decoding guarantees the verdict format, so every grade parses as
//! FastChat reads it (1..=10, A/B/C), and pairwise matches really swap the answers' positions.

use llm_core::eval::judge::{
    Judge, JudgeOutput, JudgeQuestion, PairJudgment, PairVerdict, PairWinner, Rating, SingleJudgment, PAIR_MATH_V1, PAIR_V2,
};
use llm_core::generate::GenerationConfig;
use llm_core::ModelBundle;
use llm_testkit::*;

const CAPITAL: &str = "What is the capital of France?";
const TIMES: JudgeQuestion<'static> = JudgeQuestion { question: "What is 12 times 3?", reference: Some("12 times 3 is 36.") };

/// (question, a good answer, a poor one).
fn matches() -> [(JudgeQuestion<'static>, &'static str, &'static str); 2] {
    [(CAPITAL.into(), "The capital of France is Paris.", "France has no capital."), (TIMES, "36", "It is 15.")]
}

fn bundle() -> ModelBundle<TestBackend> {
    ModelBundle::load(smollm2_gguf(), Default::default(), &Default::default()).unwrap()
}

fn assert_rating_in_range(g: &SingleJudgment) {
    match g.rating {
        Rating::Score(s) => assert!(s.fract() == 0.0 && (1.0..=10.0).contains(&s), "{}: rating {s}: {:?}", g.prompt_name, g.judgment),
        Rating::Error => panic!("{}: constrained reply did not parse: {:?}", g.prompt_name, g.judgment),
    }
}

fn assert_swapped(p: &PairJudgment, q: &JudgeQuestion, answer_1: &str, answer_2: &str) {
    let (prompt, reference) = match q.reference {
        Some(r) => (PAIR_MATH_V1, vec![("ref_answer_1", r)]),
        None => (PAIR_V2, vec![]),
    };
    assert_eq!(p.prompt_name, prompt.name);
    let render = |a, b| prompt.render(&[&[("question", q.question), ("answer_a", a), ("answer_b", b)], reference.as_slice()].concat());
    assert_eq!(p.game_1.user_prompt, render(answer_1, answer_2), "game 1 shows model 1's answer as A");
    assert_eq!(p.game_2.user_prompt, render(answer_2, answer_1), "game 2 shows model 1's answer as B");
    assert_ne!(p.game_1.user_prompt, p.game_2.user_prompt);
}

fn assert_pair_parsed(p: &PairJudgment) {
    for game in [&p.game_1, &p.game_2] {
        assert_ne!(game.verdict, PairVerdict::Error, "constrained reply did not parse: {:?}", game.judgment);
    }
    assert_eq!(p.winner, PairWinner::combine(p.game_1.verdict, p.game_2.verdict));
    assert_ne!(p.winner, PairWinner::Error);
}

#[test]
fn smollm2_judge_explains_then_gives_a_verdict_that_always_parses() {
    let b = bundle();
    // Short budget for the test's time; the explanation is bounded so the verdict still fits.
    let generation = GenerationConfig { eos_token_id: b.generation.eos_token_id.clone(), ..GenerationConfig::greedy(24) };
    let judge = Judge::new(&b.model, &b.tokenizer, generation, JudgeOutput::Explained).unwrap();
    for (q, good, poor) in matches() {
        let grade = judge.grade(q, good).unwrap();
        assert_rating_in_range(&grade);
        assert!(grade.judgment.trim_end().ends_with("]]"), "the reply ends in the verdict: {:?}", grade.judgment);
        assert_eq!(grade.prompt_name, if q.reference.is_some() { "single-math-v1" } else { "single-v1" });

        let pair = judge.compare(q, good, poor).unwrap();
        assert_pair_parsed(&pair);
        assert_swapped(&pair, &q, good, poor);
    }
}

#[test]
fn smollm2_judge_verdict_only_is_exactly_the_verdict() {
    let b = bundle();
    let generation = GenerationConfig { eos_token_id: b.generation.eos_token_id.clone(), ..GenerationConfig::greedy(8) };
    let judge = Judge::new(&b.model, &b.tokenizer, generation, JudgeOutput::VerdictOnly).unwrap();
    for (q, good, poor) in matches() {
        let grade = judge.grade(q, poor).unwrap();
        assert_rating_in_range(&grade);
        assert_eq!(grade.judgment, format!("[[{}]]", grade.rating.fastchat_score()));

        let pair = judge.compare(q, poor, good).unwrap();
        assert_pair_parsed(&pair);
        assert_swapped(&pair, &q, poor, good);
        for game in [&pair.game_1, &pair.game_2] {
            assert!(["[[A]]", "[[B]]", "[[C]]"].contains(&game.judgment.as_str()), "{:?}", game.judgment);
        }
    }
}
