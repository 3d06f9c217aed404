//! Documents and their loaders, with LangChain's loaders as the model:
//!
//! - plain text and Markdown ([`load_lines`] for corpora with one document per line);
//! - [`html`]: `BSHTMLLoader`'s text (scripts, styles, comments dropped; entities decoded) cut
//!   into sections at headings with `HTMLHeaderTextSplitter`'s heading path (`h1`, `h2`, ...);
//! - [`json`]: `JSONLoader` for JSON and JSON Lines with a `jq_schema`-style path;
//! - [`pdf`]: `PyPDFLoader`, one document per page of the text layer;
//! - [`dir`]: `DirectoryLoader`: a walk with include/exclude globs and a size limit, dispatching
//!   on the extension. A file that cannot be loaded is reported with its reason (a typed
//!   [`RagError`](crate::RagError)) and the rest of the batch still loads.

pub mod dir;
pub mod html;
pub mod json;
pub mod json_path;
pub mod pdf;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use dir::{load_dir, DirLoader};
pub use html::{HtmlLoader, HtmlPage, HtmlSection};
pub use json::JsonLoader;
pub use json_path::{JsonPath, PathError};
pub use pdf::{load_pdf, pdf_pages, PdfProblem};

/// A document: id, text, metadata (`source`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// Unique id.
    pub id: String,
    /// Text.
    pub text: String,
    /// Metadata; loaders set `source` (the file).
    pub metadata: BTreeMap<String, String>,
}

/// Text decoded as UTF-8, or as Latin-1 when it is not valid UTF-8 (every byte a code point),
/// which older corpora (the gensim Lee corpus) use: llm-core's [`llm_core::io::decode_text`].
pub use llm_core::io::decode_text;

/// Files loaded, and the ones skipped with why.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Documents, in path order (and in file order within a file).
    pub documents: Vec<Document>,
    /// `(file, reason)` for each file (or directory) skipped; the error names the file too.
    pub skipped: Vec<(PathBuf, crate::RagError)>,
}

/// What one file yields before it gets its id and `source`: text and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) text: String,
    pub(crate) metadata: BTreeMap<String, String>,
}

/// Documents from a file's pieces: `source` set, ids `<source>#<index>` (0-based) when the file
/// may yield several, or `<source>` when it is always one.
pub(crate) fn into_documents(source: &str, pieces: Vec<Piece>, numbered: bool) -> Vec<Document> {
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut metadata = p.metadata;
            metadata.insert("source".into(), source.to_string());
            let id = if numbered { format!("{source}#{i}") } else { source.to_string() };
            Document { id, text: p.text, metadata }
        })
        .collect()
}

/// A text file's contents (see [`decode_text`]); a NUL byte means binary data, not text.
pub(crate) fn read_text(path: &Path) -> crate::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| crate::RagError::io(path, e))?;
    text_of(path, bytes)
}

/// `bytes` as text, or [`RagError::Binary`](crate::RagError::Binary) when they hold a NUL byte,
/// which no text format uses (git's test for binary files).
pub(crate) fn text_of(path: &Path, bytes: Vec<u8>) -> crate::Result<String> {
    match bytes.iter().position(|&b| b == 0) {
        Some(offset) => Err(crate::RagError::Binary { path: path.to_path_buf(), offset }),
        None => Ok(decode_text(bytes)),
    }
}

/// A corpus file with one document per non-empty line; ids are `<prefix>-<line index>` (0-based,
/// counting every line).
pub fn load_lines(path: &Path, prefix: &str) -> std::io::Result<Vec<Document>> {
    let text = decode_text(std::fs::read(path)?);
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Document {
            id: format!("{prefix}-{i}"),
            text: l.trim().to_string(),
            metadata: BTreeMap::from([("source".to_string(), format!("{}:{}", path.display(), i + 1))]),
        })
        .collect())
}
