//! [`ChromaStore`]: the [`VectorStore`] on a Chroma server, for collections that outgrow one
//! process. The server is Chroma's own (`pip install chromadb`, then
//! `chroma run --path DIR --host 127.0.0.1 --port 8000`); this client speaks its HTTP API v2.
//!
//! ```no_run
//! use llm_rag::store::chroma::{ChromaConfig, ChromaStore};
//! use llm_rag::store::VectorStore;
//! let mut store = ChromaStore::connect(&ChromaConfig::new("http://127.0.0.1:8000", "lee-chunks"))?;
//! let hits = store.search(&[0.1; 384], 5, None)?;
//! # Ok::<(), llm_rag::RagError>(())
//! ```
//!
//! Semantics match [`crate::store::FlatStore`]: cosine similarity (the collection is created
//! with `hnsw.space = "cosine"`, and an existing collection with another space is refused),
//! upsert replaces by id (the last of repeated ids wins), metadata filters are exact matches
//! on every pair, and `delete` returns how many of the ids existed. Chroma indexes with HNSW,
//! so on large collections search is approximate (`ef_search` trades recall for speed).
//! An upsert larger than the server's batch limit is sent in several requests; each request
//! is atomic on the server, the whole upsert is not.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::{RagError, Result};
use crate::store::{Filter, Hit, Record, VectorStore};

/// Where and how to open a Chroma collection.
#[derive(Debug, Clone, PartialEq)]
pub struct ChromaConfig {
    /// Server base URL, e.g. `http://127.0.0.1:8000` (https needs llm-rag's `tls` feature).
    pub url: String,
    /// Tenant (Chroma's default: `default_tenant`).
    pub tenant: String,
    /// Database, created when missing (Chroma's default: `default_database`).
    pub database: String,
    /// Collection name: 3-512 characters from `[a-zA-Z0-9._-]`, starting and ending with a
    /// letter or digit (Chroma's rule); created when missing.
    pub collection: String,
    /// HNSW candidate list while inserting; `None` keeps Chroma's default (100). Applies when
    /// the collection is created.
    pub ef_construction: Option<usize>,
    /// HNSW candidate list while searching; `None` keeps Chroma's default (100).
    pub ef_search: Option<usize>,
    /// HNSW neighbours per node (M); `None` keeps Chroma's default (16).
    pub max_neighbors: Option<usize>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl ChromaConfig {
    /// The collection `collection` in Chroma's default tenant and database on `url`.
    pub fn new(url: impl Into<String>, collection: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tenant: "default_tenant".into(),
            database: "default_database".into(),
            collection: collection.into(),
            ef_construction: None,
            ef_search: None,
            max_neighbors: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// The same collection in another database.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    fn validate(&self) -> Result<()> {
        let bad = |field: &str, message: String| Err(RagError::Config { field: format!("ChromaConfig.{field}"), message });
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return bad("url", format!("{:?} is not an http:// or https:// URL", self.url));
        }
        let name = &self.collection;
        let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let chars_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !(3..=512).contains(&name.len()) || !chars_ok || !edge_ok(name.chars().next()) || !edge_ok(name.chars().last()) {
            return bad("collection", format!("{name:?}: Chroma wants 3-512 characters from [a-zA-Z0-9._-], starting and ending with a letter or digit"));
        }
        for (field, v) in [("tenant", &self.tenant), ("database", &self.database)] {
            if v.is_empty() || v.contains('/') {
                return bad(field, format!("{v:?} is empty or contains '/'"));
            }
        }
        Ok(())
    }
}

/// A Chroma collection behind the [`VectorStore`] trait.
#[derive(Debug)]
pub struct ChromaStore {
    agent: ureq::Agent,
    server: String,
    /// `{server}/api/v2/tenants/{t}/databases/{d}/collections`.
    collections: String,
    /// `{collections}/{collection id}`.
    records: String,
    name: String,
    id: String,
    max_batch: usize,
}

impl ChromaStore {
    /// Connects, creates the database and the collection (cosine space) when missing, and
    /// reads the server's batch limit.
    pub fn connect(config: &ChromaConfig) -> Result<Self> {
        config.validate()?;
        let server = config.url.trim_end_matches('/').to_string();
        let agent = ureq::AgentBuilder::new().timeout(config.timeout).build();
        let database = format!("{server}/api/v2/tenants/{}/databases", config.tenant);
        let collections = format!("{database}/{}/collections", config.database);
        let mut store = Self { agent, server, collections, records: String::new(), name: config.collection.clone(), id: String::new(), max_batch: 1 };
        let checks = store.call("GET", &format!("{}/api/v2/pre-flight-checks", store.server), None, "pre-flight checks")?;
        store.max_batch = checks["max_batch_size"].as_u64().filter(|&n| n > 0).unwrap_or(1000) as usize;
        store.ensure_database(&database, &config.database)?;
        store.open_collection(config)?;
        tracing::debug!(server = %store.server, collection = %store.name, id = %store.id, "opened Chroma collection");
        Ok(store)
    }

    /// Waits until a server answers its heartbeat (for a server just started), or fails
    /// after `timeout` with the last transport error.
    pub fn wait_for_server(url: &str, timeout: Duration) -> Result<()> {
        let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(2)).build();
        let started = std::time::Instant::now();
        let heartbeat = format!("{}/api/v2/heartbeat", url.trim_end_matches('/'));
        loop {
            match agent.get(&heartbeat).call() {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() >= timeout => {
                    return Err(RagError::Server { url: url.into(), operation: format!("heartbeat for {timeout:?}"), message: e.to_string() })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The collection's id on the server (a UUID).
    pub fn collection_id(&self) -> &str {
        &self.id
    }

    /// Deletes the whole collection on the server.
    pub fn drop_collection(self) -> Result<()> {
        let url = format!("{}/{}", self.collections, self.name);
        self.call("DELETE", &url, None, &format!("drop collection {}", self.name)).map(drop)
    }

    fn ensure_database(&self, url: &str, name: &str) -> Result<()> {
        match self.call("GET", &format!("{url}/{name}"), None, "get database") {
            Ok(_) => Ok(()),
            Err(RagError::Server { message, .. }) if message.starts_with("HTTP 404") => {
                self.call("POST", url, Some(json!({ "name": name })), &format!("create database {name}")).map(drop)
            }
            Err(e) => Err(e),
        }
    }

    fn open_collection(&mut self, config: &ChromaConfig) -> Result<()> {
        let mut hnsw = Map::new();
        hnsw.insert("space".into(), "cosine".into());
        for (key, value) in [("ef_construction", config.ef_construction), ("ef_search", config.ef_search), ("max_neighbors", config.max_neighbors)] {
            if let Some(v) = value {
                hnsw.insert(key.into(), v.into());
            }
        }
        let body = json!({ "name": self.name, "get_or_create": true, "configuration": { "hnsw": hnsw } });
        let reply = self.call("POST", &self.collections, Some(body), &format!("get or create collection {}", self.name))?;
        let space = reply["configuration_json"]["hnsw"]["space"].as_str().unwrap_or("l2");
        if space != "cosine" {
            return Err(RagError::Config {
                field: format!("collection {}", self.name),
                message: format!("exists with distance space {space:?}; ChromaStore scores by cosine (drop it or use another name)"),
            });
        }
        self.id = reply["id"].as_str().ok_or_else(|| self.unreadable("get or create collection", &reply))?.to_string();
        self.records = format!("{}/{}", self.collections, self.id);
        Ok(())
    }

    /// One request; a non-2xx reply becomes [`RagError::Server`] with Chroma's own message.
    fn call(&self, method: &str, url: &str, body: Option<Value>, operation: &str) -> Result<Value> {
        let request = self.agent.request(method, url);
        let reply = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let error = |message: String| RagError::Server { url: self.server.clone(), operation: operation.into(), message };
        match reply {
            Ok(reply) => reply.into_json::<Value>().map_err(|e| error(format!("unreadable reply: {e}"))),
            Err(ureq::Error::Status(code, reply)) => {
                let text = reply.into_string().unwrap_or_default();
                let parsed: Option<String> = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| Some(format!("{}: {}", v["error"].as_str()?, v["message"].as_str()?)));
                Err(error(format!("HTTP {code}: {}", parsed.unwrap_or(text))))
            }
            Err(e) => Err(error(e.to_string())),
        }
    }

    fn unreadable(&self, operation: &str, reply: &Value) -> RagError {
        let mut text = reply.to_string();
        text.truncate(200);
        RagError::Server { url: self.server.clone(), operation: operation.into(), message: format!("unexpected reply {text}") }
    }

    fn op(&self, what: &str) -> String {
        format!("{what} in collection {}", self.name)
    }
}

/// Chroma's `where` for an exact match on every pair (`$and` needs two or more clauses).
fn where_clause(filter: &Filter) -> Option<Value> {
    let mut clauses: Vec<Value> = filter.iter().map(|(k, v)| json!({ k: { "$eq": v } })).collect();
    match clauses.len() {
        0 => None,
        1 => clauses.pop(),
        _ => Some(json!({ "$and": clauses })),
    }
}

fn metadata_of(value: &Value) -> BTreeMap<String, String> {
    let Some(map) = value.as_object() else { return BTreeMap::new() };
    map.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect()
}

/// The last record of each repeated id, in first-seen order (what sequential upserts leave).
fn dedup_last(records: Vec<Record>) -> Vec<Record> {
    let mut slot: BTreeMap<String, usize> = BTreeMap::new();
    let mut out: Vec<Record> = Vec::with_capacity(records.len());
    for r in records {
        match slot.get(&r.id) {
            Some(&i) => out[i] = r,
            None => {
                slot.insert(r.id.clone(), out.len());
                out.push(r);
            }
        }
    }
    out
}

impl VectorStore for ChromaStore {
    fn upsert(&mut self, records: Vec<Record>) -> Result<()> {
        let dim = records.first().map_or(0, |r| r.vector.len());
        if let Some(r) = records.iter().find(|r| r.vector.len() != dim || dim == 0) {
            return Err(RagError::Config { field: format!("record {}", r.id), message: format!("vector of {} values, the batch has {dim}", r.vector.len()) });
        }
        let records = dedup_last(records);
        for batch in records.chunks(self.max_batch) {
            let body = json!({
                "ids": batch.iter().map(|r| &r.id).collect::<Vec<_>>(),
                "embeddings": batch.iter().map(|r| &r.vector).collect::<Vec<_>>(),
                "documents": batch.iter().map(|r| &r.text).collect::<Vec<_>>(),
                "metadatas": batch.iter().map(|r| if r.metadata.is_empty() { Value::Null } else { json!(r.metadata) }).collect::<Vec<_>>(),
            });
            let what = self.op(&format!("upsert {} records starting at {}", batch.len(), batch[0].id));
            self.call("POST", &format!("{}/upsert", self.records), Some(body), &what)?;
        }
        Ok(())
    }

    fn delete(&mut self, ids: &[&str]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        // Chroma's `deleted` counts the ids asked for, present or not; ask which exist first.
        let what = self.op("get ids before delete");
        let found = self.call("POST", &format!("{}/get", self.records), Some(json!({ "ids": ids, "include": [] })), &what)?;
        let existing: Vec<&str> = found["ids"].as_array().ok_or_else(|| self.unreadable(&what, &found))?.iter().filter_map(Value::as_str).collect();
        if !existing.is_empty() {
            self.call("POST", &format!("{}/delete", self.records), Some(json!({ "ids": existing })), &self.op("delete"))?;
        }
        Ok(existing.len())
    }

    fn search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>> {
        if k == 0 {
            return Ok(vec![]);
        }
        let mut body = json!({ "query_embeddings": [query], "n_results": k, "include": ["documents", "metadatas", "distances"] });
        if let Some(clause) = filter.and_then(where_clause) {
            body["where"] = clause;
        }
        let what = self.op("query");
        let reply = self.call("POST", &format!("{}/query", self.records), Some(body), &what)?;
        let first = |key: &str| reply[key].get(0).and_then(Value::as_array).cloned();
        let (Some(ids), Some(distances)) = (first("ids"), first("distances")) else { return Err(self.unreadable(&what, &reply)) };
        let (documents, metadatas) = (first("documents").unwrap_or_default(), first("metadatas").unwrap_or_default());
        let mut hits = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let (Some(id), Some(distance)) = (id.as_str(), distances.get(i).and_then(Value::as_f64)) else { return Err(self.unreadable(&what, &reply)) };
            let text = documents.get(i).and_then(Value::as_str).unwrap_or_default().to_string();
            let metadata = metadatas.get(i).map(metadata_of).unwrap_or_default();
            hits.push(Hit { id: id.to_string(), score: 1.0 - distance as f32, text, metadata });
        }
        Ok(hits)
    }

    fn count(&self) -> Result<usize> {
        let what = self.op("count");
        let reply = self.call("GET", &format!("{}/count", self.records), None, &what)?;
        reply.as_u64().map(|n| n as usize).ok_or_else(|| self.unreadable(&what, &reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_clauses_follow_chroma_grammar() {
        let one = Filter::from([("lang".to_string(), "en".to_string())]);
        assert_eq!(where_clause(&one), Some(json!({"lang": {"$eq": "en"}})));
        let two = Filter::from([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]);
        assert_eq!(where_clause(&two), Some(json!({"$and": [{"a": {"$eq": "1"}}, {"b": {"$eq": "2"}}]})));
        assert_eq!(where_clause(&Filter::new()), None);
    }

    #[test]
    fn config_is_checked_before_connecting() {
        let err = ChromaStore::connect(&ChromaConfig::new("127.0.0.1:8000", "docs")).unwrap_err().to_string();
        assert!(err.contains("ChromaConfig.url"), "{err}");
        let err = ChromaStore::connect(&ChromaConfig::new("http://127.0.0.1:1", "x")).unwrap_err().to_string();
        assert!(err.contains("ChromaConfig.collection") && err.contains("3-512"), "{err}");
    }

    #[test]
    fn repeated_ids_keep_the_last_record() {
        let r = |id: &str, text: &str| Record { id: id.into(), text: text.into(), metadata: BTreeMap::new(), vector: vec![1.0] };
        let out = dedup_last(vec![r("a", "1"), r("b", "2"), r("a", "3")]);
        assert_eq!(out.iter().map(|r| (r.id.as_str(), r.text.as_str())).collect::<Vec<_>>(), [("a", "3"), ("b", "2")]);
    }
}
