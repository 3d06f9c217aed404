//! The embedded store: exact search with filters, persistence, and no torn state when the
//! writing process is killed mid-upsert.

use std::collections::BTreeMap;
use std::time::Duration;

use llm_rag::store::{FlatStore, Record, VectorStore};
use llm_testkit::{kill_child_after, temp_path};

fn record(i: usize, dim: usize) -> Record {
    let vector = (0..dim).map(|j| ((i * 31 + j * 7) % 13) as f32 - 6.0).collect();
    let metadata = BTreeMap::from([("parity".to_string(), if i.is_multiple_of(2) { "even" } else { "odd" }.to_string())]);
    Record { id: format!("gen-{i}"), text: format!("text {i} ") + &"x".repeat(i % 50), metadata, vector }
}

#[test]
fn passes_the_store_suite_in_memory_and_on_disk() {
    crate::store_suite::run(&mut FlatStore::new());
    let dir = temp_path("suite");
    crate::store_suite::run(&mut FlatStore::open(&dir).unwrap());
    // What was written is what reopens.
    let reopened = FlatStore::open(&dir).unwrap();
    assert_eq!(reopened.count().unwrap(), 40);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exact_search_filters_and_persists() {
    let dir = temp_path("persist");
    let mut s = FlatStore::open(&dir).unwrap();
    s.upsert((0..20).map(|i| record(i, 8)).collect()).unwrap();
    let q = record(7, 8).vector;
    let hits = s.search(&q, 3, None).unwrap();
    assert_eq!(hits[0].id, "gen-7");
    assert!((hits[0].score - 1.0).abs() < 1e-6);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let even = BTreeMap::from([("parity".to_string(), "even".to_string())]);
    assert!(s.search(&q, 5, Some(&even)).unwrap().iter().all(|h| h.metadata["parity"] == "even"));
    assert_eq!(s.delete(&["gen-7", "nope"]).unwrap(), 1);
    // Replace by id.
    s.upsert(vec![Record { text: "replaced".into(), ..record(3, 8) }]).unwrap();
    let reopened = FlatStore::open(&dir).unwrap();
    assert_eq!(reopened.count().unwrap(), 19);
    assert_eq!(reopened.records(), s.records());
    assert_eq!(reopened.search(&q, 3, None).unwrap(), s.search(&q, 3, None).unwrap());
    // Wrong dimension: an error naming the record.
    let err = s.upsert(vec![record(99, 4)]).unwrap_err().to_string();
    assert!(err.contains("gen-99") && err.contains('4'), "{err}");
    // A corrupted file is refused by name, not half-read.
    let path = dir.join("store.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = FlatStore::open(&dir).unwrap_err().to_string();
    assert!(err.contains("store.bin") && err.contains("checksum"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs only as the child of `killed_writer_leaves_old_or_new_state`: upserts one record at a
/// time (each a full rewrite) until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("LLM_RAG_CRASH_CHILD") else { return };
    let mut s = FlatStore::open(&dir).unwrap();
    for i in s.count().unwrap().. {
        s.upsert(vec![record(i, 64)]).unwrap();
    }
}

#[test]
fn killed_writer_leaves_old_or_new_state() {
    for (round, delay_ms) in [30u64, 75, 120, 200, 333].into_iter().enumerate() {
        let dir = temp_path(&format!("crash-{round}"));
        // Start from a store of 50 records so each rewrite takes a while.
        FlatStore::open(&dir).unwrap().upsert((0..50).map(|i| record(i, 64)).collect()).unwrap();
        kill_child_after("flat_store::crash_child", "LLM_RAG_CRASH_CHILD", &dir, Duration::from_millis(delay_ms));
        let s = FlatStore::open(&dir).expect("the store opens after a crash");
        let n = s.count().unwrap();
        eprintln!("round {round}: killed after {delay_ms} ms with {n} records committed");
        assert!(n >= 50, "round {round}: lost committed records ({n})");
        // Exactly the records gen-0..gen-(n-1), each intact: an old or a new state, never a mix.
        for (i, r) in s.records().iter().enumerate() {
            assert_eq!(r, &record(i, 64), "round {round}: record {i}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
