//! The document loaders: HTML by heading sections, JSON/JSONL by jq-style paths, PDF pages, and
//! directory walks with globs and per-file errors, checked against exact texts and metadata of
//! the files in `tests/data/loaders` (PDFs written by `make_pdfs.py` there).

use llm_rag::RagError;
use llm_rag::docs::{load_dir, load_pdf, pdf_pages, DirLoader, Document, HtmlLoader, HtmlSection, JsonLoader, JsonPath, PdfProblem};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/loaders").join(name)
}

fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn with_source(source: &Path, pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = meta(pairs);
    m.insert("source".into(), source.display().to_string());
    m
}

fn section(headings: &[(&str, &str)], text: &str) -> HtmlSection {
    HtmlSection { headings: meta(headings), text: text.into() }
}

/// The page's sections after script, style, comments, noscript and template are dropped.
fn tea_sections() -> Vec<HtmlSection> {
    let h1 = ("h1", "Tea & Biscuits");
    vec![
        section(&[h1], "Tea & Biscuits\n\nTea is brewed at 95\u{2013}100\u{a0}\u{b0}C \u{2014} never boiled twice.\n\nIt pairs with shortbread."),
        section(&[h1, ("h2", "Green tea")], "Green tea\n\nSteep for 2\u{2013}3 minutes.\nUse 80\u{b0}C water.\n\nSencha\nMatcha"),
        section(&[h1, ("h2", "Black tea")], "Black tea\n\nAssam <strong> and Darjeeling."),
        section(&[("h1", "Serving")], "Serving\n\nWarm the pot first."),
    ]
}

#[test]
fn html_sections_carry_heading_path_and_decoded_text() {
    let page = HtmlLoader::new().parse(&std::fs::read_to_string(data("page.html")).unwrap());
    assert_eq!(page.title.as_deref(), Some("Tea & Biscuits"));
    let mut want = vec![section(&[], "Home | About")];
    want.extend(tea_sections());
    assert_eq!(page.sections, want);
}

#[test]
fn html_skip_tag_drops_navigation() {
    let page = HtmlLoader::new().skip_tag("nav").parse(&std::fs::read_to_string(data("page.html")).unwrap());
    assert_eq!(page.sections, tea_sections());
}

#[test]
fn html_load_gives_section_documents_or_one_whole_page() {
    let path = data("page.html");
    let docs = HtmlLoader::new().skip_tag("nav").load(&path).unwrap();
    let source = path.display().to_string();
    assert_eq!(docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [0, 1, 2, 3].map(|i| format!("{source}#{i}")));
    assert_eq!(docs[1].metadata, with_source(&path, &[("title", "Tea & Biscuits"), ("h1", "Tea & Biscuits"), ("h2", "Green tea")]));

    let whole = HtmlLoader::new().skip_tag("nav").whole_page().load(&path).unwrap();
    let text = tea_sections().iter().map(|s| s.text.clone()).collect::<Vec<_>>().join("\n\n");
    assert_eq!(whole, vec![Document { id: source, text, metadata: with_source(&path, &[("title", "Tea & Biscuits")]) }]);
}

#[test]
fn json_path_selects_array_items_and_content_key() {
    let path = data("chat.json");
    let source = path.display().to_string();
    let docs = JsonLoader::new(".messages[].content").unwrap().metadata("chat", ".title").unwrap().load_json(&path).unwrap();
    assert_eq!(
        docs,
        vec![
            Document { id: format!("{source}#0"), text: "Hello & welcome!".into(), metadata: with_source(&path, &[("chat", "Support chat"), ("seq_num", "1")]) },
            Document { id: format!("{source}#1"), text: "Thanks, Ada.".into(), metadata: with_source(&path, &[("chat", "Support chat"), ("seq_num", "2")]) },
        ]
    );

    let loader = JsonLoader::new(".messages[]").unwrap().content_key(".content").unwrap();
    let docs = loader.metadata("sender", ".sender_name").unwrap().metadata("time", ".timestamp_ms").unwrap().load_json(&path).unwrap();
    assert_eq!(docs[1].text, "Thanks, Ada.");
    assert_eq!(docs[1].metadata, with_source(&path, &[("sender", "Bob"), ("time", "1700000060000"), ("seq_num", "2")]));
}

#[test]
fn json_path_errors_name_file_and_concrete_path() {
    let path = data("chat.json");
    let err = JsonLoader::new(".messages[].missing").unwrap().load_json(&path).unwrap_err();
    assert!(matches!(&err, RagError::Parse { at, .. } if at == ".messages[0].missing"), "{err:?}");
    assert!(err.to_string().starts_with(&format!("{}: .messages[0].missing: expected a string, found null", path.display())), "{err}");

    let err = JsonLoader::new(".title[]").unwrap().load_json(&path).unwrap_err();
    assert_eq!(err.to_string(), format!("{}: .title: cannot iterate over a string", path.display()));

    let err = JsonLoader::new("messages").unwrap_err();
    assert!(matches!(&err, RagError::Config { field, .. } if field == "jq_schema"), "{err:?}");
}

#[test]
fn json_path_parses_quoted_names_and_indices() {
    let value: serde_json::Value = serde_json::json!({"a b": [{"c": 1}, {"c": 2}, {"c": 3}]});
    let path = JsonPath::parse(r#"."a b"[-1].c"#).unwrap();
    assert_eq!(path.to_string(), r#"."a b"[-1].c"#);
    let found: Vec<(String, i64)> = path.select(&value).unwrap().into_iter().map(|(at, v)| (at, v.as_i64().unwrap())).collect();
    assert_eq!(found, [(r#"."a b"[2].c"#.to_string(), 3)]);
    assert_eq!(JsonPath::parse(".").unwrap().select(&value).unwrap()[0].0, ".");
    assert!(JsonPath::parse(".a.").is_err() && JsonPath::parse(".a[x]").is_err() && JsonPath::parse(".[").is_err());
}

#[test]
fn jsonl_records_carry_line_numbers() {
    let path = data("notes.jsonl");
    let docs = JsonLoader::new(".note.text").unwrap().metadata("tag", ".tag").unwrap().load_jsonl(&path).unwrap();
    let got: Vec<(&str, &BTreeMap<String, String>)> = docs.iter().map(|d| (d.text.as_str(), &d.metadata)).collect();
    let first = with_source(&path, &[("line", "1"), ("seq_num", "1"), ("tag", "home")]);
    let second = with_source(&path, &[("line", "3"), ("seq_num", "2"), ("tag", "work")]);
    assert_eq!(got, [("Buy milk", &first), ("Call Ada", &second)]);
}

#[test]
fn malformed_jsonl_line_is_an_error_naming_the_line() {
    let path = data("bad.jsonl");
    let err = JsonLoader::new(".text").unwrap().load_jsonl(&path).unwrap_err();
    assert_eq!(err.to_string(), format!("{}: line 2, column 17: EOF while parsing an object", path.display()));
}

#[test]
fn pdf_gives_one_document_per_page() {
    let path = data("two_pages.pdf");
    let source = path.display().to_string();
    let docs = load_pdf(&path).unwrap();
    assert_eq!(
        docs,
        vec![
            Document {
                id: format!("{source}#0"),
                text: "Page one: retrieval starts here.\nSecond line of page one.".into(),
                metadata: with_source(&path, &[("page", "1"), ("total_pages", "2")]),
            },
            Document {
                id: format!("{source}#1"),
                text: "Page two ends the document.".into(),
                metadata: with_source(&path, &[("page", "2"), ("total_pages", "2")]),
            },
        ]
    );
}

#[test]
fn unusable_pdfs_are_typed_errors() {
    let err = load_pdf(&data("corrupt.pdf")).unwrap_err();
    assert!(matches!(err, RagError::Pdf { problem: PdfProblem::Corrupt(_), .. }), "{err:?}");
    let err = load_pdf(&data("no_text.pdf")).unwrap_err();
    assert!(matches!(err, RagError::Pdf { problem: PdfProblem::NoTextLayer, .. }), "{err:?}");
    assert!(matches!(pdf_pages(b"not a pdf at all"), Err(PdfProblem::Corrupt(_))));
}

/// A skip reason in a few words, for exact comparison (lopdf's own message varies).
fn reason(e: &RagError) -> String {
    match e {
        RagError::TooLarge { bytes, limit, .. } => format!("too large: {bytes} > {limit}"),
        RagError::Binary { offset, .. } => format!("binary at {offset}"),
        RagError::Unsupported { extension, .. } => format!("unsupported: {extension}"),
        RagError::Pdf { problem: PdfProblem::Corrupt(_), .. } => "corrupt pdf".into(),
        other => format!("unexpected: {other}"),
    }
}

#[test]
fn dir_walk_applies_globs_and_reports_each_skipped_file() {
    let root = data("dir");
    let json = JsonLoader::new(".text").unwrap().metadata("id", ".id").unwrap();
    let loader = DirLoader::new(&root).glob("**/*.{txt,md,html,pdf,jsonl,rtf}").glob("!**/drafts/**").max_bytes(2048).json(json);
    let report = loader.load().unwrap();

    let rel = |pairs: &[(&str, &str)], source: &str| {
        let mut m = meta(pairs);
        m.insert("source".into(), source.into());
        m
    };
    let got: Vec<(&str, &str, &BTreeMap<String, String>)> = report.documents.iter().map(|d| (d.id.as_str(), d.text.as_str(), &d.metadata)).collect();
    let want = [
        ("a.txt", "Plain text file.\n", rel(&[], "a.txt")),
        ("guide.md#0", "# Guide  \nIntro paragraph.", rel(&[("h1", "Guide")], "guide.md")),
        ("guide.md#1", "## Install  \nRun the installer.", rel(&[("h1", "Guide"), ("h2", "Install")], "guide.md")),
        ("records.jsonl#0", "First record.", rel(&[("id", "r1"), ("line", "1"), ("seq_num", "1")], "records.jsonl")),
        ("records.jsonl#1", "Second record.", rel(&[("id", "r2"), ("line", "3"), ("seq_num", "2")], "records.jsonl")),
        ("sub/page.html#0", "Welcome\n\nFish & chips.", rel(&[("h1", "Welcome"), ("title", "Sub page")], "sub/page.html")),
        ("sub/two.pdf#0", "Page one: retrieval starts here.\nSecond line of page one.", rel(&[("page", "1"), ("total_pages", "2")], "sub/two.pdf")),
        ("sub/two.pdf#1", "Page two ends the document.", rel(&[("page", "2"), ("total_pages", "2")], "sub/two.pdf")),
    ];
    assert_eq!(got, want.iter().map(|(id, text, m)| (*id, *text, m)).collect::<Vec<_>>());

    let skipped: Vec<(PathBuf, String)> = report.skipped.iter().map(|(p, e)| (p.clone(), reason(e))).collect();
    assert_eq!(
        skipped,
        [
            (root.join("big.txt"), "too large: 2251 > 2048".to_string()),
            (root.join("binary.txt"), "binary at 4".into()),
            (root.join("notes.rtf"), "unsupported: rtf".into()),
            (root.join("sub/broken.pdf"), "corrupt pdf".into()),
        ]
    );
    assert!(report.skipped[0].1.to_string().contains("big.txt: 2251 bytes is over the limit of 2048"));
}

#[test]
fn dir_walk_without_recursion_and_with_a_bad_glob() {
    let root = data("dir");
    let report = DirLoader::new(&root).recursive(false).glob("*.md").load().unwrap();
    assert_eq!(report.documents.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["guide.md#0", "guide.md#1"]);
    assert!(report.skipped.is_empty());

    let err = DirLoader::new(&root).glob("**/[").load().unwrap_err();
    assert!(matches!(&err, RagError::Config { field, .. } if field == "glob"), "{err:?}");
}

#[test]
fn load_dir_keeps_its_simple_behaviour() {
    let root = data("dir");
    let report = load_dir(&root, &["txt", "MD"], 2048);
    let got: Vec<(&str, &str, &str)> = report.documents.iter().map(|d| (d.id.as_str(), d.text.as_str(), d.metadata["source"].as_str())).collect();
    let source = |rel: &str| root.join(rel).display().to_string();
    let (a, wip, guide) = (source("a.txt"), source("drafts/wip.md"), source("guide.md"));
    assert_eq!(
        got,
        [
            ("a.txt", "Plain text file.\n", a.as_str()),
            ("drafts/wip.md", "# Draft\n\nNot ready.\n", wip.as_str()),
            ("guide.md", "# Guide\n\nIntro paragraph.\n\n## Install\n\nRun the installer.\n", guide.as_str()),
        ]
    );
    let skipped: Vec<(PathBuf, String)> = report.skipped.iter().map(|(p, e)| (p.clone(), reason(e))).collect();
    assert_eq!(skipped, [(root.join("big.txt"), "too large: 2251 > 2048".to_string()), (root.join("binary.txt"), "binary at 4".into())]);
}
