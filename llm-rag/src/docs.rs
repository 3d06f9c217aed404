//! Documents and the simple loaders: text and Markdown files, directory walks, and corpora with
//! one document per line. A file that cannot be read (or is too large) is reported with its
//! reason and the rest of the batch still loads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
/// which older corpora (the gensim Lee corpus) use.
pub fn decode_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| b as char).collect(),
    }
}

/// Files loaded, and the ones skipped with why.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Documents, in path order.
    pub documents: Vec<Document>,
    /// `(file, reason)` for each file skipped.
    pub skipped: Vec<(PathBuf, String)>,
}

/// Walks `dir` recursively and loads files whose extension is in `extensions` (`txt`, `md`,
/// ...) and whose size is at most `max_bytes`; each file is one document with id = its path
/// relative to `dir`.
pub fn load_dir(dir: &Path, extensions: &[&str], max_bytes: u64) -> LoadReport {
    let mut files = vec![];
    let mut report = LoadReport::default();
    walk(dir, &mut files, &mut report.skipped);
    files.sort();
    for path in files {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !extensions.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
            continue;
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > max_bytes => {
                report.skipped.push((path, format!("{} bytes is over the limit of {max_bytes}", m.len())));
                continue;
            }
            Err(e) => {
                report.skipped.push((path, e.to_string()));
                continue;
            }
            _ => {}
        }
        match std::fs::read(&path) {
            Ok(bytes) => {
                let id = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
                let metadata = BTreeMap::from([("source".to_string(), path.display().to_string())]);
                report.documents.push(Document { id, text: decode_text(bytes), metadata });
            }
            Err(e) => report.skipped.push((path, e.to_string())),
        }
    }
    report
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, skipped: &mut Vec<(PathBuf, String)>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            skipped.push((dir.to_path_buf(), e.to_string()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, files, skipped);
        } else {
            files.push(path);
        }
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
