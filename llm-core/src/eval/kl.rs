//! KL divergence and top-token agreement between a model and a reference model on the same
//! tokens, as llama.cpp's `llama-perplexity --kl-divergence` reports them: the measure
//! quantization, merging and abliteration need ("how far did the distribution move?").

use burn::tensor::{activation::log_softmax, backend::Backend, Int, Tensor, TensorData};
use serde::Serialize;

use crate::error::{LlmError, Result};
use crate::model::CausalLm;

/// Divergence of a model from a reference over scored token positions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KlReport {
    /// Positions scored.
    pub tokens: usize,
    /// Mean of `KL(P_ref || P_model)` (nats) per position.
    pub mean_kl: f64,
    /// Standard error of the mean KL.
    pub kl_stderr: f64,
    /// Largest per-position KL.
    pub max_kl: f64,
    /// Median per-position KL.
    pub median_kl: f64,
    /// 99th percentile of per-position KL.
    pub p99_kl: f64,
    /// 99.9th percentile of per-position KL.
    pub p999_kl: f64,
    /// Fraction of positions where both models' most likely token is the same ("Same top p").
    pub same_top: f64,
    /// Perplexity of the model on the scored tokens.
    pub perplexity: f64,
    /// Perplexity of the reference on the scored tokens.
    pub reference_perplexity: f64,
    /// Mean of `p_model(next) - p_ref(next)` for the actual next token.
    pub mean_delta_p: f64,
    /// Root mean square of that difference.
    pub rms_delta_p: f64,
}

/// Per-position statistics accumulated before the report.
#[derive(Debug, Default)]
struct Acc {
    kl: Vec<f64>,
    same_top: usize,
    nll: f64,
    ref_nll: f64,
    delta_p: Vec<f64>,
}

impl Acc {
    /// Adds positions: `logp`/`ref_logp` `[n * vocab]` log-probabilities, `targets` the next tokens.
    fn add(&mut self, logp: &[f32], ref_logp: &[f32], targets: &[u32], vocab: usize) {
        for ((row, ref_row), &t) in logp.chunks_exact(vocab).zip(ref_logp.chunks_exact(vocab)).zip(targets) {
            let mut kl = 0.0f64;
            for (&q, &p) in row.iter().zip(ref_row) {
                let pr = (p as f64).exp();
                if pr > 0.0 {
                    kl += pr * (p as f64 - q as f64);
                }
            }
            // Rounding can leave a tiny negative sum when the two are equal.
            self.kl.push(kl.max(0.0));
            self.same_top += usize::from(crate::generate::argmax(row) == crate::generate::argmax(ref_row));
            self.nll -= row[t as usize] as f64;
            self.ref_nll -= ref_row[t as usize] as f64;
            self.delta_p.push((row[t as usize] as f64).exp() - (ref_row[t as usize] as f64).exp());
        }
    }

    fn report(mut self) -> KlReport {
        let n = self.kl.len().max(1) as f64;
        let mean = self.kl.iter().sum::<f64>() / n;
        let var = self.kl.iter().map(|k| (k - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        self.kl.sort_by(f64::total_cmp);
        let pct = |p: f64| self.kl.get(((self.kl.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or(0.0);
        KlReport {
            tokens: self.kl.len(),
            mean_kl: mean,
            kl_stderr: (var / n).sqrt(),
            max_kl: self.kl.last().copied().unwrap_or(0.0),
            median_kl: pct(0.5),
            p99_kl: pct(0.99),
            p999_kl: pct(0.999),
            same_top: self.same_top as f64 / n,
            perplexity: (self.nll / n).exp(),
            reference_perplexity: (self.ref_nll / n).exp(),
            mean_delta_p: self.delta_p.iter().sum::<f64>() / n,
            rms_delta_p: (self.delta_p.iter().map(|d| d * d).sum::<f64>() / n).sqrt(),
        }
    }
}

/// Log-probabilities `[seq * vocab]` of each next token after each position of `ids`.
fn log_probs<B: Backend>(model: &CausalLm<B>, ids: &[u32]) -> Vec<f32> {
    let device = model.device();
    let data = TensorData::new(ids.iter().map(|&i| i as i64).collect(), [1, ids.len()]);
    let logits = model.forward(Tensor::<B, 2, Int>::from_data(data, &device));
    log_softmax(logits, 2).into_data().iter::<f32>().collect()
}

fn check_vocab<B: Backend, R: Backend>(model: &CausalLm<B>, reference: &CausalLm<R>) -> Result<usize> {
    let (a, b) = (model.config.vocab_size, reference.config.vocab_size);
    if a != b {
        return Err(LlmError::Shape { what: "vocabularies of the model and the reference".into(), expected: format!("{b} (the reference's)"), got: vec![a] });
    }
    Ok(a)
}

/// llama.cpp's recipe: `ids` cut into consecutive chunks of `context` tokens (a shorter tail
/// is dropped), each chunk run through both models, and the positions of its second half
/// scored (they all have at least `context / 2` tokens of context).
pub fn kl_divergence<B: Backend, R: Backend>(model: &CausalLm<B>, reference: &CausalLm<R>, ids: &[u32], context: usize) -> Result<KlReport> {
    let vocab = check_vocab(model, reference)?;
    if context < 4 || ids.len() < context {
        return Err(LlmError::Shape { what: "KL divergence tokens".into(), expected: format!("at least one chunk of context {context} >= 4"), got: vec![ids.len()] });
    }
    let mut acc = Acc::default();
    for chunk in ids.chunks_exact(context) {
        let (logp, ref_logp) = (log_probs(model, chunk), log_probs(reference, chunk));
        let first = context / 2;
        // Position j predicts token j + 1: positions first..context-1.
        let span = first * vocab..(context - 1) * vocab;
        acc.add(&logp[span.clone()], &ref_logp[span], &chunk[first + 1..], vocab);
    }
    Ok(acc.report())
}

/// Every next-token position of each sequence (each at least 2 tokens), for short texts such
/// as benchmark prompts.
pub fn kl_on_sequences<B: Backend, R: Backend>(model: &CausalLm<B>, reference: &CausalLm<R>, sequences: &[Vec<u32>]) -> Result<KlReport> {
    let vocab = check_vocab(model, reference)?;
    let mut acc = Acc::default();
    for s in sequences.iter().filter(|s| s.len() >= 2) {
        let (logp, ref_logp) = (log_probs(model, s), log_probs(reference, s));
        let span = 0..(s.len() - 1) * vocab;
        acc.add(&logp[span.clone()], &ref_logp[span], &s[1..], vocab);
    }
    if acc.kl.is_empty() {
        return Err(LlmError::Shape { what: "KL divergence sequences".into(), expected: "at least one of 2 or more tokens".into(), got: vec![sequences.len()] });
    }
    Ok(acc.report())
}

impl std::fmt::Display for KlReport {
    /// The summary llama.cpp prints, in its order and wording.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "tokens scored:     {}", self.tokens)?;
        writeln!(f, "Mean PPL(Q):       {:.6}", self.perplexity)?;
        writeln!(f, "Mean PPL(base):    {:.6}", self.reference_perplexity)?;
        writeln!(f, "Mean ln(PPL(Q)/PPL(base)): {:.6}", (self.perplexity / self.reference_perplexity).ln())?;
        writeln!(f, "Mean    KLD:       {:.6} ± {:.6}", self.mean_kl, self.kl_stderr)?;
        writeln!(f, "Maximum KLD:       {:.6}", self.max_kl)?;
        writeln!(f, "99.9%   KLD:       {:.6}", self.p999_kl)?;
        writeln!(f, "99.0%   KLD:       {:.6}", self.p99_kl)?;
        writeln!(f, "Median  KLD:       {:.6}", self.median_kl)?;
        writeln!(f, "Mean    Δp:        {:.3} %", 100.0 * self.mean_delta_p)?;
        writeln!(f, "RMS Δp:            {:.3} %", 100.0 * self.rms_delta_p)?;
        write!(f, "Same top p:        {:.3} %", 100.0 * self.same_top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_distributions_have_zero_divergence_and_full_agreement() {
        let logp: Vec<f32> = [0.5f32, 0.3, 0.2].iter().map(|p| p.ln()).collect();
        let mut acc = Acc::default();
        acc.add(&logp, &logp, &[0], 3);
        let r = acc.report();
        assert!(r.mean_kl.abs() < 1e-9 && r.same_top == 1.0 && r.mean_delta_p.abs() < 1e-9);
    }

    #[test]
    fn divergence_is_kl_of_reference_to_model() {
        // KL(P||Q) with P = (0.5, 0.5), Q = (0.9, 0.1): 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1).
        let p: Vec<f32> = [0.5f32, 0.5].iter().map(|x| x.ln()).collect();
        let q: Vec<f32> = [0.9f32, 0.1].iter().map(|x| x.ln()).collect();
        let mut acc = Acc::default();
        acc.add(&q, &p, &[1], 2);
        let r = acc.report();
        let want = 0.5 * (0.5f64 / 0.9).ln() + 0.5 * (0.5f64 / 0.1).ln();
        assert!((r.mean_kl - want).abs() < 1e-6, "{} vs {want}", r.mean_kl);
        assert!((r.mean_delta_p - (0.1 - 0.5)).abs() < 1e-6);
        assert_eq!(r.same_top, 1.0, "argmax of (0.5, 0.5) is the first, as is (0.9, 0.1)'s");
    }
}
