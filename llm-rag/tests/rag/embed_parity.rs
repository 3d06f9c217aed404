//! all-MiniLM-L6-v2 against sentence-transformers (fixture f_embed): token ids, last hidden
//! state, pooled normalized embeddings; Spearman correlation with human judgements on the 50
//! Lee documents.


use llm_rag::embed::{cosine, default_model_dir, Embedder, SentenceTransformer};
use llm_testkit::{fixture, read_json, read_tensor};

type Cpu = burn::backend::Flex;

fn model() -> SentenceTransformer<Cpu> {
    model_on::<Cpu>(&Default::default())
}

fn model_on<B: burn::tensor::backend::Backend>(device: &B::Device) -> SentenceTransformer<B> {
    let dir = default_model_dir();
    assert!(dir.join("model.safetensors").exists(), "{} is missing: run scripts/fetch-models.sh", dir.display());
    SentenceTransformer::load(dir, device).unwrap()
}

fn read(name: &str) -> (Vec<usize>, Vec<f64>) {
    read_tensor(&fixture("f_embed/embed.safetensors"), name)
}

fn max_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).abs()).fold(0.0, f64::max)
}

fn sentences() -> Vec<String> {
    let g = read_json(&fixture("f_embed/golden.json"));
    g["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

llm_testkit::backend_test! {
    fn minilm_matches_sentence_transformers<B>(device, kind) {
        let m = model_on::<B>(device);
        let s = sentences();
        let texts: Vec<&str> = s.iter().map(String::as_str).collect();
        let llm_rag::embed::sentence::TokenBatch { input_ids: ids, token_type_ids: types, attention_mask: mask } = m.tokenize(&texts).unwrap();
        let (shape, want_ids) = read("input_ids");
        assert_eq!(shape, vec![5, 14]);
        assert_eq!(ids.concat().iter().map(|&x| x as f64).collect::<Vec<_>>(), want_ids);
        assert_eq!(types.concat().iter().map(|&x| x as f64).collect::<Vec<_>>(), read("token_type_ids").1);
        assert_eq!(mask.concat().iter().map(|&x| x as u8 as f64).collect::<Vec<_>>(), read("attention_mask").1);

        let (hidden, _) = m.hidden_states(&texts).unwrap();
        let first: Vec<f32> = hidden.narrow(0, 0, 1).into_data().to_vec().unwrap();
        let d = max_diff(&first, &read("last_hidden_state_sent0").1);
        assert!(d < 1e-4, "last hidden state: max |diff| {d}");

        let got: Vec<f32> = m.embed(&texts).unwrap().concat();
        let d = max_diff(&got, &read("embeddings").1);
        assert!(d < 1e-5, "embeddings: max |diff| {d}");
        eprintln!("embeddings max |diff| {d:e}");
    }
}

/// Average ranks (ties share the mean rank), as scipy's `spearmanr`.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn lee_documents_correlate_with_human_judgement_as_in_sentence_transformers() {
    let cache = llm_core::weights::cache_dir();
    let raw = std::fs::read(cache.join("lee.cor")).expect("lee.cor: run scripts/fetch-models.sh");
    // Latin-1: every byte is its own code point.
    let text: String = raw.iter().map(|&b| b as char).collect();
    let docs: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(docs.len(), 50);
    let human: Vec<Vec<f64>> = std::fs::read_to_string(cache.join("similarities0-1.txt"))
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
        .collect();
    let m = model();
    let emb = m.embed(&docs).unwrap();
    let d = max_diff(&emb.concat(), &read("lee50.embeddings").1);
    assert!(d < 1e-4, "Lee embeddings vs sentence-transformers: {d}");
    let (mut ours, mut theirs) = (vec![], vec![]);
    for i in 0..50 {
        for j in i + 1..50 {
            ours.push(cosine(&emb[i], &emb[j]) as f64);
            theirs.push(human[i][j]);
        }
    }
    let spearman = pearson(&ranks(&ours), &ranks(&theirs));
    eprintln!("Spearman {spearman:.4}, Pearson {:.4}", pearson(&ours, &theirs));
    assert_eq!(format!("{spearman:.3}"), "0.508");
}
