//! BIG-bench `task.json` files read into Hugging Face `bigbench` rows, against the rows that
//! BIG-bench's own formatting code makes from the same files (scripts/bigbench-fixtures.sh).

use llm_core::eval::bigbench::read_bigbench_task;
use llm_testkit::{read_json, repo_path};

/// emoji_movie: default prefixes, five choices appended in NumPy's order, a `target` field.
/// novel_concepts: its own prefixes, choices not appended, several correct choices.
/// winowhy: a task prefix, and one example twice (the repeat is dropped).
const TASKS: [(&str, usize); 3] = [("emoji_movie", 40), ("novel_concepts", 32), ("winowhy", 39)];

#[test]
fn bigbench_rows_equal_bigbench_formatting_code() {
    for (name, rows) in TASKS {
        let dir = repo_path(&format!("fixtures/bigbench/{name}"));
        let task = read_bigbench_task(&dir.join("task.json")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = read_json(&dir.join("docs.json"));
        let want = want.as_array().expect("docs.json is a list of rows");
        assert_eq!(task.docs.len(), rows, "{name}: distinct examples");
        assert_eq!(want.len(), rows, "{name}: rows in docs.json");
        for (doc, want) in task.docs.iter().zip(want) {
            // Exact: the rows are strings and whole numbers.
            assert_eq!(&doc.to_json(), want, "{name} row {}", doc.idx);
        }
    }
}

#[test]
fn bigbench_task_keeps_name_and_description() {
    let task = read_bigbench_task(&repo_path("fixtures/bigbench/emoji_movie/task.json")).unwrap();
    assert_eq!(task.name, "emoji_movie");
    assert_eq!(task.description, "Guess popular movies from their emoji descriptions");
}

#[test]
fn bigbench_task_builds_lm_eval_multiple_choice_requests() {
    use llm_core::eval::task::{DocRequests, PromptOptions, Task, Target};
    let path = repo_path("fixtures/bigbench/novel_concepts/task.json");
    let task = Task::from_bigbench(&path).unwrap();
    assert_eq!(task.name(), "bigbench_novel_concepts_multiple_choice");
    let docs = read_json(&repo_path("fixtures/bigbench/novel_concepts/docs.json"));
    let instances = task.build_requests(&PromptOptions::default(), None).unwrap();
    assert_eq!(instances.len(), 32);
    for (inst, doc) in instances.iter().zip(docs.as_array().unwrap()) {
        let DocRequests::Choices { context, choices, gold, continuations } = &inst.requests else { panic!("multiple choice") };
        // lm-eval: the prompt is `inputs`, each continuation " " + choice, gold the index of
        // targets[0] among the choices.
        assert_eq!(context, doc["inputs"].as_str().unwrap());
        let want: Vec<&str> = doc["multiple_choice_targets"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(choices, &want);
        assert_eq!(continuations, &want.iter().map(|c| format!(" {c}")).collect::<Vec<_>>());
        let target = doc["targets"][0].as_str().unwrap();
        assert_eq!(gold, &Target::Index(want.iter().position(|c| *c == target).unwrap() as i64));
    }
}
