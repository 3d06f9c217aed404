//! Beam search with transformers' semantics (`_beam_search` since 4.50): `2 * num_beams`
//! candidates per step, finished hypotheses scored `sum_logprobs / new_len^length_penalty`,
//! the same early-stopping heuristic, and the same -1e9 masking in f32.

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};

use super::processors::log_softmax;
use super::{CompiledConstraint, GenerationConfig, LogitsProcessor, TokenMatcher};
use crate::error::Result;
use crate::model::{CausalLm, ModelInput};

/// Hypotheses returned for one prompt, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct BeamOutput {
    /// New tokens of each returned sequence (EOS included when it finished on one).
    pub sequences: Vec<Vec<u32>>,
    /// transformers' `sequences_scores`: sum of log-probs / new_len^length_penalty.
    pub scores: Vec<f32>,
}

const NEG: f32 = -1.0e9;

#[derive(Clone)]
struct Hyp {
    ids: Vec<u32>,
    score: f32,
    finished: bool,
}

/// Runs beam search on one prompt. With a constraint every beam has its own matcher: tokens
/// it forbids get `-inf` after the log-softmax and the processors (where transformers applies
/// `prefix_allowed_tokens_fn`), and a beam whose output the constraint completes finishes as
/// on EOS.
pub fn beam_search<B: Backend>(
    model: &CausalLm<B>,
    prompt: &[u32],
    config: &GenerationConfig,
    processors: &[Box<dyn LogitsProcessor>],
    max_new: usize,
    constraint: Option<&CompiledConstraint>,
) -> Result<BeamOutput> {
    let nb = config.num_beams;
    let prompt_len = prompt.len();
    let max_len = prompt_len.saturating_add(max_new);
    let eos = &config.eos_token_id;
    let keep = 2usize.max(1 + eos.len()) * nb;
    let lp = config.length_penalty;
    let device = model.device();

    let mut cache = model.new_cache(1, prompt_len + max_new.min(super::FIRST_ROOM)).with_limit(max_len);
    let mut logits = forward(model, &mut cache, &[prompt.to_vec()], &device)?;
    cache.select_rows(&vec![0; nb]);
    logits = logits.into_iter().cycle().take(nb).collect();

    let mut running: Vec<Vec<u32>> = vec![prompt.to_vec(); nb];
    let mut matchers: Option<Vec<TokenMatcher>> = constraint.map(|c| vec![c.matcher(); nb]);
    // Only the first beam is live at the start, as transformers initialises it.
    let mut running_scores: Vec<f32> = (0..nb).map(|b| if b == 0 { 0.0 } else { NEG }).collect();
    let mut finished: Vec<Hyp> = vec![Hyp { ids: vec![], score: NEG, finished: false }; nb];
    let mut heuristic_unsatisfied = true;
    let mut cur_len = prompt_len;
    while cur_len < max_len {
        // [nb * vocab] accumulated log-probs
        let vocab = logits[0].len();
        let mut acc = Vec::with_capacity(nb * vocab);
        for (b, row) in logits.iter().enumerate() {
            let mut lps = log_softmax(row);
            for p in processors {
                p.process(&running[b], prompt_len, &mut lps);
            }
            if let Some(m) = matchers.as_mut() {
                m[b].mask(&mut lps)?;
            }
            acc.extend(lps.into_iter().map(|l| l + running_scores[b]));
        }
        let top = top_indices(&acc, keep);
        // Each candidate's matcher: its beam's, past the token (a forbidden, -inf candidate
        // keeps its beam's state: it never runs again).
        let mut next_matchers = vec![];
        let candidates: Vec<(usize, u32, f32, bool)> = top
            .iter()
            .map(|&i| {
                let (beam, tok) = (i / vocab, (i % vocab) as u32);
                let mut complete = false;
                if let Some(m) = matchers.as_ref() {
                    let mut m = m[beam].clone();
                    // A beam whose output is complete (kept running with a -1e9 score when too
                    // few others are left) takes nothing more.
                    if acc[i] > f32::NEG_INFINITY && !m.is_complete() {
                        m.consume(tok)?;
                    }
                    complete = m.is_complete();
                    next_matchers.push(m);
                }
                let hits = eos.contains(&tok) || complete || cur_len + 1 >= max_len;
                Ok((beam, tok, acc[i], hits))
            })
            .collect::<Result<_>>()?;

        // Next running beams: the best candidates that did not stop.
        let running_vals: Vec<f32> = candidates.iter().map(|c| c.2 + if c.3 { NEG } else { 0.0 }).collect();
        let next = top_indices(&running_vals, nb);
        let parents: Vec<usize> = next.iter().map(|&k| candidates[k].0).collect();
        let new_running: Vec<Vec<u32>> =
            next.iter().map(|&k| [running[candidates[k].0].clone(), vec![candidates[k].1]].concat()).collect();
        let new_scores: Vec<f32> = next.iter().map(|&k| running_vals[k]).collect();
        if let Some(m) = matchers.as_mut() {
            *m = next.iter().map(|&k| next_matchers[k].clone()).collect();
        }

        // Finished hypotheses: merge those just completed among the top nb candidates.
        let all_full = finished.iter().all(|h| h.finished) && config.early_stopping;
        let norm = ((cur_len + 1 - prompt_len) as f32).powf(lp);
        let mut merged = finished.clone();
        for (k, &(beam, tok, score, hits)) in candidates.iter().enumerate() {
            let just_finished = hits && k < nb;
            let mut s = score / norm;
            s += if all_full { NEG } else { 0.0 };
            s += if heuristic_unsatisfied { 0.0 } else { NEG };
            s += if just_finished { 0.0 } else { NEG };
            merged.push(Hyp { ids: [running[beam][prompt_len..].to_vec(), vec![tok]].concat(), score: s, finished: just_finished });
        }
        let scores: Vec<f32> = merged.iter().map(|h| h.score).collect();
        finished = top_indices(&scores, nb).into_iter().map(|i| merged[i].clone()).collect();

        running = new_running;
        running_scores = new_scores;
        cur_len += 1;

        let best_len = cur_len - prompt_len;
        let best_possible = running_scores[0] / (best_len as f32).powf(lp);
        let worst_finished =
            if finished.iter().all(|h| h.finished) { finished.iter().map(|h| h.score).fold(f32::INFINITY, f32::min) } else { NEG };
        heuristic_unsatisfied &= best_possible > worst_finished;
        let all_hit = candidates.iter().all(|c| c.3);
        let open_beam = !(finished.iter().all(|h| h.finished) && config.early_stopping);
        if !(heuristic_unsatisfied && open_beam && !all_hit) || cur_len >= max_len {
            break;
        }
        cache.select_rows(&parents);
        let last: Vec<Vec<u32>> = running.iter().map(|r| vec![*r.last().unwrap_or(&0)]).collect();
        logits = forward(model, &mut cache, &last, &device)?;
    }
    let n = config.num_return_sequences.min(nb);
    Ok(BeamOutput {
        sequences: finished[..n].iter().map(|h| h.ids.clone()).collect(),
        scores: finished[..n].iter().map(|h| h.score).collect(),
    })
}

/// rows: `[batch][seq]` -> last-position logits per row.
fn forward<B: Backend>(
    model: &CausalLm<B>,
    cache: &mut crate::nn::KvCache<B>,
    rows: &[Vec<u32>],
    device: &B::Device,
) -> Result<Vec<Vec<f32>>> {
    let (b, s) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.iter().flatten().map(|&i| i as i64).collect();
    let mut input = ModelInput::new(Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [b, s]), device));
    input.last_logits_only = true;
    let logits: Vec<f32> = model.forward_with(input, Some(cache))?.logits.into_data().iter::<f32>().collect();
    Ok(logits.chunks(model.config.vocab_size).map(<[f32]>::to_vec).collect())
}

/// Indices of the `k` largest values, largest first (earlier index first on ties, as torch.topk on CPU).
fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}
