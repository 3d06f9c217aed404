//! The recursive splitter reproduces LangChain's `RecursiveCharacterTextSplitter` chunks and
//! start offsets (expected values from LangChain 1.1.3: `scripts/langchain_split_cases.py`).

use llm_rag::split::RecursiveSplitter;

#[test]
fn recursive_splitter_matches_langchain() {
    let data: serde_json::Value =
        serde_json::from_str(include_str!("../data/langchain_recursive.json")).expect("test data is JSON");
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 12);
    for case in cases {
        let text = data["texts"][case["text"].as_str().unwrap()].as_str().unwrap();
        let (size, overlap) = (case["chunk_size"].as_u64().unwrap() as usize, case["chunk_overlap"].as_u64().unwrap() as usize);
        let splitter = RecursiveSplitter::new(size, overlap).unwrap();
        let got = splitter.split_with_offsets(text);
        let want: Vec<&str> = case["chunks"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        let what = format!("{} size {size} overlap {overlap}", case["text"]);
        assert_eq!(got.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(), want, "{what}");
        let starts: Vec<usize> = case["start_byte"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        assert_eq!(got.iter().map(|c| c.start).collect::<Vec<_>>(), starts, "{what}: offsets");
        for c in &got {
            assert_eq!(&text[c.start..c.start + c.text.len()], c.text, "{what}: offset points at the chunk");
        }
    }
}

#[test]
fn overlap_not_below_chunk_size_is_an_error() {
    let err = RecursiveSplitter::new(10, 10).err().expect("rejected").to_string();
    assert!(err.contains("chunk_overlap"), "{err}");
}

#[test]
fn markdown_header_splitter_matches_langchain() {
    use llm_rag::split::MarkdownHeaderSplitter;
    let data: serde_json::Value =
        serde_json::from_str(include_str!("../data/langchain_markdown.json")).expect("test data is JSON");
    let headers: Vec<(String, String)> = data["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h[0].as_str().unwrap().to_string(), h[1].as_str().unwrap().to_string()))
        .collect();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    for case in cases {
        let text = data["texts"][case["text"].as_str().unwrap()].as_str().unwrap();
        let strip = case["strip_headers"].as_bool().unwrap();
        let got = MarkdownHeaderSplitter::new(&headers, strip).split_text(text);
        let want = case["chunks"].as_array().unwrap();
        let what = format!("{} strip {strip}", case["text"]);
        assert_eq!(got.len(), want.len(), "{what}: {got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.content, w["content"].as_str().unwrap(), "{what}");
            let meta: std::collections::BTreeMap<String, String> =
                w["metadata"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect();
            assert_eq!(g.metadata, meta, "{what}");
        }
    }
}
