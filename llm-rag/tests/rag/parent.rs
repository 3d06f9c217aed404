//! Parent-document retrieval (LangChain's `ParentDocumentRetriever`): children are searched,
//! distinct parents come back in order of their best child, up to k.

use std::collections::BTreeMap;

use llm_rag::docs::Document;
use llm_rag::embed::Embedder;
use llm_rag::parent::{markdown_parents, split_parents, ParentDocumentRetriever, PARENT_ID_KEY, START_KEY};
use llm_rag::split::{Chunk, MarkdownHeaderSplitter, Splitter};
use llm_rag::store::{FlatStore, VectorStore};

/// Counts of a few keywords: cosines a reader can work out by hand.
struct KeywordEmbedder;

const KEYWORDS: [&str; 5] = ["rust", "python", "ocean", "mountain", "dogs"];

impl Embedder for KeywordEmbedder {
    fn dim(&self) -> usize {
        KEYWORDS.len()
    }

    fn embed(&self, texts: &[&str]) -> llm_rag::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| KEYWORDS.iter().map(|k| t.split_whitespace().filter(|w| w == k).count() as f32).collect())
            .collect())
    }
}

/// One child per non-empty line.
struct Lines;

impl Splitter for Lines {
    fn chunks(&self, text: &str) -> llm_rag::Result<Vec<Chunk>> {
        let mut out = vec![];
        let mut start = 0;
        for line in text.split('\n') {
            if !line.is_empty() {
                out.push(Chunk { text: line.to_string(), start });
            }
            start += line.len() + 1;
        }
        Ok(out)
    }
}

fn doc(id: &str, text: &str) -> Document {
    Document { id: id.into(), text: text.into(), metadata: BTreeMap::from([("source".to_string(), format!("{id}.md"))]) }
}

fn corpus() -> Vec<Document> {
    vec![
        doc("p1", "rust borrow checker\ncats purr\nocean ocean mountain"),
        doc("p2", "python is dynamic\nrust and python interop\ndogs bark"),
        doc("p3", "mountain air\nocean tides"),
    ]
}

fn ids(hits: &[llm_rag::parent::ParentHit]) -> Vec<&str> {
    hits.iter().map(|h| h.document.id.as_str()).collect()
}

#[test]
fn returns_distinct_parents_in_order_of_best_child() {
    let mut r = ParentDocumentRetriever::new(FlatStore::new(), &KeywordEmbedder, &Lines);
    assert_eq!(r.add_documents(corpus()).unwrap(), 8, "3 + 3 + 2 children");
    assert_eq!((r.len(), r.store().count().unwrap()), (3, 8));

    // "rust": p1's first line scores 1, p2's second line 1/√2; every other child 0.
    let hits = r.retrieve("rust", 2).unwrap();
    assert_eq!(ids(&hits), ["p1", "p2"]);
    assert_eq!(hits[0].score, 1.0);
    assert!((hits[1].score - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6, "cosine in f32");
    assert_eq!(hits[0].document.text, corpus()[0].text, "the whole parent comes back");
    assert_eq!(hits[1].child.id, "p2/1");
    assert_eq!(hits[1].child.text, "rust and python interop");
    assert_eq!(hits[1].child.metadata[PARENT_ID_KEY], "p2");
    assert_eq!(hits[1].child.metadata[START_KEY], "18", "byte offset of the line in its parent");
    assert_eq!(hits[1].child.metadata["source"], "p2.md", "children carry the parent's metadata");

    // "ocean": p3's "ocean tides" is 1, p1's "ocean ocean mountain" 2/√5; p2 has none, so it
    // comes third on a zero score only when asked for 3.
    assert_eq!(ids(&r.retrieve("ocean", 2).unwrap()), ["p3", "p1"]);
    assert_eq!(ids(&r.retrieve("ocean", 3).unwrap()), ["p3", "p1", "p2"]);
    assert_eq!(r.retrieve("ocean", 10).unwrap().len(), 3, "at most every parent");
    assert!(r.retrieve("ocean", 0).unwrap().is_empty());
}

#[test]
fn search_widens_until_k_parents_are_found() {
    // Nine children of `big` outrank the only child of `small`: the first search (4 children
    // per wanted parent, 8) sees only `big`, so it must widen to find a second parent.
    let big = doc("big", &["rust"; 9].join("\n"));
    let small = doc("small", "rust python");
    let mut r = ParentDocumentRetriever::new(FlatStore::new(), &KeywordEmbedder, &Lines);
    r.add_documents(vec![big, small]).unwrap();
    let hits = r.retrieve("rust", 2).unwrap();
    assert_eq!(ids(&hits), ["big", "small"]);
    assert_eq!(hits[0].child.id, "big/0", "ties keep insertion order");
}

#[test]
fn re_adding_a_parent_replaces_its_children() {
    let mut r = ParentDocumentRetriever::new(FlatStore::new(), &KeywordEmbedder, &Lines);
    r.add_documents(corpus()).unwrap();
    assert_eq!(r.add_documents(vec![doc("p1", "dogs only")]).unwrap(), 1);
    assert_eq!((r.len(), r.store().count().unwrap()), (3, 6), "p1's three children became one");
    assert_eq!(ids(&r.retrieve("rust", 1).unwrap()), ["p2"], "p1 no longer mentions rust");
    assert_eq!(r.parent("p1").unwrap().text, "dogs only");
}

#[test]
fn parents_from_markdown_sections_and_from_a_splitter() {
    let guide = doc("guide", "# Intro\nrust is fast\n## Setup\ninstall python\nthen rust");
    let splitter = MarkdownHeaderSplitter::new(&[("#", "h1"), ("##", "h2")], true);
    let sections = markdown_parents(&[guide], &splitter);
    assert_eq!(sections.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["guide#0", "guide#1"]);
    assert_eq!(sections[1].metadata["h2"], "Setup");
    assert_eq!(sections[1].metadata["source"], "guide.md");

    let mut r = ParentDocumentRetriever::new(FlatStore::new(), &KeywordEmbedder, &Lines);
    r.add_documents(sections).unwrap();
    let hits = r.retrieve("python", 1).unwrap();
    assert_eq!(hits[0].document.id, "guide#1");
    assert_eq!(hits[0].document.metadata["h1"], "Intro");

    let pieces = split_parents(&[doc("d", "rust\n\nocean")], &Lines).unwrap();
    assert_eq!(pieces.iter().map(|d| (d.id.as_str(), d.metadata[START_KEY].as_str())).collect::<Vec<_>>(), [("d#0", "0"), ("d#1", "6")]);
}
