//! Vector stores: the [`VectorStore`] trait and [`FlatStore`], the embedded exact-search store
//! that persists to a directory and never leaves a torn index behind.
//!
//! Persistence: the whole store is one file, `store.bin` (a JSON header with the ids, texts and
//! metadata, then the vectors as little-endian f32, then an FNV-1a checksum of everything
//! before it). Every change rewrites it with llm-core's atomic writer (a synced temporary renamed
//! over `store.bin`, then the directory synced), so a process killed at any point leaves either
//! the old or the new file, and a file that fails its checksum is refused by name.

pub mod chroma;
pub mod hnsw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use llm_core::io::fnv1a;

use serde_json::{json, Value};

use crate::embed::{dot, unit};
use crate::error::{RagError, Result};

/// A stored document chunk with its vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unique id.
    pub id: String,
    /// Text.
    pub text: String,
    /// Metadata (source, page, heading path...).
    pub metadata: BTreeMap<String, String>,
    /// The vector.
    pub vector: Vec<f32>,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Record id.
    pub id: String,
    /// Cosine similarity to the query.
    pub score: f32,
    /// Text.
    pub text: String,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
}

/// Records must carry these metadata values (exact match on every pair).
pub type Filter = BTreeMap<String, String>;

/// What every vector store offers.
pub trait VectorStore {
    /// Inserts or replaces records by id; vectors must have the store's dimension.
    fn upsert(&mut self, records: Vec<Record>) -> Result<()>;
    /// Removes records by id; returns how many existed.
    fn delete(&mut self, ids: &[&str]) -> Result<usize>;
    /// The `k` records most similar (cosine) to `query` among those matching `filter`.
    fn search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>>;
    /// Number of records (a server-backed store asks its server, which can fail).
    fn count(&self) -> Result<usize>;
}

/// Exact cosine search over all records, persisted atomically when opened on a directory.
#[derive(Debug, Clone, Default)]
pub struct FlatStore {
    dim: Option<usize>,
    records: Vec<Record>,
    /// Unit-norm copies of the vectors, row-major, for the dot products.
    normalized: Vec<f32>,
    dir: Option<PathBuf>,
}

const FILE: &str = "store.bin";
const MAGIC: &[u8; 8] = b"LLMRAG01";

impl FlatStore {
    /// An in-memory store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens (or creates) a store persisted in `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| RagError::io(dir, e))?;
        let path = dir.join(FILE);
        let mut store = if path.exists() { read_file(&path)? } else { Self::default() };
        store.dir = Some(dir.to_path_buf());
        Ok(store)
    }

    /// The vector dimension, once a record is stored.
    pub fn dim(&self) -> Option<usize> {
        self.dim
    }

    /// All records, in insertion order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    fn rebuild(&mut self) {
        self.normalized = self.records.iter().flat_map(|r| unit(&r.vector)).collect();
    }

    fn persist(&self) -> Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        Ok(llm_core::io::atomic::write_bytes_atomic(&dir.join(FILE), &encode(self))?)
    }
}

fn encode(store: &FlatStore) -> Vec<u8> {
    let header = json!({
        "dim": store.dim,
        "records": store.records.iter().map(|r| json!({"id": r.id, "text": r.text, "metadata": r.metadata})).collect::<Vec<_>>(),
    });
    let header = serde_json::to_vec(&header).expect("JSON serialises");
    let mut out = Vec::with_capacity(16 + header.len() + store.records.len() * store.dim.unwrap_or(0) * 4 + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for r in &store.records {
        for x in &r.vector {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

fn read_file(path: &Path) -> Result<FlatStore> {
    let bytes = std::fs::read(path).map_err(|e| RagError::io(path, e))?;
    let bad = |m: &str| RagError::CorruptStore { path: path.to_path_buf(), message: m.to_string() };
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return Err(bad("bad magic"));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 8);
    if fnv1a(body).to_le_bytes() != tail {
        return Err(bad("checksum mismatch (a torn or corrupted file)"));
    }
    let hlen = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let header_end = usize::try_from(hlen).ok().and_then(|n| n.checked_add(16)).filter(|&e| e <= body.len());
    let header_end = header_end.ok_or_else(|| bad(&format!("header of {hlen} bytes runs past the end")))?;
    let header: Value = serde_json::from_slice(&body[16..header_end]).map_err(|e| bad(&format!("header: {e}")))?;
    let dim = header["dim"].as_u64().map(|d| usize::try_from(d).unwrap_or(usize::MAX));
    let data = &body[header_end..];
    let n_records = header["records"].as_array().map_or(0, Vec::len);
    // The vectors section is exactly one vector per record: checked before any is read.
    if n_records.checked_mul(dim.unwrap_or(0)).and_then(|n| n.checked_mul(4)) != Some(data.len()) {
        return Err(bad(&format!("{} bytes of vectors for {n_records} records of dimension {dim:?}", data.len())));
    }
    let mut vectors = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    let mut records = vec![];
    for r in header["records"].as_array().ok_or_else(|| bad("no records"))? {
        let metadata = r["metadata"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        let vector: Vec<f32> = vectors.by_ref().take(dim.unwrap_or(0)).collect();
        records.push(Record { id: r["id"].as_str().unwrap_or_default().into(), text: r["text"].as_str().unwrap_or_default().into(), metadata, vector });
    }
    let mut store = FlatStore { dim, records, normalized: vec![], dir: None };
    store.rebuild();
    Ok(store)
}

impl VectorStore for FlatStore {
    fn upsert(&mut self, records: Vec<Record>) -> Result<()> {
        for r in &records {
            let d = *self.dim.get_or_insert(r.vector.len());
            if r.vector.len() != d || d == 0 {
                return Err(RagError::Config { field: format!("record {}", r.id), message: format!("vector of {} values, the store holds {d}", r.vector.len()) });
            }
        }
        for r in records {
            match self.records.iter_mut().find(|x| x.id == r.id) {
                Some(old) => *old = r,
                None => self.records.push(r),
            }
        }
        self.rebuild();
        self.persist()
    }

    fn delete(&mut self, ids: &[&str]) -> Result<usize> {
        let before = self.records.len();
        self.records.retain(|r| !ids.contains(&r.id.as_str()));
        let removed = before - self.records.len();
        if removed > 0 {
            self.rebuild();
            self.persist()?;
        }
        Ok(removed)
    }

    fn search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Result<Vec<Hit>> {
        let Some(d) = self.dim else { return Ok(vec![]) };
        if query.len() != d {
            return Err(RagError::Config { field: "query".into(), message: format!("{} values, the store holds {d}", query.len()) });
        }
        let q = unit(query);
        let mut scored: Vec<(f32, usize)> = self
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| filter.is_none_or(|f| f.iter().all(|(k, v)| r.metadata.get(k) == Some(v))))
            .map(|(i, _)| (dot(&self.normalized[i * d..(i + 1) * d], &q), i))
            .collect();
        let order = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        // Partition the best k first (linear), then sort only those.
        if k < scored.len() {
            scored.select_nth_unstable_by(k, order);
            scored.truncate(k);
        }
        scored.sort_by(order);
        Ok(scored
            .into_iter()
            .take(k)
            .map(|(score, i)| {
                let r = &self.records[i];
                Hit { id: r.id.clone(), score, text: r.text.clone(), metadata: r.metadata.clone() }
            })
            .collect())
    }

    fn count(&self) -> Result<usize> {
        Ok(self.records.len())
    }
}
