//! Retrieval with a language model in the loop, and diversity: MMR, multi-query, HyDE,
//! RAG-fusion, and an LLM-judged re-ranker. Prompts follow LangChain's.

use burn::tensor::backend::Backend;
use llm_core::chat::Message;
use llm_core::generate::{Constraint, ConstraintEngine, GenerationConfig, Generator};
use llm_core::{CausalLm, Tokenizer};

use crate::embed::cosine;
use crate::error::Result;
use crate::retrieve::reciprocal_rank_fusion;
use crate::store::Hit;

/// Text in, text out: what query transformation and judging need from a model.
pub trait Llm {
    /// The model's reply to one user message.
    fn complete(&self, prompt: &str) -> Result<String>;

    /// The reply, constrained to match `constraint` where the model can be constrained (a
    /// local model; the default, for closures and remote APIs, is [`Self::complete`], whose
    /// reply the caller reads leniently and asks again for when it does not parse).
    fn complete_constrained(&self, prompt: &str, constraint: &Constraint) -> Result<String> {
        let _ = constraint;
        self.complete(prompt)
    }
}

/// Any closure is an [`Llm`] (tests, remote APIs).
pub struct FnLlm<F>(pub F);

impl<F: Fn(&str) -> Result<String>> Llm for FnLlm<F> {
    fn complete(&self, prompt: &str) -> Result<String> {
        (self.0)(prompt)
    }
}

/// An llm-core chat model: the prompt as one user turn through the chat template; constrained
/// replies (JSON verdicts, grades) follow their schema or pattern by construction.
pub struct ChatLlm<'a, B: Backend> {
    /// The model.
    pub model: &'a CausalLm<B>,
    /// Its tokenizer (with the chat template).
    pub tokenizer: &'a Tokenizer,
    /// Decoding settings.
    pub generation: GenerationConfig,
    /// The tokenizer's vocabulary compiled for constraints, built on first use.
    engine: std::sync::OnceLock<ConstraintEngine>,
}

impl<'a, B: Backend> ChatLlm<'a, B> {
    /// A chat model with its decoding settings.
    pub fn new(model: &'a CausalLm<B>, tokenizer: &'a Tokenizer, generation: GenerationConfig) -> Self {
        Self { model, tokenizer, generation, engine: Default::default() }
    }

    fn reply(&self, prompt: &str, constraint: Option<&Constraint>) -> Result<String> {
        let text = self.tokenizer.apply_chat_template(&[Message::new("user", prompt)], true)?;
        let ids = self.tokenizer.encode(&text, false)?.ids;
        let mut generator = Generator::new(self.model, self.generation.clone())?.with_tokenizer(self.tokenizer);
        if let Some(c) = constraint {
            let engine = match self.engine.get() {
                Some(e) => e,
                None => {
                    let e = ConstraintEngine::new(self.tokenizer, self.model.config.vocab_size, &self.generation.eos_token_id)?;
                    self.engine.get_or_init(|| e)
                }
            };
            generator = generator.with_constraint(engine.compile(c)?);
        }
        let out = generator.generate(&[ids])?;
        Ok(self.tokenizer.decode(&out.sequences[0], true)?.trim().to_string())
    }
}

impl<B: Backend> Llm for ChatLlm<'_, B> {
    fn complete(&self, prompt: &str) -> Result<String> {
        self.reply(prompt, None)
    }

    fn complete_constrained(&self, prompt: &str, constraint: &Constraint) -> Result<String> {
        self.reply(prompt, Some(constraint))
    }
}

/// Maximal marginal relevance (LangChain's `maximal_marginal_relevance`): picks `k` of the
/// `candidates` one at a time, each maximising `λ·sim(query) − (1−λ)·max sim(selected)`,
/// starting from the most similar. Returns candidate indices in pick order.
pub fn mmr(query: &[f32], candidates: &[Vec<f32>], k: usize, lambda: f32) -> Vec<usize> {
    if candidates.is_empty() || k == 0 {
        return vec![];
    }
    let to_query: Vec<f32> = candidates.iter().map(|c| cosine(query, c)).collect();
    let first = (0..candidates.len()).fold(0, |best, i| if to_query[i] > to_query[best] { i } else { best });
    let mut picked = vec![first];
    while picked.len() < k.min(candidates.len()) {
        let mut best = (f32::NEG_INFINITY, usize::MAX);
        for (i, &q) in to_query.iter().enumerate() {
            if picked.contains(&i) {
                continue;
            }
            let redundant = picked.iter().map(|&j| cosine(&candidates[i], &candidates[j])).fold(f32::NEG_INFINITY, f32::max);
            let score = lambda * q - (1.0 - lambda) * redundant;
            if score > best.0 {
                best = (score, i);
            }
        }
        picked.push(best.1);
    }
    picked
}

/// LangChain's `MultiQueryRetriever` prompt.
pub fn multi_query_prompt(question: &str, n: usize) -> String {
    format!(
        "You are an AI language model assistant. Your task is to generate {n} different versions of the given user \
question to retrieve relevant documents from a vector database. By generating multiple perspectives on the user \
question, your goal is to help the user overcome some of the limitations of the distance-based similarity search. \
Provide these alternative questions separated by newlines.\nOriginal question: {question}"
    )
}

/// The question and up to `n` rewrites from `llm` (one per non-empty line, list markers
/// stripped, duplicates dropped).
pub fn multi_query(llm: &dyn Llm, question: &str, n: usize) -> Result<Vec<String>> {
    let reply = llm.complete(&multi_query_prompt(question, n))?;
    let mut out = vec![question.to_string()];
    for line in reply.lines() {
        let q = line.trim().trim_start_matches(|c: char| c.is_ascii_digit() || matches!(c, '.' | ')' | '-' | '*')).trim();
        if !q.is_empty() && !out.iter().any(|x| x.eq_ignore_ascii_case(q)) && out.len() <= n {
            out.push(q.to_string());
        }
    }
    Ok(out)
}

/// HyDE (Gao et al. 2022): a passage the model drafts to answer the question, to embed in the
/// question's place (LangChain's `web_search` prompt).
pub fn hyde_passage(llm: &dyn Llm, question: &str) -> Result<String> {
    llm.complete(&format!("Please write a passage to answer the question\nQuestion: {question}\nPassage:"))
}

/// RAG-fusion: each query's ranked ids fused by reciprocal rank (`k = 60`).
pub fn rag_fusion(ranked_per_query: &[Vec<String>]) -> Vec<(String, f64)> {
    reciprocal_rank_fusion(ranked_per_query, 60.0)
}

/// Re-orders hits for a query.
pub trait Reranker {
    /// Best first.
    fn rerank(&self, query: &str, hits: Vec<Hit>) -> Result<Vec<Hit>>;
}

/// Asks an [`Llm`] to grade each passage 0-10 and sorts by the grade (ties keep the retrieval
/// order). The reply is constrained to an integer 0-10 where the model can be constrained;
/// otherwise a reply without a grade is asked once more, then counted in `malformed` and
/// graded 0: never a NaN.
pub struct LlmReranker<'a> {
    /// The judge.
    pub llm: &'a dyn Llm,
    /// Judgements that never parsed (read after `rerank`).
    pub malformed: std::cell::Cell<usize>,
}

/// The first integer 0..=10 in `reply`.
pub fn parse_grade(reply: &str) -> Option<u32> {
    reply
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .find_map(|t| t.parse::<u32>().ok().filter(|g| *g <= 10))
}

impl Reranker for LlmReranker<'_> {
    fn rerank(&self, query: &str, hits: Vec<Hit>) -> Result<Vec<Hit>> {
        let mut graded = Vec::with_capacity(hits.len());
        for (i, h) in hits.into_iter().enumerate() {
            let prompt = format!(
                "On a scale of 0 to 10, how relevant is the passage to the question? Answer with the number only.\n\nQuestion: {query}\n\nPassage: {}",
                h.text
            );
            let grade_only = Constraint::Regex("10|[0-9]".into());
            let mut grade = parse_grade(&self.llm.complete_constrained(&prompt, &grade_only)?);
            if grade.is_none() {
                grade = parse_grade(&self.llm.complete_constrained(&prompt, &grade_only)?);
            }
            if grade.is_none() {
                self.malformed.set(self.malformed.get() + 1);
            }
            graded.push((grade.unwrap_or(0), i, h));
        }
        graded.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(graded.into_iter().map(|(g, _, mut h)| {
            h.score = g as f32;
            h
        }).collect())
    }
}
