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
