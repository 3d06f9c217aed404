//! Ragas' LLM-judged metrics with scripted judges: hand-computed scores, lenient reading of the
//! judge, one retry for a malformed judgement, then 0 and a count; never a NaN.

use std::cell::Cell;

use llm_rag::embed::Embedder;
use llm_rag::eval::{average_precision, parse_statements, parse_verdict, parse_verdicts, sentences, RagasJudge, RagasSample};
use llm_rag::query::FnLlm;

/// Fixed vectors for known texts; anything else is orthogonal to all of them.
struct TableEmbedder(&'static [(&'static str, [f32; 2])]);

impl Embedder for TableEmbedder {
    fn dim(&self) -> usize {
        3
    }

    fn embed(&self, texts: &[&str]) -> llm_rag::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| match self.0.iter().find(|(k, _)| k == t) {
                Some((_, [x, y])) => vec![*x, *y, 0.0],
                None => vec![0.0, 0.0, 1.0],
            })
            .collect())
    }
}

const NO_VECTORS: TableEmbedder = TableEmbedder(&[]);

fn sample(contexts: &[&str], reference: &str, answer: &str) -> RagasSample {
    RagasSample {
        question: "Where is Paris?".into(),
        answer: answer.into(),
        contexts: contexts.iter().map(|c| c.to_string()).collect(),
        reference: reference.into(),
    }
}

/// f64 arithmetic on a handful of terms.
const EXACT: f64 = 1e-12;

#[test]
fn context_precision_is_ragas_average_precision() {
    // Verdicts [1, 0, 1], each in a different reply format.
    let llm = FnLlm(|p: &str| {
        assert!(p.contains("verify if the context was useful") && p.contains(r#""answer":"Paris is in France.""#), "{p}");
        Ok(if p.contains("ctx-alpha") {
            r#"{"reason": "It names Paris.", "verdict": 1}"#.to_string()
        } else if p.contains("ctx-beta") {
            "No.".to_string()
        } else {
            "```json\n{\"reason\": \"ok\", \"verdict\": \"yes\"}\n```".to_string()
        })
    });
    let judge = RagasJudge::new(&llm, &NO_VECTORS);
    let score = judge.context_precision(&sample(&["ctx-alpha", "ctx-beta", "ctx-gamma"], "Paris is in France.", "")).unwrap();
    assert!((score.value - (1.0 + 2.0 / 3.0) / 2.0).abs() < EXACT, "{score:?}");
    assert_eq!((score.items, score.unparsed, score.empty), (3, 0, false));

    assert_eq!(average_precision(&[false, true]), 0.5);
    assert_eq!(average_precision(&[true, true]), 1.0);
    assert_eq!(average_precision(&[false, false]), 0.0, "nothing useful: 0, not 0/0");
    let none = judge.context_precision(&sample(&[], "Paris is in France.", "")).unwrap();
    assert_eq!((none.value, none.items, none.empty), (0.0, 0, true));
}

#[test]
fn malformed_judgement_is_retried_once_then_scored_zero() {
    let calls = Cell::new(0);
    let flaky = Cell::new(0);
    let llm = FnLlm(|p: &str| {
        calls.set(calls.get() + 1);
        Ok(if p.contains("ctx-junk") {
            "I cannot decide.".to_string()
        } else if p.contains("ctx-flaky") {
            flaky.set(flaky.get() + 1);
            if flaky.get() == 1 { "hmm".to_string() } else { "Verdict: 1".to_string() }
        } else {
            "yes".to_string()
        })
    });
    let judge = RagasJudge::new(&llm, &NO_VECTORS);
    // Verdicts [unparsed → 0, 1 on the retry, 1]: (1/2 + 2/3) / 2.
    let score = judge.context_precision(&sample(&["ctx-junk", "ctx-flaky", "ctx-good"], "Paris.", "")).unwrap();
    assert!((score.value - (0.5 + 2.0 / 3.0) / 2.0).abs() < EXACT, "{score:?}");
    assert_eq!((score.items, score.unparsed), (3, 1));
    assert_eq!(calls.get(), 2 + 2 + 1, "junk and flaky asked twice, good once");
}

#[test]
fn context_recall_is_the_attributed_fraction_of_reference_sentences() {
    let reference = "Paris is the capital of France. It has 2.1 million people! It is in Spain?";
    assert_eq!(sentences(reference).len(), 3, "2.1 is not a sentence end");
    let json = FnLlm(|p: &str| {
        assert!(p.contains("can be attributed to the given context") && p.contains("It is in Spain?") && p.contains("ctx-a\\nctx-b"), "{p}");
        Ok(r#"Here you go: {"classifications": [
            {"statement": "Paris is the capital of France.", "reason": "stated", "attributed": 1},
            {"statement": "It has 2.1 million people!", "reason": "stated", "attributed": "1"},
            {"statement": "It is in Spain?", "reason": "contradicted", "attributed": 0}]}"#
            .to_string())
    });
    let s = sample(&["ctx-a", "ctx-b"], reference, "");
    let score = RagasJudge::new(&json, &NO_VECTORS).context_recall(&s).unwrap();
    assert!((score.value - 2.0 / 3.0).abs() < EXACT);
    assert_eq!((score.items, score.unparsed), (3, 0));

    let lines = FnLlm(|_: &str| Ok("1. Yes - stated\n2) yes\n3. No, the context says France".to_string()));
    assert!((RagasJudge::new(&lines, &NO_VECTORS).context_recall(&s).unwrap().value - 2.0 / 3.0).abs() < EXACT);

    // Two verdicts for three sentences: asked again, then all three unparsed.
    let calls = Cell::new(0);
    let short = FnLlm(|_: &str| {
        calls.set(calls.get() + 1);
        Ok("1. yes\n2. yes".to_string())
    });
    let score = RagasJudge::new(&short, &NO_VECTORS).context_recall(&s).unwrap();
    assert_eq!((score.value, score.items, score.unparsed, calls.get()), (0.0, 3, 3, 2));

    let empty = RagasJudge::new(&short, &NO_VECTORS).context_recall(&sample(&["ctx-a"], "  ", "")).unwrap();
    assert_eq!((empty.value, empty.empty), (0.0, true));
}

#[test]
fn faithfulness_is_the_supported_fraction_of_answer_statements() {
    let llm = FnLlm(|p: &str| {
        Ok(if p.contains("Break down each sentence") {
            assert!(p.contains(r#""answer":"Paris is in France and has a tower. It is old.""#), "{p}");
            r#"{"statements": ["Paris is in France.", "Paris has a tower.", "Paris is old.", "Paris is a port."]}"#.to_string()
        } else {
            assert!(p.contains("judge the faithfulness") && p.contains("Paris is a port."), "{p}");
            r#"{"statements": [{"statement": "a", "reason": "r", "verdict": 1}, {"statement": "b", "reason": "r", "verdict": 1},
                {"statement": "c", "reason": "r", "verdict": 1}, {"statement": "d", "reason": "r", "verdict": 0}]}"#
                .to_string()
        })
    });
    let s = sample(&["ctx"], "", "Paris is in France and has a tower. It is old.");
    let score = RagasJudge::new(&llm, &NO_VECTORS).faithfulness(&s).unwrap();
    assert_eq!((score.value, score.items, score.unparsed, score.empty), (0.75, 4, 0, false));
}

#[test]
fn zero_statements_score_zero_with_a_flag_not_nan() {
    let calls = Cell::new(0);
    let llm = FnLlm(|_: &str| {
        calls.set(calls.get() + 1);
        Ok(r#"{"statements": []}"#.to_string())
    });
    let judge = RagasJudge::new(&llm, &NO_VECTORS);
    let score = judge.faithfulness(&sample(&["ctx"], "", "Something.")).unwrap();
    assert_eq!((score.value, score.items, score.empty), (0.0, 0, true));
    assert_eq!(calls.get(), 2, "extraction asked twice, no verdicts asked");
    let score = judge.faithfulness(&sample(&["ctx"], "", "   ")).unwrap();
    assert!(score.empty && score.value == 0.0);
    assert_eq!(calls.get(), 2, "an empty answer needs no judge");
}

#[test]
fn answer_relevancy_is_mean_cosine_of_generated_questions() {
    const TABLE: TableEmbedder = TableEmbedder(&[("Where is Paris?", [1.0, 0.0]), ("Where is Paris located?", [1.0, 0.0]), ("What is Paris?", [0.6, 0.8])]);
    let calls = Cell::new(0);
    let llm = FnLlm(|p: &str| {
        assert!(p.contains("Generate a question for the given answer") && p.contains(r#"{"response":"Paris is in France."}"#), "{p}");
        calls.set(calls.get() + 1);
        Ok(match calls.get() {
            1 => r#"{"question": "Where is Paris located?", "noncommittal": 0}"#.to_string(),
            2 => "Question: What is Paris?".to_string(),
            _ => "   ".to_string(),
        })
    });
    let score = RagasJudge::new(&llm, &TABLE).answer_relevancy(&sample(&[], "", "Paris is in France.")).unwrap();
    // cosines 1 and 0.6, the third generation unparsed (twice) and counted 0.
    assert!((score.value - 1.6 / 3.0).abs() < 1e-6, "f32 cosines: {score:?}");
    assert_eq!((score.items, score.unparsed, calls.get()), (3, 1, 4));

    let evasive = FnLlm(|_: &str| Ok(r#"{"question": "Where is Paris located?", "noncommittal": 1}"#.to_string()));
    let score = RagasJudge::new(&evasive, &TABLE).answer_relevancy(&sample(&[], "", "I don't know.")).unwrap();
    assert_eq!((score.value, score.unparsed), (0.0, 0), "every generation noncommittal: 0");
}

#[test]
fn report_means_skip_empty_samples_and_count_them() {
    const TABLE: TableEmbedder = TableEmbedder(&[("qa", [1.0, 0.0]), ("q gen", [1.0, 0.0]), ("qb", [0.0, 1.0])]);
    let llm = FnLlm(|p: &str| {
        Ok(if p.contains("verify if the context was useful") {
            if p.contains("ctx-good") { "1" } else { "0" }
        } else if p.contains("can be attributed") {
            "1. yes\n2. no"
        } else if p.contains("Break down each sentence") {
            r#"{"statements": ["s one", "s two"]}"#
        } else if p.contains("judge the faithfulness") {
            "[1, 1]"
        } else {
            r#"{"question": "q gen", "noncommittal": 0}"#
        }
        .to_string())
    });
    let mut judge = RagasJudge::new(&llm, &TABLE);
    judge.strictness = 1;
    let a = RagasSample { question: "qa".into(), answer: "Some answer.".into(), contexts: vec!["ctx-bad".into(), "ctx-good".into()], reference: "One. Two.".into() };
    let b = RagasSample { question: "qb".into(), ..Default::default() };
    let report = judge.evaluate(&[a, b]).unwrap();
    let values: Vec<[f64; 4]> = report.samples.iter().map(|s| s.all().map(|x| x.value)).collect();
    assert_eq!(values, [[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]);
    assert_eq!(report.samples[1].all().map(|x| x.empty), [true, true, true, false]);
    // b's empty precision, recall and faithfulness are left out; its relevancy (0) is not.
    assert_eq!((report.mean.context_precision, report.mean.context_recall, report.mean.faithfulness), (0.5, 0.5, 1.0));
    assert_eq!(report.mean.answer_relevancy, 0.5);
    assert_eq!((report.unparsed, report.empty), (0, 3));
}

#[test]
fn judge_replies_are_read_leniently() {
    assert_eq!(parse_verdict("Yes."), Some(true));
    assert_eq!(parse_verdict("0"), Some(false));
    assert_eq!(parse_verdict("**Verdict:** No"), Some(false));
    assert_eq!(parse_verdict("Reason: no evidence here\nVerdict: 1"), Some(true), "a reason line is not a verdict");
    assert_eq!(parse_verdict("No, see [1]."), Some(false), "a citation is not JSON");
    assert_eq!(parse_verdict(r#"{"verdict": true}"#), Some(true));
    assert_eq!(parse_verdict("maybe"), None);
    assert_eq!(parse_verdicts("1. Yes\n2) no\n- 1", 3), Some(vec![true, false, true]));
    assert_eq!(parse_verdicts("Statement 1: yes\nStatement 2: 0", 2), Some(vec![true, false]));
    assert_eq!(parse_verdicts("[1, 0]", 2), Some(vec![true, false]));
    assert_eq!(parse_verdicts("1. yes", 2), None, "wrong count");
    assert_eq!(parse_verdicts(r#"{"statements": [{"verdict": 1}, {"reason": "none"}]}"#, 2), None, "a missing verdict");
    assert_eq!(parse_statements("Here are the statements:\n1. A is B.\n2. C is D."), Some(vec!["A is B.".to_string(), "C is D.".to_string()]));
    assert_eq!(parse_statements(r#"[{"sentence_index": 0, "simpler_statements": ["A.", "B."]}]"#), Some(vec!["A.".to_string(), "B.".to_string()]));
    assert_eq!(parse_statements(""), None);
}

/// A local judge is constrained to each prompt's JSON Schema: even the random tiny Llama (which
/// never writes JSON by itself) gives judgements that all parse, and a re-ranker grade always
/// parses too.
#[test]
fn a_constrained_local_judge_never_gives_a_malformed_judgement() {
    use llm_core::generate::GenerationConfig;
    use llm_core::weights::{load_model, LoadOptions};
    use llm_rag::query::{ChatLlm, LlmReranker, Reranker};
    use llm_rag::store::Hit;
    use llm_testkit::{fixture, TestBackend};
    let model = load_model::<TestBackend>(fixture("a_tiny_llama/llama"), LoadOptions::default(), &Default::default()).unwrap();
    let tok = llm_core::Tokenizer::from_dir(fixture("b_tokenizer/bytelevel_bpe512")).unwrap();
    let generation = GenerationConfig { eos_token_id: vec![2], ..GenerationConfig::greedy(1024) };
    let llm = ChatLlm::new(&model, &tok, generation);
    let mut judge = RagasJudge::new(&llm, &NO_VECTORS);
    judge.strictness = 1;
    let s = sample(&["Paris is the capital of France."], "Paris is the capital.", "It is Paris.");
    let scores = judge.score(&s).unwrap();
    for (metric, score) in ["context_precision", "context_recall", "faithfulness", "answer_relevancy"].iter().zip(scores.all()) {
        assert_eq!(score.unparsed, 0, "{metric}: {score:?}");
    }
    let hit = |id: &str| Hit { id: id.into(), score: 0.0, text: format!("passage {id}"), metadata: Default::default() };
    let reranker = LlmReranker { llm: &llm, malformed: Default::default() };
    reranker.rerank("Which?", vec![hit("a"), hit("b")]).unwrap();
    assert_eq!(reranker.malformed.get(), 0);
}
