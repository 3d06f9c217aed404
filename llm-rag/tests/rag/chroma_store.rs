//! `ChromaStore` against a real Chroma server on loopback: the same suite as the embedded
//! store, then durability across a server restart.
//!
//! The server is `chroma run` from the `chromadb` PyPI package (`scripts/fetch-chroma.sh`
//! installs it into the model cache). The test starts its own server on a free port with a
//! temporary data directory, or uses `LLM_CHROMA_URL` if set. Without either it fails, naming
//! the script: a store test that silently skips proves nothing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use llm_rag::chroma::{ChromaConfig, ChromaStore};
use llm_rag::store::VectorStore;
use llm_testkit::temp_path;

/// A `chroma run` child, killed when dropped.
struct Server {
    child: Option<Child>,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn chroma_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("LLM_CHROMA_BIN") {
        return bin.into();
    }
    let cached = llm_core::weights::cache_dir().join("chroma-venv/bin/chroma");
    if cached.exists() {
        return cached;
    }
    panic!("no Chroma server: run scripts/fetch-chroma.sh (installs chromadb into {}), or set LLM_CHROMA_BIN or LLM_CHROMA_URL", cached.display());
}

fn start(data: &Path) -> Server {
    if let Ok(url) = std::env::var("LLM_CHROMA_URL") {
        return Server { child: None, url };
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bin = chroma_binary();
    let log = std::fs::File::create(data.with_extension("log")).unwrap();
    let child = Command::new(&bin)
        .args(["run", "--host", "127.0.0.1", "--port", &port.to_string(), "--path"])
        .arg(data)
        .env("ANONYMIZED_TELEMETRY", "False")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let server = Server { child: Some(child), url: format!("http://127.0.0.1:{port}") };
    ChromaStore::wait_for_server(&server.url, Duration::from_secs(60)).unwrap();
    let version = ureq::get(&format!("{}/api/v2/version", server.url)).call().unwrap().into_string().unwrap();
    // Through the stderr handle, past the harness's capture (which only takes `eprintln!`), so
    // the CI log shows which server the suite ran against.
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "[chroma] store suite runs against the Chroma server at {} (API version {version})", server.url);
    server
}

#[test]
fn chroma_passes_the_store_suite_and_survives_a_restart() {
    let data = temp_path("chroma-data");
    let server = start(&data);
    // A database of this run's own, so a shared server (LLM_CHROMA_URL) starts empty.
    let config = ChromaConfig::new(&server.url, "suite").database(format!("llm-rag-test-{}", std::process::id()));
    let mut store = ChromaStore::connect(&config).unwrap();
    crate::store_suite::run(&mut store);
    let q = crate::store_suite::vector(11);
    let before = store.search(&q, 10, None).unwrap();

    // Reconnecting finds the same collection, not a new one.
    let again = ChromaStore::connect(&config).unwrap();
    assert_eq!(again.collection_id(), store.collection_id());

    // A collection made by someone else with L2 distance is refused, by name.
    let agent = ureq::agent();
    let url = format!("{}/api/v2/tenants/default_tenant/databases/{}/collections", server.url, config.database);
    agent.post(&url).send_json(serde_json::json!({"name": "euclid", "configuration": {"hnsw": {"space": "l2"}}})).unwrap();
    let err = ChromaStore::connect(&ChromaConfig { collection: "euclid".into(), ..config.clone() }).unwrap_err().to_string();
    assert!(err.contains("euclid") && err.contains("l2"), "{err}");
    // A server error carries Chroma's message and the operation.
    let err = store.search(&[1.0; 3], 1, None).unwrap_err().to_string();
    assert!(err.contains("query in collection suite") && err.contains("dimension"), "{err}");

    if server.child.is_some() {
        // Kill the server (SIGKILL: no clean shutdown) and start another on the same data.
        drop(server);
        let server = start(&data);
        let store = ChromaStore::connect(&ChromaConfig { url: server.url.clone(), ..config.clone() }).unwrap();
        assert_eq!(store.count().unwrap(), 40, "records survive a killed server");
        assert_eq!(store.search(&q, 10, None).unwrap(), before, "same answers after the restart");
        store.drop_collection().unwrap();
        let _ = std::fs::remove_dir_all(&data);
    } else {
        store.drop_collection().unwrap();
    }
}

#[test]
fn an_unreachable_server_is_a_typed_error() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let err = ChromaStore::connect(&ChromaConfig::new(&url, "docs")).unwrap_err();
    assert!(matches!(err, llm_rag::RagError::Server { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}
