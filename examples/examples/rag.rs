//! Retrieval-augmented generation over a folder of documents (text, Markdown and HTML by
//! sections, JSON/JSONL, PDF pages; `--glob` filters) or a corpus file, one document per
//! line: split, embed (all-MiniLM-L6-v2), index (exact vectors + BM25), retrieve (dense, BM25
//! hybrid, MMR, or with the LLM multi-query, HyDE, RAG-fusion; `--rerank` for an LLM judge),
//! answer with SmolLM2 citing numbered sources; `--eval FILE` scores retrieval, and with
//! `--ragas N` the answers to its first N questions are judged by SmolLM2 (Ragas' metrics,
//! the judge constrained to each prompt's JSON Schema) with the count of malformed judgements.
//!
//! ```text
//! scripts/fetch-models.sh
//! cargo run --release --example rag -- --docs ~/.cache/llm-rs/lee_background.cor --lines \
//!     --question "How did the America's Cup sailor Sir Peter Blake die?"
//! cargo run --release --example rag -- --docs ~/.cache/llm-rs/lee_background.cor --lines \
//!     --eval examples/data/lee_questions.jsonl
//! cargo run --release --example rag -- --docs ~/.cache/llm-rs/lee_background.cor --lines \
//!     --eval examples/data/lee_questions.jsonl --ragas 8
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{bail, Context};
use burn::tensor::backend::Backend;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use llm_core::backend::BackendTask;
use llm_examples::run_on;
use llm_examples::ModelArgs;
use llm_rag::load::{load_lines, DirLoader, Document};
use llm_rag::embed::{default_model_dir, Embedder, SentenceTransformer};
use llm_rag::eval::{retrieval_metrics, RagasJudge, RagasSample};
use llm_core::generate::GenerationConfig;
use llm_rag::answer::pipeline::answer;
use llm_rag::retrieve::query::{hyde_passage, mmr, multi_query, rag_fusion, ChatLlm, LlmReranker, Reranker};
use llm_rag::retrieve::{hybrid_search, Bm25};
use llm_rag::split::RecursiveSplitter;
use llm_rag::store::chroma::{ChromaConfig, ChromaStore};
use llm_rag::store::{FlatStore, Hit, Record, VectorStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Retriever {
    /// Embedding similarity.
    Dense,
    /// Keywords.
    Bm25,
    /// Both, fused by reciprocal rank.
    Hybrid,
    /// Dense candidates (4k) re-picked by maximal marginal relevance (λ 0.5).
    Mmr,
    /// The LLM rewrites the question 3 ways; the union of dense results.
    MultiQuery,
    /// The LLM drafts an answer; its embedding searches.
    Hyde,
    /// Multi-query with the per-query rankings fused by reciprocal rank.
    Fusion,
}

/// Answer questions from documents, with citations.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    model: ModelArgs,
    /// A directory of .txt, .md, .html, .json, .jsonl and .pdf files (walked recursively), or
    /// with --lines a file of one document per line.
    #[arg(long)]
    docs: PathBuf,
    /// Globs on paths under --docs: `**/*.md` includes, `!**/drafts/**` excludes (repeatable).
    #[arg(long = "glob")]
    globs: Vec<String>,
    /// Files larger than this many bytes are skipped (and listed).
    #[arg(long, default_value_t = 16 << 20)]
    max_bytes: u64,
    /// `--docs` is a corpus file with one document per line (ids `<stem>-<line index>`; the Lee
    /// corpus: `lee-N` as in examples/data/lee_questions.jsonl).
    #[arg(long)]
    lines: bool,
    /// The question.
    #[arg(long)]
    question: Option<String>,
    /// Labelled questions (JSONL `{"question", "sources": [doc ids]}`): prints retrieval metrics.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// With --eval: answer its first N questions and judge them (Ragas' metrics, SmolLM2 as
    /// the constrained judge); prints the means and the malformed judgements.
    #[arg(long)]
    ragas: Option<usize>,
    /// dense, bm25 or hybrid.
    #[arg(long, value_enum, default_value = "hybrid")]
    retriever: Retriever,
    /// Chunks given to the model.
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Chunk size in characters.
    #[arg(long, default_value_t = 1000)]
    chunk_size: usize,
    /// Chunk overlap in characters.
    #[arg(long, default_value_t = 100)]
    chunk_overlap: usize,
    /// Context budget in tokens of the generating model.
    #[arg(long, default_value_t = 1200)]
    budget: usize,
    /// Embedding model directory (default: the cached all-MiniLM-L6-v2).
    #[arg(long)]
    embedder: Option<PathBuf>,
    /// Re-rank the retrieved chunks with the LLM as judge (0-10 relevance).
    #[arg(long)]
    rerank: bool,
    /// Keep the vectors on a Chroma server (`chroma run`) at this URL instead of in memory;
    /// the collection is rebuilt from --docs on each run.
    #[arg(long)]
    chroma: Option<String>,
    /// The Chroma collection.
    #[arg(long, default_value = "llm-rs-rag-example")]
    collection: String,
}

struct Task(Cli);

impl BackendTask for Task {
    type Output = anyhow::Result<()>;
    fn run<B: Backend>(self, device: B::Device) -> anyhow::Result<()> {
        rag::<B>(self.0, device)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.question.is_none() && cli.eval.is_none() {
        bail!("give --question, --eval, or both");
    }
    run_on(cli.model.backend, cli.model.device, Task(cli.clone()))?
}

struct Index {
    store: Box<dyn VectorStore>,
    /// Every chunk with its vector, by insertion (BM25 hits and MMR read them here).
    records: Vec<Record>,
    bm25: Bm25,
    /// chunk id -> document id
    doc_of: HashMap<String, String>,
}

fn rag<B: Backend>(cli: Cli, device: B::Device) -> anyhow::Result<()> {
    let docs = load_docs(&cli)?;
    let embedder = SentenceTransformer::<B>::load(cli.embedder.clone().unwrap_or_else(default_model_dir), &device)
        .context("loading the embedding model (run scripts/fetch-models.sh)")?;
    let index = build_index(&cli, &docs, &embedder)?;
    let needs_llm = cli.question.is_some()
        || cli.ragas.is_some()
        || cli.rerank
        || matches!(cli.retriever, Retriever::MultiQuery | Retriever::Hyde | Retriever::Fusion);
    let bundle = if needs_llm { Some(cli.model.load_bundle::<B>(&device)?) } else { None };
    let llm = bundle.as_ref().map(|b| {
        let mut generation = b.generation.clone();
        generation.do_sample = false;
        generation.max_new_tokens = 120;
        ChatLlm::new(&b.model, &b.tokenizer, generation)
    });
    let by_id: BTreeMap<&str, &Record> = index.records.iter().map(|r| (r.id.as_str(), r)).collect();
    let hit = |id: &str, score: f64| {
        let r = by_id[id];
        Hit { id: r.id.clone(), score: score as f32, text: r.text.clone(), metadata: r.metadata.clone() }
    };
    let dense = |q: &str, k: usize| -> anyhow::Result<Vec<Hit>> { Ok(index.store.search(&embedder.embed(&[q])?.remove(0), k, None)?) };
    let search = |q: &str, retriever: Retriever, k: usize| -> anyhow::Result<Vec<Hit>> {
        let llm = || llm.as_ref().context("this retriever needs the LLM");
        Ok(match retriever {
            Retriever::Dense => dense(q, k)?,
            Retriever::Bm25 => index.bm25.search(q, k).into_iter().map(|(id, s)| hit(&id, s)).collect(),
            Retriever::Hybrid => {
                let v = embedder.embed(&[q])?.remove(0);
                hybrid_search(index.store.as_ref(), &index.bm25, q, &v, k, 4 * k.max(5), None)?.into_iter().map(|(id, s)| hit(&id, s)).collect()
            }
            Retriever::Mmr => {
                let v = embedder.embed(&[q])?.remove(0);
                let candidates = index.store.search(&v, 4 * k, None)?;
                let vectors: Vec<Vec<f32>> = candidates.iter().map(|h| by_id[h.id.as_str()].vector.clone()).collect();
                mmr(&v, &vectors, k, 0.5).into_iter().map(|i| candidates[i].clone()).collect()
            }
            Retriever::Hyde => dense(&hyde_passage(llm()?, q)?, k)?,
            Retriever::MultiQuery | Retriever::Fusion => {
                let queries = multi_query(llm()?, q, 3)?;
                let lists: Vec<Vec<Hit>> = queries.iter().map(|x| dense(x, k)).collect::<anyhow::Result<_>>()?;
                if retriever == Retriever::Fusion {
                    let ids: Vec<Vec<String>> = lists.iter().map(|l| l.iter().map(|h| h.id.clone()).collect()).collect();
                    rag_fusion(&ids).into_iter().take(k).map(|(id, s)| hit(&id, s)).collect()
                } else {
                    let mut seen = HashSet::new();
                    lists.into_iter().flatten().filter(|h| seen.insert(h.id.clone())).take(k).collect()
                }
            }
        })
    };
    if let Some(path) = &cli.eval {
        evaluate(path, &index, &search)?;
        if let (Some(n), Some(llm)) = (cli.ragas, &llm) {
            let questions: Vec<String> = std::fs::read_to_string(path)?
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["question"].as_str().map(String::from))
                .take(n)
                .collect();
            // Judgements are JSON of up to ~1,000 tokens: a budget that fits them (a reply cut
            // short does not parse).
            let judge_llm = ChatLlm::new(llm.model, llm.tokenizer, GenerationConfig { max_new_tokens: 2048, ..llm.generation.clone() });
            let judge = RagasJudge::new(&judge_llm, &embedder);
            let mut samples = vec![];
            for q in &questions {
                let hits = search(q, cli.retriever, cli.k)?;
                let a = answer(llm.model, llm.tokenizer, GenerationConfig { max_new_tokens: 200, ..llm.generation.clone() }, q, &hits, cli.budget)?;
                samples.push(RagasSample { question: q.clone(), answer: a.text, contexts: hits.iter().map(|h| h.text.clone()).collect(), reference: String::new() });
            }
            let report = judge.evaluate(&samples)?;
            let unparsed = |pick: fn(&llm_rag::eval::RagasScores) -> llm_rag::eval::Score| report.samples.iter().map(|s| pick(s).unparsed).sum::<usize>();
            eprintln!(
                "malformed per metric: context precision {}, context recall {}, faithfulness {}, answer relevancy {}",
                unparsed(|s| s.context_precision), unparsed(|s| s.context_recall), unparsed(|s| s.faithfulness), unparsed(|s| s.answer_relevancy)
            );
            let m = report.mean;
            println!(
                "ragas over {} answers: context precision {:.3}, faithfulness {:.3}, answer relevancy {:.3}; malformed judgements: {}",
                samples.len(), m.context_precision, m.faithfulness, m.answer_relevancy, report.unparsed
            );
        }
    }
    if let (Some(q), Some(llm)) = (&cli.question, &llm) {
        let mut hits = search(q, cli.retriever, cli.k)?;
        if cli.rerank {
            let judge = LlmReranker { llm, malformed: Default::default() };
            hits = judge.rerank(q, hits)?;
            if judge.malformed.get() > 0 {
                eprintln!("re-ranker: {} judgements without a grade (scored 0)", judge.malformed.get());
            }
        }
        let a = answer(llm.model, llm.tokenizer, GenerationConfig { max_new_tokens: 200, ..llm.generation.clone() }, q, &hits, cli.budget)?;
        println!("{}\n", a.text);
        for (i, s) in a.sources.iter().enumerate() {
            let mark = if a.cited.contains(&s.id) { "cited" } else { "     " };
            let preview: String = s.text.chars().take(90).map(|c| if c == '\n' { ' ' } else { c }).collect();
            println!("[{}] {mark} {} ({:.3}): {preview}...", i + 1, s.id, s.score);
        }
    }
    Ok(())
}

fn load_docs(cli: &Cli) -> anyhow::Result<Vec<Document>> {
    if cli.lines {
        let stem = cli.docs.file_stem().and_then(|s| s.to_str()).unwrap_or("doc");
        let prefix = stem.split('_').next().unwrap_or(stem);
        return load_lines(&cli.docs, prefix).with_context(|| format!("reading {}", cli.docs.display()));
    }
    let loader = cli.globs.iter().fold(DirLoader::new(&cli.docs).max_bytes(cli.max_bytes), |l, g| l.glob(g));
    let report = loader.load()?;
    // Each error names its file.
    for (_, why) in &report.skipped {
        eprintln!("skipped {why}");
    }
    if report.documents.is_empty() {
        bail!("no documents under {} (text, Markdown, HTML, JSON/JSONL or PDF)", cli.docs.display());
    }
    Ok(report.documents)
}

fn build_index<B: Backend>(cli: &Cli, docs: &[Document], embedder: &SentenceTransformer<B>) -> anyhow::Result<Index> {
    let splitter = RecursiveSplitter::new(cli.chunk_size, cli.chunk_overlap)?;
    let mut chunks: Vec<(String, String, BTreeMap<String, String>)> = vec![];
    let mut doc_of = HashMap::new();
    for d in docs {
        for (n, c) in splitter.split_with_offsets(&d.text).into_iter().enumerate() {
            let id = format!("{}#{n}", d.id);
            let mut meta = d.metadata.clone();
            meta.insert("document".into(), d.id.clone());
            meta.insert("start_byte".into(), c.start.to_string());
            doc_of.insert(id.clone(), d.id.clone());
            chunks.push((id, c.text, meta));
        }
    }
    let bar = ProgressBar::new(chunks.len() as u64);
    bar.set_style(ProgressStyle::with_template("embedding {pos}/{len} chunks [{bar:30}] {elapsed_precise}").expect("valid template"));
    let mut store: Box<dyn VectorStore> = match &cli.chroma {
        Some(url) => {
            let config = ChromaConfig::new(url, &cli.collection);
            // A clean collection: chunks of an earlier run would be hits without records here.
            ChromaStore::connect(&config)?.drop_collection()?;
            eprintln!("vectors go to Chroma collection {} at {url}", cli.collection);
            Box::new(ChromaStore::connect(&config)?)
        }
        None => Box::new(FlatStore::new()),
    };
    let mut records = Vec::with_capacity(chunks.len());
    for batch in chunks.chunks(32) {
        let texts: Vec<&str> = batch.iter().map(|c| c.1.as_str()).collect();
        let vectors = embedder.embed(&texts)?;
        let batch: Vec<Record> = batch.iter().zip(vectors).map(|((id, text, meta), vector)| Record { id: id.clone(), text: text.clone(), metadata: meta.clone(), vector }).collect();
        store.upsert(batch.clone())?;
        records.extend(batch);
        bar.inc(texts.len() as u64);
    }
    bar.finish();
    let bm25 = Bm25::new(chunks.iter().map(|(id, text, _)| (id.as_str(), text.as_str())));
    eprintln!("indexed {} documents as {} chunks", docs.len(), chunks.len());
    Ok(Index { store, records, doc_of, bm25 })
}

/// Retrieval for one query: text, retriever, how many.
type Search<'a> = dyn Fn(&str, Retriever, usize) -> anyhow::Result<Vec<Hit>> + 'a;

fn evaluate(path: &PathBuf, index: &Index, search: &Search<'_>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut questions = vec![];
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("{}:{}", path.display(), i + 1))?;
        let q = v["question"].as_str().with_context(|| format!("{}:{}: no question", path.display(), i + 1))?.to_string();
        let rel: HashSet<String> = v["sources"].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect();
        questions.push((q, rel));
    }
    if questions.is_empty() {
        bail!("{}: no questions", path.display());
    }
    let k = 5;
    println!("| retriever | hit-rate@{k} | MRR | nDCG@{k} |\n| --- | --- | --- | --- |");
    for r in [Retriever::Dense, Retriever::Bm25, Retriever::Hybrid, Retriever::Mmr] {
        let mut ranked = vec![];
        for (q, _) in &questions {
            // Chunks to documents, first occurrence wins.
            let mut seen = HashSet::new();
            let docs: Vec<String> = search(q, r, 20)?.into_iter().map(|h| index.doc_of[&h.id].clone()).filter(|d| seen.insert(d.clone())).collect();
            ranked.push(docs);
        }
        let relevant: Vec<HashSet<String>> = questions.iter().map(|(_, r)| r.clone()).collect();
        let m = retrieval_metrics(&ranked, &relevant, k);
        println!("| {r:?} | {:.3} | {:.3} | {:.3} |", m.hit_rate, m.mrr, m.ndcg);
    }
    println!("({} questions)", questions.len());
    Ok(())
}
