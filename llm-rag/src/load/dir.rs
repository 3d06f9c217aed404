//! Directory walks (LangChain's `DirectoryLoader`): include and exclude globs, a size limit, a
//! loader chosen by extension, and every file that cannot be loaded reported with its reason.
//!
//! | extension | loader | documents | ids |
//! |---|---|---|---|
//! | `txt`, `text` | text | the file | `<rel>` |
//! | `md`, `markdown` | Markdown | a section per heading (`h1`.. `h6` metadata), or the file | `<rel>#<i>` / `<rel>` |
//! | `html`, `htm` | [`HtmlLoader`] | a section per heading, or the page | `<rel>#<i>` / `<rel>` |
//! | `json` | [`JsonLoader`] | the records its path selects (default: the whole file) | `<rel>#<i>` |
//! | `jsonl`, `ndjson` | [`JsonLoader`] | the records of each line | `<rel>#<i>` |
//! | `pdf` | [`pdf`](super::pdf) | a page | `<rel>#<i>` |
//!
//! `<rel>` is the path relative to the root (with `/`), also the `source` metadata.

use super::{into_documents, text_of, HtmlLoader, JsonLoader, LoadReport, Piece};
use crate::error::{RagError, Result};
use crate::split::MarkdownHeaderSplitter;
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::path::{Path, PathBuf};

/// Builds and runs a directory walk:
/// `DirLoader::new("docs").glob("**/*.md").glob("!**/drafts/**").max_bytes(1 << 20).load()`.
#[derive(Debug, Clone)]
pub struct DirLoader {
    root: PathBuf,
    include: Vec<String>,
    exclude: Vec<String>,
    extensions: Option<Vec<String>>,
    recursive: bool,
    max_bytes: u64,
    markdown_sections: bool,
    html: HtmlLoader,
    json: JsonLoader,
}

/// The validated filters of a walk.
#[derive(Default)]
struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

/// What a file's extension says about how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Markdown,
    Html,
    Json,
    Jsonl,
    Pdf,
}

impl DirLoader {
    /// Every supported file under `root`, recursively, up to 64 MiB each; Markdown and HTML
    /// by sections; JSON files whole.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            include: vec![],
            exclude: vec![],
            extensions: None,
            recursive: true,
            max_bytes: 64 << 20,
            markdown_sections: true,
            html: HtmlLoader::new(),
            json: JsonLoader::default(),
        }
    }

    /// A glob on the path relative to the root: `**/*.md` includes, `!**/drafts/**` excludes.
    /// `*` stays within one folder, `**` spans any number; `{md,txt}` alternates. With no
    /// include glob every file is included; an excluded file is never loaded.
    pub fn glob(self, pattern: &str) -> Self {
        match pattern.strip_prefix('!') {
            Some(p) => self.exclude(p),
            None => self.include(pattern),
        }
    }

    /// An include glob (see [`DirLoader::glob`]).
    pub fn include(mut self, pattern: &str) -> Self {
        self.include.push(pattern.to_string());
        self
    }

    /// An exclude glob (see [`DirLoader::glob`]).
    pub fn exclude(mut self, pattern: &str) -> Self {
        self.exclude.push(pattern.to_string());
        self
    }

    /// Considers only files with these extensions (any case); others are passed over without
    /// a report, as files outside the include globs are.
    pub fn extensions(mut self, extensions: &[&str]) -> Self {
        self.extensions = Some(extensions.iter().map(|e| e.to_ascii_lowercase()).collect());
        self
    }

    /// Whether to descend into folders (on by default). Symbolic links to folders are never
    /// followed (they can make cycles); links to files are read.
    pub fn recursive(mut self, on: bool) -> Self {
        self.recursive = on;
        self
    }

    /// The largest file read; larger ones are reported as [`RagError::TooLarge`].
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Markdown and HTML files as one document per heading section (on by default) or per file.
    pub fn sections(mut self, on: bool) -> Self {
        self.markdown_sections = on;
        self.html.sections = on;
        self
    }

    /// The HTML loader (its own sections setting applies to HTML files).
    pub fn html(mut self, loader: HtmlLoader) -> Self {
        self.html = loader;
        self
    }

    /// The JSON and JSON Lines loader (by default each file or line whole).
    pub fn json(mut self, loader: JsonLoader) -> Self {
        self.json = loader;
        self
    }

    /// Walks and loads. Only a bad glob is an error ([`RagError::Config`] naming it); every
    /// file or folder that cannot be loaded is in the report's `skipped`, in path order.
    pub fn load(&self) -> Result<LoadReport> {
        let filter = Filter { include: glob_set(&self.include)?, exclude: glob_set(&self.exclude)? };
        Ok(self.load_with(&filter))
    }

    fn load_with(&self, filter: &Filter) -> LoadReport {
        let mut report = LoadReport::default();
        let mut files = walk(&self.root, self.recursive, &mut report.skipped);
        files.sort();
        for rel in files.into_iter().filter(|rel| self.wanted(rel, filter)) {
            let path = self.root.join(&rel);
            match self.load_file(&path, &rel.display().to_string()) {
                Ok(documents) => report.documents.extend(documents),
                Err(e) => report.skipped.push((path, e)),
            }
        }
        report.skipped.sort_by(|a, b| a.0.cmp(&b.0));
        report
    }

    fn wanted(&self, rel: &Path, filter: &Filter) -> bool {
        let extension = extension(rel);
        self.extensions.as_ref().is_none_or(|list| list.contains(&extension))
            && filter.include.as_ref().is_none_or(|set| set.is_match(rel))
            && !filter.exclude.as_ref().is_some_and(|set| set.is_match(rel))
    }

    fn load_file(&self, path: &Path, source: &str) -> Result<Vec<super::Document>> {
        let kind = Kind::of(path).ok_or_else(|| RagError::Unsupported { path: path.to_path_buf(), extension: extension(path) })?;
        let bytes = std::fs::metadata(path).map_err(|e| RagError::io(path, e))?.len();
        if bytes > self.max_bytes {
            return Err(RagError::TooLarge { path: path.to_path_buf(), bytes, limit: self.max_bytes });
        }
        let data = std::fs::read(path).map_err(|e| RagError::io(path, e))?;
        let (pieces, numbered) = match kind {
            Kind::Pdf => (super::pdf::pdf_pieces(path, &data)?, true),
            Kind::Text => (vec![Piece { text: text_of(path, data)?, metadata: Default::default() }], false),
            Kind::Markdown => (markdown(text_of(path, data)?, self.markdown_sections), self.markdown_sections),
            Kind::Html => (self.html.pieces(&text_of(path, data)?), self.html.sections),
            Kind::Json => (self.json.json_pieces(path, &text_of(path, data)?)?, true),
            Kind::Jsonl => (self.json.jsonl_pieces(path, &text_of(path, data)?)?, true),
        };
        Ok(into_documents(source, pieces, numbered))
    }
}

/// The simple walk: files under `dir` whose extension is in `extensions` (any case) and whose
/// size is at most `max_bytes`, each one document (Markdown and HTML files whole) with id =
/// its path relative to `dir` and `source` = its path (`dir` joined). Files with other
/// extensions are passed over without a report; unreadable, oversized or binary ones are
/// reported.
pub fn load_dir(dir: &Path, extensions: &[&str], max_bytes: u64) -> LoadReport {
    let loader = DirLoader::new(dir).extensions(extensions).max_bytes(max_bytes).sections(false);
    let mut report = loader.load_with(&Filter::default());
    for d in &mut report.documents {
        let source = d.metadata.get("source").map(|rel| dir.join(rel).display().to_string()).unwrap_or_default();
        d.metadata.insert("source".into(), source);
    }
    report
}

impl Kind {
    fn of(path: &Path) -> Option<Self> {
        Some(match extension(path).as_str() {
            "txt" | "text" => Self::Text,
            "md" | "markdown" => Self::Markdown,
            "html" | "htm" => Self::Html,
            "json" => Self::Json,
            "jsonl" | "ndjson" => Self::Jsonl,
            "pdf" => Self::Pdf,
            _ => return None,
        })
    }
}

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// Markdown as LangChain's `MarkdownHeaderTextSplitter` cuts it on `#`.. `######` (headers
/// kept in the text), or whole.
fn markdown(text: String, sections: bool) -> Vec<Piece> {
    if !sections {
        return vec![Piece { text, metadata: Default::default() }];
    }
    const HEADERS: [(&str, &str); 6] = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4"), ("#####", "h5"), ("######", "h6")];
    let splitter = MarkdownHeaderSplitter::new(&HEADERS, false);
    splitter.split_text(&text).into_iter().map(|c| Piece { text: c.content, metadata: c.metadata }).collect()
}

fn glob_set(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| RagError::Config { field: "glob".into(), message: format!("{p:?}: {e}") })?;
        set.add(glob);
    }
    set.build().map(Some).map_err(|e| RagError::Config { field: "glob".into(), message: e.to_string() })
}

/// Files under `root` as paths relative to it; folders that cannot be listed are reported.
fn walk(root: &Path, recursive: bool, skipped: &mut Vec<(PathBuf, RagError)>) -> Vec<PathBuf> {
    let mut files = vec![];
    let mut folders = vec![PathBuf::new()];
    while let Some(rel) = folders.pop() {
        let dir = root.join(&rel);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                skipped.push((dir.clone(), RagError::io(dir, e)));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    skipped.push((dir.clone(), RagError::io(&dir, e)));
                    continue;
                }
            };
            let child = rel.join(entry.file_name());
            match entry.file_type() {
                Ok(t) if t.is_dir() => {
                    if recursive {
                        folders.push(child);
                    }
                }
                Ok(t) if t.is_file() || (t.is_symlink() && entry.path().is_file()) => files.push(child),
                Ok(_) => {}
                Err(e) => skipped.push((entry.path(), RagError::io(entry.path(), e))),
            }
        }
    }
    files
}
