//! PDFs by their text layer, one document per page (LangChain's `PyPDFLoader`), with `lopdf`.
//!
//! Metadata: `source`, `page` (1-based, unlike PyPDFLoader's 0-based `page`) and
//! `total_pages`. Pages without text are left out; a file none of whose pages has text (a scan
//! that needs OCR), an encrypted one that the empty password does not open, or a corrupt one is
//! a [`PdfProblem`] for that file. A panic inside the parser is caught and reported as one too
//! (the panic hook still prints its message).

use super::{into_documents, Document, Piece};
use crate::error::{RagError, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Why a PDF gave no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfProblem {
    /// The file is not a PDF we can read; lopdf's reason.
    #[error("not a readable PDF: {0}")]
    Corrupt(String),
    /// Encrypted, and the empty user password does not open it.
    #[error("encrypted, and a password is needed")]
    Encrypted,
    /// No page has text (a scanned document: run OCR first).
    #[error("no text layer (a scan? run OCR first)")]
    NoTextLayer,
    /// The parser panicked on this file; the panic's message.
    #[error("the PDF parser panicked: {0}")]
    ParserPanicked(String),
}

/// A PDF file's pages as documents: ids `<path>#<index>`, metadata `source`, `page`,
/// `total_pages`.
pub fn load_pdf(path: &Path) -> Result<Vec<Document>> {
    let bytes = std::fs::read(path).map_err(|e| RagError::io(path, e))?;
    Ok(into_documents(&path.display().to_string(), pdf_pieces(path, &bytes)?, true))
}

/// The text of every page (`""` for a page without text), in page order; lines end-trimmed,
/// lines joined with `\n`.
pub fn pdf_pages(bytes: &[u8]) -> std::result::Result<Vec<String>, PdfProblem> {
    let pages = std::panic::catch_unwind(|| extract(bytes)).unwrap_or_else(|payload| Err(PdfProblem::ParserPanicked(panic_message(payload.as_ref()))))?;
    if pages.iter().all(|p| p.is_empty()) {
        return Err(PdfProblem::NoTextLayer);
    }
    Ok(pages)
}

pub(crate) fn pdf_pieces(path: &Path, bytes: &[u8]) -> Result<Vec<Piece>> {
    let pages = pdf_pages(bytes).map_err(|problem| RagError::Pdf { path: path.to_path_buf(), problem })?;
    let total = pages.len().to_string();
    Ok(pages
        .into_iter()
        .enumerate()
        .filter(|(_, text)| !text.is_empty())
        .map(|(i, text)| {
            let metadata = BTreeMap::from([("page".to_string(), (i + 1).to_string()), ("total_pages".to_string(), total.clone())]);
            Piece { text, metadata }
        })
        .collect())
}

fn extract(bytes: &[u8]) -> std::result::Result<Vec<String>, PdfProblem> {
    let document = lopdf::Document::load_mem(bytes).map_err(|e| match e {
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword => PdfProblem::Encrypted,
        e => PdfProblem::Corrupt(e.to_string()),
    })?;
    // lopdf opens with the empty password when it can; the /Encrypt entry stays when it cannot.
    if document.is_encrypted() {
        return Err(PdfProblem::Encrypted);
    }
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(PdfProblem::Corrupt("no pages".into()));
    }
    pages
        .keys()
        .map(|&n| {
            let text = document.extract_text(&[n]).map_err(|e| PdfProblem::Corrupt(format!("page {n}: {e}")))?;
            Ok(text.lines().map(str::trim_end).collect::<Vec<_>>().join("\n").trim().to_string())
        })
        .collect()
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "(no message)".into(),
    }
}
