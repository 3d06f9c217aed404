//! HTML pages as text, parsed with `scraper` (html5ever, the browsers' parsing algorithm, so
//! broken markup and entities come out as a browser shows them).
//!
//! What LangChain users expect from the two loaders they know: `BSHTMLLoader`'s text with the
//! `<title>` in metadata `title`, cut at headings as `HTMLHeaderTextSplitter` cuts it: one
//! document per section, with the heading path above it in metadata `h1`, `h2`, ... (as the
//! Markdown header splitter records it). Unlike LangChain's splitter, the heading's own text
//! opens its section instead of being a document of its own, and text before the first
//! heading is a section with no heading keys. [`HtmlLoader::whole_page`] gives one document
//! per page instead.
//!
//! Text: `script`, `style`, `noscript`, `template` and `head` (the title aside) are dropped, and
//! comments never count; runs of spaces and newlines collapse to one space (`pre` kept as it
//! is); block elements (`p`, `div`, headings, tables, ...) are separated by a blank line, list
//! items, table rows and `br` by a newline, table cells by a space. `&nbsp;` stays U+00A0.

use super::{into_documents, read_text, Document, Piece};
use crate::error::Result;
use ego_tree::iter::Edge;
use ego_tree::{NodeId, NodeRef};
use scraper::{Html, Node};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Elements dropped with everything inside them.
const SKIPPED: &[&str] = & ["script", "style", "noscript", "template", "head"];

/// Elements whose text stands apart as a paragraph.
const BLOCKS: &[&str] = &[
    "address", "article", "aside", "blockquote", "body", "caption", "center", "details", "dialog", "div", "dl", "fieldset",
    "figcaption", "figure", "footer", "form", "header", "hr", "html", "legend", "main", "menu", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "tfoot", "thead", "ul", "hgroup", "search",
];

/// Elements whose text starts on a new line.
const LINES: &[&str] = &["li", "tr", "dt", "dd", "option", "br"];

/// Loads HTML pages: by sections (the default) or whole (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlLoader {
    pub(crate) sections: bool,
    skip: BTreeSet<String>,
}

/// A page's text: its title and sections in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HtmlPage {
    /// The `<title>`, whitespace collapsed.
    pub title: Option<String>,
    /// The sections; none is empty.
    pub sections: Vec<HtmlSection>,
}

/// The text from one heading to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HtmlSection {
    /// `h1`.. `h6` to heading text, for the headings above this section (its own included).
    pub headings: BTreeMap<String, String>,
    /// The text, opening with its heading.
    pub text: String,
}

impl Default for HtmlLoader {
    fn default() -> Self {
        Self { sections: true, skip: SKIPPED.iter().map(|s| s.to_string()).collect() }
    }
}

impl HtmlLoader {
    /// One document per section; scripts, styles, `noscript`, templates and `head` dropped.
    pub fn new() -> Self {
        Self::default()
    }

    /// One document per page (`BSHTMLLoader`), metadata `title` only.
    pub fn whole_page(mut self) -> Self {
        self.sections = false;
        self
    }

    /// Drops `tag` (e.g. `nav`, `footer`) with everything inside it as well.
    pub fn skip_tag(mut self, tag: &str) -> Self {
        self.skip.insert(tag.to_ascii_lowercase());
        self
    }

    /// The title and sections of `html`.
    pub fn parse(&self, html: &str) -> HtmlPage {
        let html = Html::parse_document(html);
        let mut walk = Walk::new(&self.skip);
        for edge in html.tree.root().traverse() {
            match edge {
                Edge::Open(node) => walk.open(node),
                Edge::Close(node) => walk.close(node),
            }
        }
        walk.flush_section();
        HtmlPage { title: title(&html), sections: walk.sections }
    }

    /// A file's documents: ids `<path>#<index>` by sections, `<path>` whole; `source` the path.
    pub fn load(&self, path: &Path) -> Result<Vec<Document>> {
        let pieces = self.pieces(&read_text(path)?);
        Ok(into_documents(&path.display().to_string(), pieces, self.sections))
    }

    pub(crate) fn pieces(&self, html: &str) -> Vec<Piece> {
        let page = self.parse(html);
        let title: BTreeMap<String, String> = page.title.iter().map(|t| ("title".to_string(), t.clone())).collect();
        if !self.sections {
            return vec![Piece { text: page.text(), metadata: title }];
        }
        page.sections
            .into_iter()
            .map(|s| {
                let mut metadata = title.clone();
                metadata.extend(s.headings);
                Piece { text: s.text, metadata }
            })
            .collect()
    }
}

impl HtmlPage {
    /// The whole text: the sections separated by a blank line.
    pub fn text(&self) -> String {
        self.sections.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n\n")
    }
}

/// State of one walk over the document tree (iterative: deep markup cannot overflow the stack).
struct Walk<'a> {
    skip: &'a BTreeSet<String>,
    sections: Vec<HtmlSection>,
    sink: TextSink,
    /// Heading text by level - 1.
    path: [Option<String>; 6],
    /// The heading being read: (level, node).
    heading: Option<(usize, NodeId)>,
    /// The dropped element being passed over.
    skipping: Option<NodeId>,
    pre_depth: usize,
}

impl<'a> Walk<'a> {
    fn new(skip: &'a BTreeSet<String>) -> Self {
        Self { skip, sections: vec![], sink: TextSink::default(), path: Default::default(), heading: None, skipping: None, pre_depth: 0 }
    }

    fn open(&mut self, node: NodeRef<'_, Node>) {
        if self.skipping.is_some() {
            return;
        }
        match node.value() {
            Node::Text(t) if self.pre_depth > 0 => self.sink.pre(t),
            Node::Text(t) => self.sink.text(t),
            Node::Element(e) if self.skip.contains(e.name()) => self.skipping = Some(node.id()),
            Node::Element(e) => match heading_level(e.name()) {
                Some(level) if self.heading.is_none() => {
                    self.flush_section();
                    self.heading = Some((level, node.id()));
                }
                _ => self.boundary(e.name(), 1),
            },
            _ => {}
        }
    }

    fn close(&mut self, node: NodeRef<'_, Node>) {
        if let Some(id) = self.skipping {
            if id == node.id() {
                self.skipping = None;
            }
            return;
        }
        let Node::Element(e) = node.value() else { return };
        match self.heading {
            Some((level, id)) if id == node.id() => {
                let text = self.sink.out.split_whitespace().collect::<Vec<_>>().join(" ");
                self.path[level - 1] = (!text.is_empty()).then_some(text);
                self.path[level..].iter_mut().for_each(|h| *h = None);
                self.heading = None;
                self.sink.block();
            }
            _ => self.boundary(e.name(), -1),
        }
    }

    /// The break (or cell space) an element puts around its text; `pre_step` +1 opening, -1 closing.
    fn boundary(&mut self, name: &str, pre_step: isize) {
        if name == "pre" {
            self.pre_depth = self.pre_depth.saturating_add_signed(pre_step);
        }
        if name == "td" || name == "th" {
            self.sink.space();
        } else if LINES.contains(&name) {
            self.sink.line();
        } else if BLOCKS.contains(&name) || heading_level(name).is_some() {
            self.sink.block();
        }
    }

    fn flush_section(&mut self) {
        let text = self.sink.take();
        if text.is_empty() {
            return;
        }
        let headings = self.path.iter().enumerate().filter_map(|(i, h)| Some((format!("h{}", i + 1), h.clone()?))).collect();
        self.sections.push(HtmlSection { headings, text });
    }
}

fn heading_level(name: &str) -> Option<usize> {
    match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some((d - b'0') as usize),
        _ => None,
    }
}

/// The first `<title>`'s text, whitespace collapsed.
fn title(html: &Html) -> Option<String> {
    let node = html.tree.root().descendants().find(|n| matches!(n.value(), Node::Element(e) if e.name() == "title"))?;
    let text: String = node.descendants().filter_map(|n| n.value().as_text().map(|t| t.to_string())).collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!text.is_empty()).then_some(text)
}

/// Text with HTML's whitespace rules: pending breaks and spaces are written only before the
/// next visible character, so no text starts or ends with whitespace.
#[derive(Default)]
struct TextSink {
    out: String,
    space: bool,
    newlines: usize,
}

impl TextSink {
    fn text(&mut self, s: &str) {
        for c in s.chars() {
            // HTML collapses ASCII whitespace only; U+00A0 is a character like any other.
            if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c') {
                self.space = true;
            } else {
                self.push(c);
            }
        }
    }

    fn pre(&mut self, s: &str) {
        s.chars().for_each(|c| self.push(c));
    }

    fn push(&mut self, c: char) {
        if !self.out.is_empty() {
            if self.newlines > 0 {
                self.out.truncate(self.out.trim_end().len());
                self.out.extend(std::iter::repeat_n('\n', self.newlines));
            } else if self.space {
                self.out.push(' ');
            }
        }
        (self.space, self.newlines) = (false, 0);
        self.out.push(c);
    }

    fn space(&mut self) {
        self.space = true;
    }

    fn line(&mut self) {
        self.newlines = self.newlines.max(1);
    }

    fn block(&mut self) {
        self.newlines = 2;
    }

    fn take(&mut self) -> String {
        (self.space, self.newlines) = (false, 0);
        let text = std::mem::take(&mut self.out);
        text.trim_end().to_string()
    }
}
