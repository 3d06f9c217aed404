//! Parent-document retrieval (LangChain's `ParentDocumentRetriever`): small child chunks are
//! embedded and searched, because small chunks embed precisely; the larger parent documents they
//! came from are returned, because large chunks give the model context.
//!
//! Parents are whatever the caller indexes: whole documents, or the pieces of
//! [`split_parents`] (large recursive chunks) or [`markdown_parents`] (Markdown sections).
//! Each parent is cut into children by any [`Splitter`]; a child record has id
//! `<parent id>/<j>`, the parent's metadata plus `doc_id` (the parent's id, LangChain's
//! `id_key`) and `start_index` (its byte offset in the parent). Parents are kept in memory
//! (LangChain's `InMemoryStore`); the children go into any [`VectorStore`].
//!
//! A search ranks children and returns the distinct parents in order of their best child, up to
//! `k`. LangChain returns the parents of its top `search_kwargs["k"]` children, which can be
//! fewer than `k` parents when several children share one; here the child search widens until
//! `k` parents are found or every child has been seen.

use std::collections::{BTreeMap, HashMap};

use crate::load::Document;
use crate::embed::Embedder;
use crate::error::{RagError, Result};
use crate::split::{Chunk, MarkdownHeaderSplitter, Splitter};
use crate::store::{FlatStore, Hit, Record, VectorStore};

/// Child metadata key holding the parent's id (LangChain's `id_key`).
pub const PARENT_ID_KEY: &str = "doc_id";
/// Metadata key holding a piece's byte offset in the text it was cut from (LangChain's
/// `add_start_index`).
pub const START_KEY: &str = "start_index";

/// Children fetched per wanted parent in the first search.
const CHILDREN_PER_PARENT: usize = 4;

/// A retrieved parent with the child that ranked it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParentHit {
    /// The parent document.
    pub document: Document,
    /// Its best child's similarity to the query.
    pub score: f32,
    /// Its best child.
    pub child: Hit,
}

/// Indexes parents through their children and retrieves parents.
pub struct ParentDocumentRetriever<'a, S: VectorStore = FlatStore> {
    store: S,
    embedder: &'a dyn Embedder,
    child_splitter: &'a dyn Splitter,
    parents: HashMap<String, Document>,
    children: HashMap<String, Vec<String>>,
}

impl<'a, S: VectorStore> ParentDocumentRetriever<'a, S> {
    /// Children go into `store`, embedded by `embedder`, cut by `child_splitter`.
    pub fn new(store: S, embedder: &'a dyn Embedder, child_splitter: &'a dyn Splitter) -> Self {
        Self { store, embedder, child_splitter, parents: HashMap::new(), children: HashMap::new() }
    }

    /// Indexes `parents`; a parent whose id is already indexed is replaced, children and all.
    /// Returns the number of children stored.
    pub fn add_documents(&mut self, parents: Vec<Document>) -> Result<usize> {
        let mut added = 0;
        for parent in parents {
            let records = self.child_records(&parent)?;
            if let Some(old) = self.children.remove(&parent.id) {
                self.store.delete(&old.iter().map(String::as_str).collect::<Vec<_>>())?;
            }
            added += records.len();
            self.children.insert(parent.id.clone(), records.iter().map(|r| r.id.clone()).collect());
            self.store.upsert(records)?;
            self.parents.insert(parent.id.clone(), parent);
        }
        Ok(added)
    }

    /// The `k` parents whose children best match `query`, best first.
    pub fn retrieve(&self, query: &str, k: usize) -> Result<Vec<ParentHit>> {
        let total = self.store.count()?;
        if k == 0 || total == 0 {
            return Ok(vec![]);
        }
        let query = self.embedder.embed(&[query])?.pop().ok_or_else(|| embedder_error(1, 0))?;
        let mut fetch = (k * CHILDREN_PER_PARENT).min(total);
        loop {
            let parents = self.group(self.store.search(&query, fetch, None)?, k);
            if parents.len() >= k || fetch >= total {
                return Ok(parents);
            }
            fetch = (fetch * 2).min(total);
        }
    }

    /// A parent by id.
    pub fn parent(&self, id: &str) -> Option<&Document> {
        self.parents.get(id)
    }

    /// Number of parents indexed.
    pub fn len(&self) -> usize {
        self.parents.len()
    }

    /// Whether no parent is indexed.
    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }

    /// The children's store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn child_records(&self, parent: &Document) -> Result<Vec<Record>> {
        let chunks = self.child_splitter.chunks(&parent.text)?;
        if chunks.is_empty() {
            return Ok(vec![]);
        }
        let vectors = self.embedder.embed(&chunks.iter().map(|c| c.text.as_str()).collect::<Vec<_>>())?;
        if vectors.len() != chunks.len() {
            return Err(embedder_error(chunks.len(), vectors.len()));
        }
        Ok(chunks
            .into_iter()
            .zip(vectors)
            .enumerate()
            .map(|(j, (chunk, vector))| {
                let mut metadata = parent.metadata.clone();
                metadata.insert(PARENT_ID_KEY.into(), parent.id.clone());
                metadata.insert(START_KEY.into(), chunk.start.to_string());
                Record { id: format!("{}/{j}", parent.id), text: chunk.text, metadata, vector }
            })
            .collect())
    }

    /// Distinct parents of `hits` in hit order, at most `k`; children of unknown parents (other
    /// records in a shared store) are skipped.
    fn group(&self, hits: Vec<Hit>, k: usize) -> Vec<ParentHit> {
        let mut out: Vec<ParentHit> = vec![];
        for child in hits {
            let Some(document) = child.metadata.get(PARENT_ID_KEY).and_then(|id| self.parents.get(id)) else { continue };
            if out.iter().any(|p| p.document.id == document.id) {
                continue;
            }
            out.push(ParentHit { document: document.clone(), score: child.score, child });
            if out.len() == k {
                break;
            }
        }
        out
    }
}

fn embedder_error(wanted: usize, got: usize) -> RagError {
    RagError::Config { field: "embedder".into(), message: format!("returned {got} vectors for {wanted} texts") }
}

/// Cuts each document into parents with `splitter` (LangChain's `parent_splitter`): ids
/// `<document id>#<i>`, the document's metadata plus `start_index`.
pub fn split_parents(documents: &[Document], splitter: &dyn Splitter) -> Result<Vec<Document>> {
    let mut out = vec![];
    for doc in documents {
        for (i, Chunk { text, start }) in splitter.chunks(&doc.text)?.into_iter().enumerate() {
            let mut metadata = doc.metadata.clone();
            metadata.insert(START_KEY.into(), start.to_string());
            out.push(Document { id: format!("{}#{i}", doc.id), text, metadata });
        }
    }
    Ok(out)
}

/// Each document's Markdown sections as parents: ids `<document id>#<i>`, the document's
/// metadata plus the section's header path (`h1`, `h2`, ... as the splitter names them).
pub fn markdown_parents(documents: &[Document], splitter: &MarkdownHeaderSplitter) -> Vec<Document> {
    let mut out = vec![];
    for doc in documents {
        for (i, section) in splitter.split_text(&doc.text).into_iter().enumerate() {
            let mut metadata: BTreeMap<String, String> = doc.metadata.clone();
            metadata.extend(section.metadata);
            out.push(Document { id: format!("{}#{i}", doc.id), text: section.content, metadata });
        }
    }
    out
}
