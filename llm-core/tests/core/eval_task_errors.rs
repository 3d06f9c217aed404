//! Bad evaluation tasks are typed errors naming the file, the line and the field, raised
//! before any model runs: malformed YAML, a key lm-eval would not accept, a dataset row
//! without a field the templates read, an empty choice list, a row that is not JSON, an
//! unsupported filter, a metric the output type cannot score, a bad `exact_match` option.

use std::path::{Path, PathBuf};

use llm_core::eval::task::{PromptOptions, Task};
use llm_core::LlmError;
use llm_testkit::temp_dir;

/// Writes `files` (name, text) into a fresh folder; returns the folder.
fn write(dir: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = temp_dir(dir);
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir
}

const MC: &str = "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: rows.jsonl\ntest_split: test\n\
output_type: multiple_choice\ndoc_to_text: \"Q: {{q}}\\nA:\"\ndoc_to_choice: choices\ndoc_to_target: answer\n";

/// The `Task` error's (file name, line, field, message), or a panic saying what came instead.
fn task_error(r: Result<impl std::fmt::Debug, LlmError>) -> (String, Option<usize>, String, String) {
    match r {
        Err(LlmError::Task { path, line, field, message }) => {
            (Path::new(&path).file_name().unwrap().to_string_lossy().into_owned(), line, field, message)
        }
        other => panic!("expected LlmError::Task, got {other:?}"),
    }
}

/// Loads the task and builds its requests (where the rows are read).
fn build(dir: &Path) -> Result<usize, LlmError> {
    let task = Task::load(dir.join("t.yaml"))?;
    Ok(task.build_requests(&PromptOptions::default(), None)?.len())
}

#[test]
fn a_good_task_builds_one_instance_per_row() {
    let rows = "{\"q\": \"1+1\", \"choices\": [\"2\", \"3\"], \"answer\": 0}\n{\"q\": \"2+2\", \"choices\": [\"4\", \"5\"], \"answer\": 0}\n";
    let dir = write("eval-err-good", &[("t.yaml", MC), ("rows.jsonl", rows)]);
    assert_eq!(build(&dir).unwrap(), 2);
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let broken = MC.replace("doc_to_choice: choices", "doc_to_choice: [choices");
    let dir = write("eval-err-yaml", &[("t.yaml", &broken), ("rows.jsonl", "")]);
    let (file, line, field, msg) = task_error(Task::load(dir.join("t.yaml")));
    assert_eq!((file.as_str(), field.as_str()), ("t.yaml", "yaml"), "{msg}");
    // The parser reports where it gave up: at or after the unclosed bracket (line 9).
    assert!(line.is_some_and(|l| l >= 9), "line {line:?}: {msg}");
}

#[test]
fn bad_keys_name_their_field_and_line() {
    let cases = [
        (MC.replace("output_type: multiple_choice", "output_type: multi_choice"), "output_type", 7),
        (format!("{MC}metric_list:\n  - metric: acc\n  - metric: rouge9\n"), "metric_list[1].metric", 11),
        (format!("{MC}process_docs: !function utils.process\n"), "process_docs", 11),
        (format!("{MC}metric_list:\n  - metric: bleu\n"), "metric_list[0].metric", 11),
        (format!("{MC}metric_list:\n  - metric: exact_match\n    regexes_to_ignore: [\"(\"]\n"), "metric_list[0].regexes_to_ignore", 11),
        (format!("{MC}metric_list:\n  - metric: exact_match\n    ignore_case: yes please\n"), "metric_list[0].ignore_case", 11),
        (MC.replace("dataset_path: json", "dataset_path: cais/mmlu"), "dataset_path", 2),
        (
            format!("{}filter_list:\n  - name: x\n    filter:\n      - function: majority_vote\n", MC.replace("multiple_choice", "generate_until")),
            "filter_list[0].filter[0].function",
            11,
        ),
    ];
    for (k, (yaml, want_field, want_line)) in cases.iter().enumerate() {
        let dir = write(&format!("eval-err-key-{k}"), &[("t.yaml", yaml), ("rows.jsonl", "")]);
        let (file, line, field, msg) = task_error(Task::load(dir.join("t.yaml")));
        assert_eq!((file.as_str(), field.as_str(), line), ("t.yaml", *want_field, Some(*want_line)), "{msg}");
    }
}

#[test]
fn a_row_missing_a_field_names_the_data_file_line_and_column() {
    let rows = "{\"q\": \"1+1\", \"choices\": [\"2\", \"3\"], \"answer\": 0}\n\n{\"q\": \"2+2\", \"choices\": [\"4\", \"5\"]}\n";
    let dir = write("eval-err-row", &[("t.yaml", MC), ("rows.jsonl", rows)]);
    let (file, line, field, msg) = task_error(build(&dir));
    // Line 3: the blank line 2 is counted, as an editor shows it.
    assert_eq!((file.as_str(), line, field.as_str()), ("rows.jsonl", Some(3), "answer"), "{msg}");
}

#[test]
fn an_empty_choice_list_names_the_row_and_doc_to_choice() {
    let rows = "{\"q\": \"1+1\", \"choices\": [\"2\", \"3\"], \"answer\": 0}\n{\"q\": \"2+2\", \"choices\": [], \"answer\": 0}\n";
    let dir = write("eval-err-choices", &[("t.yaml", MC), ("rows.jsonl", rows)]);
    let (file, line, field, msg) = task_error(build(&dir));
    assert_eq!((file.as_str(), line, field.as_str()), ("rows.jsonl", Some(2), "doc_to_choice"), "{msg}");
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn a_row_that_is_not_json_names_its_line() {
    let rows = "{\"q\": \"1+1\", \"choices\": [\"2\"], \"answer\": 0}\n{\"q\": oops}\n";
    let dir = write("eval-err-json", &[("t.yaml", MC), ("rows.jsonl", rows)]);
    let (file, line, field, _) = task_error(build(&dir));
    assert_eq!((file.as_str(), line, field.as_str()), ("rows.jsonl", Some(2), "row"));
}
