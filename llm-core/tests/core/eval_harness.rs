//! The harness's scoring with a scripted model (no network, no weights): each `filter_list`
//! pipeline scored on its own and reported under its name, corpus BLEU/chrF/TER over the
//! filtered generations as lm-eval's aggregations compute them, and a model that answers the
//! wrong number of requests refused.

use std::path::PathBuf;

use llm_core::eval::lm::{GenerateRequest, LanguageModel, Loglikelihood, LoglikelihoodRequest};
use llm_core::eval::metrics::{corpus_bleu, corpus_chrf, corpus_ter};
use llm_core::eval::task::{PromptOptions, Task};
use llm_core::eval::{evaluate_task, TaskResult};
use llm_core::{LlmError, Result};
use llm_testkit::temp_dir;

/// Answers each generation with a scripted text (by the country in the prompt); `drop` answers
/// fewer than asked.
struct Scripted {
    drop: bool,
}

const ANSWERS: [(&str, &str, &str); 3] =
    [("France", "Paris", "  PARIS\n"), ("Italy", "Rome", " rome is the capital"), ("Spain", "Madrid", " Madrid")];

impl LanguageModel for Scripted {
    fn loglikelihood(&self, requests: &[LoglikelihoodRequest]) -> Result<Vec<Loglikelihood>> {
        Ok(requests.iter().map(|_| Loglikelihood { logprob: -1.0, is_greedy: false }).collect())
    }

    fn loglikelihood_rolling(&self, texts: &[String]) -> Result<Vec<f64>> {
        Ok(texts.iter().map(|_| -1.0).collect())
    }

    fn generate_until(&self, requests: &[GenerateRequest]) -> Result<Vec<String>> {
        let n = requests.len() - usize::from(self.drop);
        let answer = |r: &GenerateRequest| ANSWERS.iter().find(|a| r.context.contains(a.0)).map(|a| a.2.to_string()).unwrap_or_default();
        Ok(requests[..n].iter().map(answer).collect())
    }

    fn name(&self) -> String {
        "scripted".into()
    }
}

fn task() -> Task {
    let dir = temp_dir("eval-harness");
    let rows: String = ANSWERS.iter().map(|(c, cap, _)| format!("{{\"country\": \"{c}\", \"capital\": \"{cap}\"}}\n")).collect();
    std::fs::write(dir.join("rows.jsonl"), rows).unwrap();
    let yaml = r#"task: caps
dataset_path: json
dataset_kwargs:
  data_files:
    test: rows.jsonl
test_split: test
output_type: generate_until
doc_to_text: "Capital of {{country}}?"
doc_to_target: capital
generation_kwargs:
  until: ["\n"]
  max_gen_toks: 8
filter_list:
  - name: strip
    filter:
      - function: remove_whitespace
      - function: take_first
  - name: first_word
    filter:
      - function: regex
        regex_pattern: "(\\w+)"
      - function: take_first
metric_list:
  - metric: exact_match
    ignore_case: true
  - metric: bleu
  - metric: chrf
  - metric: ter
"#;
    let path: PathBuf = dir.join("caps.yaml");
    std::fs::write(&path, yaml).unwrap();
    Task::load(&path).unwrap()
}

fn value(r: &TaskResult, metric: &str, filter: &str) -> f64 {
    r.metrics.iter().find(|m| m.metric == metric && m.filter == filter).unwrap_or_else(|| panic!("no {metric},{filter}")).value
}

#[test]
fn each_filter_pipeline_is_scored_under_its_name() {
    let r = evaluate_task(&Scripted { drop: false }, &task(), &PromptOptions::default(), None).unwrap();
    assert_eq!(r.docs.len(), 6, "3 documents x 2 pipelines");
    // strip: "PARIS" (case ignored: hit), "rome is the capital" (miss), "Madrid" (hit).
    assert!((value(&r, "exact_match", "strip") - 2.0 / 3.0).abs() < 1e-12);
    // first_word: "PARIS", "rome", "Madrid": all hit with ignore_case.
    assert_eq!(value(&r, "exact_match", "first_word"), 1.0);
    let strip: Vec<&str> = r.docs.iter().filter(|d| d.filter == "strip").map(|d| d.filtered.as_deref().unwrap()).collect();
    assert_eq!(strip, ["PARIS", "rome is the capital", "Madrid"]);
}

#[test]
fn corpus_metrics_are_sacrebleus_over_the_filtered_generations() {
    let r = evaluate_task(&Scripted { drop: false }, &task(), &PromptOptions::default(), None).unwrap();
    let refs: Vec<[&str; 1]> = ANSWERS.iter().map(|a| [a.1]).collect();
    for filter in ["strip", "first_word"] {
        let hyps: Vec<&str> = r.docs.iter().filter(|d| d.filter == filter).map(|d| d.filtered.as_deref().unwrap()).collect();
        assert_eq!(value(&r, "bleu", filter), corpus_bleu(&hyps, &refs).unwrap().score, "{filter}");
        assert_eq!(value(&r, "chrf", filter), corpus_chrf(&hyps, &refs).unwrap().score, "{filter}");
        assert_eq!(value(&r, "ter", filter), corpus_ter(&hyps, &refs).unwrap().score, "{filter}");
    }
    assert!(r.metrics.iter().filter(|m| ["bleu", "chrf", "ter"].contains(&m.metric.as_str())).all(|m| m.stderr.is_none()));
}

#[test]
fn a_model_that_drops_answers_is_a_shape_error() {
    let err = evaluate_task(&Scripted { drop: true }, &task(), &PromptOptions::default(), None).unwrap_err();
    assert!(matches!(&err, LlmError::Shape { what, .. } if what.contains("generate_until")), "{err}");
}
