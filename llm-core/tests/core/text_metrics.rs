//! Text metrics against the tools they reimplement (`fixtures/text_metrics/cases.json`, written
//! by `scripts/text-metrics-reference.sh`): sacrebleu 2.6.0's BLEU, chrF, chrF++ and TER,
//! rouge-score 0.1.2's ROUGE with and without nltk's Porter stemmer, and the official SQuAD v1.1
//! EM/F1, per case and per corpus.
//!
//! Tolerance: every score is held to `TOL` = 1e-9 absolute on the tools' own scales (0-100 for
//! BLEU/chrF/TER, 0-1 for ROUGE and SQuAD); counts, lengths, edit counts and stems must be
//! equal. The Rust code does the tools' f64 operations in the tools' order, so what is left is
//! an ulp (seen: at most 1.5e-14), from reading the fixture's floats back and from libm's
//! `ln`/`exp`; 1e-9 is far below any printed digit and far above that.

use llm_core::eval::metrics::{
    corpus_bleu, corpus_ter, porter_stem, sentence_bleu, sentence_ter, squad_corpus, squad_exact_match, squad_f1,
    BleuScore, Chrf, Rouge, RougeScore, RougeScores, TerScore,
};
use llm_core::LlmError;
use llm_testkit::{fixture, read_json};
use serde_json::Value;

const TOL: f64 = 1e-9;

struct Case {
    hyp: String,
    refs: Vec<String>,
    want: Value,
}

fn golden() -> Value {
    read_json(&fixture("text_metrics/cases.json"))
}

fn cases(golden: &Value) -> Vec<Case> {
    let cases: Vec<Case> = golden["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            hyp: c["hyp"].as_str().expect("hyp").to_string(),
            refs: c["refs"].as_array().expect("refs").iter().map(|r| r.as_str().expect("ref").into()).collect(),
            want: c.clone(),
        })
        .collect();
    assert!(cases.len() >= 60, "the fixture holds its 60+ cases");
    cases
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

fn assert_near(got: f64, want: &Value, what: &str) {
    let want = f(want);
    assert!((got - want).abs() <= TOL, "{what}: got {got}, reference {want} (diff {:e})", got - want);
}

fn check_bleu(got: &BleuScore, want: &Value, what: &str) {
    assert_near(got.score, &want["score"], &format!("{what} score"));
    for n in 0..4 {
        assert_eq!(got.counts[n], u(&want["counts"][n]), "{what} counts[{n}]");
        assert_eq!(got.totals[n], u(&want["totals"][n]), "{what} totals[{n}]");
        assert_near(got.precisions[n], &want["precisions"][n], &format!("{what} precisions[{n}]"));
    }
    assert_near(got.bp, &want["bp"], &format!("{what} bp"));
    assert_eq!((got.sys_len, got.ref_len), (u(&want["sys_len"]), u(&want["ref_len"])), "{what} lengths");
}

fn check_ter(got: &TerScore, want: &Value, what: &str) {
    assert_near(got.score, &want["score"], &format!("{what} score"));
    assert_eq!(got.num_edits, u(&want["num_edits"]), "{what} num_edits");
    assert_near(got.ref_length, &want["ref_length"], &format!("{what} ref_length"));
}

fn check_rouge(got: &RougeScores, want: &Value, what: &str) {
    let parts: [(&str, RougeScore); 4] = [
        ("rouge1", got.rouge1),
        ("rouge2", got.rouge2),
        ("rougeL", got.rouge_l),
        ("rougeLsum", got.rouge_lsum),
    ];
    for (name, score) in parts {
        for (k, value) in [score.precision, score.recall, score.fmeasure].into_iter().enumerate() {
            assert_near(value, &want[name][k], &format!("{what} {name}[{k}]"));
        }
    }
}

#[test]
fn sentence_bleu_matches_sacrebleu() {
    for c in cases(&golden()) {
        let got = sentence_bleu(&c.hyp, &c.refs).unwrap();
        check_bleu(&got, &c.want["sentence_bleu"], &format!("sentence_bleu({:?})", c.hyp));
    }
}

#[test]
fn sentence_chrf_and_chrf_plus_plus_match_sacrebleu() {
    for c in cases(&golden()) {
        let chrf = Chrf::default().sentence_score(&c.hyp, &c.refs).unwrap();
        assert_near(chrf.score, &c.want["sentence_chrf"], &format!("chrF of {:?}", c.hyp));
        let chrf_pp = Chrf::plus_plus().sentence_score(&c.hyp, &c.refs).unwrap();
        assert_near(chrf_pp.score, &c.want["sentence_chrf_pp"], &format!("chrF++ of {:?}", c.hyp));
    }
}

#[test]
fn sentence_ter_matches_sacrebleu() {
    for c in cases(&golden()) {
        let got = sentence_ter(&c.hyp, &c.refs).unwrap();
        check_ter(&got, &c.want["sentence_ter"], &format!("TER of {:?}", c.hyp));
    }
}

#[test]
fn corpus_bleu_chrf_and_ter_match_sacrebleu() {
    let golden = golden();
    let all = cases(&golden);
    for corpus in golden["corpora"].as_array().unwrap() {
        let indices = corpus["indices"].as_array().unwrap();
        let picked: Vec<&Case> = indices.iter().map(|i| &all[u(i) as usize]).collect();
        let hyps: Vec<&str> = picked.iter().map(|c| c.hyp.as_str()).collect();
        let refs: Vec<&[String]> = picked.iter().map(|c| c.refs.as_slice()).collect();
        let what = format!("corpus {}", corpus["indices"]);
        check_bleu(&corpus_bleu(&hyps, &refs).unwrap(), &corpus["bleu"], &format!("{what} BLEU"));
        let chrf = Chrf::default().corpus_score(&hyps, &refs).unwrap();
        assert_near(chrf.score, &corpus["chrf"], &format!("{what} chrF"));
        let chrf_pp = Chrf::plus_plus().corpus_score(&hyps, &refs).unwrap();
        assert_near(chrf_pp.score, &corpus["chrf_pp"], &format!("{what} chrF++"));
        check_ter(&corpus_ter(&hyps, &refs).unwrap(), &corpus["ter"], &format!("{what} TER"));
    }
}

#[test]
fn rouge_matches_rouge_score_with_and_without_stemmer() {
    for c in cases(&golden()) {
        for (stem, key) in [(false, "rouge"), (true, "rouge_stemmed")] {
            let rouge = Rouge { use_stemmer: stem };
            let got = match c.refs.as_slice() {
                [one] => rouge.score(&c.hyp, one),
                many => rouge.score_multi(&c.hyp, many).unwrap(),
            };
            check_rouge(&got, &c.want[key], &format!("{key} of {:?}", c.hyp));
        }
    }
}

#[test]
fn porter_stems_match_nltk() {
    let golden = golden();
    let words = golden["porter"]["words"].as_array().unwrap();
    let stems = golden["porter"]["stems"].as_array().unwrap();
    assert_eq!(words.len(), stems.len());
    for (word, stem) in words.iter().zip(stems) {
        assert_eq!(porter_stem(word.as_str().unwrap()), stem.as_str().unwrap(), "stem of {word}");
    }
}

#[test]
fn squad_exact_match_and_f1_match_the_official_script() {
    let golden = golden();
    let all = cases(&golden);
    for c in &all {
        let (em, f1) = (squad_exact_match(&c.hyp, &c.refs).unwrap(), squad_f1(&c.hyp, &c.refs).unwrap());
        assert_near(em, &c.want["squad"]["exact_match"], &format!("EM of {:?}", c.hyp));
        assert_near(f1, &c.want["squad"]["f1"], &format!("F1 of {:?}", c.hyp));
    }
    let predictions: Vec<&str> = all.iter().map(|c| c.hyp.as_str()).collect();
    let golds: Vec<&[String]> = all.iter().map(|c| c.refs.as_slice()).collect();
    let corpus = squad_corpus(&predictions, &golds).unwrap();
    assert_near(corpus.exact_match, &golden["squad_corpus"]["exact_match"], "corpus EM");
    assert_near(corpus.f1, &golden["squad_corpus"]["f1"], "corpus F1");
}

#[test]
fn mismatched_or_missing_references_are_shape_errors() {
    let refs: [&[&str]; 1] = [&["a reference"]];
    let err = corpus_bleu(&["one", "two"], &refs).unwrap_err();
    let named = matches!(&err, LlmError::Shape { what, got, .. } if what == "references" && got == &[1]);
    assert!(named, "{err}");
    let none: [&[&str]; 1] = [&[]];
    let err = corpus_ter(&["one"], &none).unwrap_err();
    assert!(matches!(&err, LlmError::Shape { what, .. } if what == "references of hypothesis 0"), "{err}");
    assert!(matches!(corpus_bleu(&[] as &[&str], &[] as &[&[&str]]), Err(LlmError::Shape { .. })));
    assert!(matches!(squad_f1("x", &[] as &[&str]), Err(LlmError::Shape { .. })));
}
