//! TER's edit counting, sacrebleu 2.6.0's `lib_ter` step for step: greedy block shifts, each the
//! one that lowers the edit distance most, until none helps; the edit distance is a beam search
//! around the (length-ratio) diagonal. Its limits are sacrebleu's and part of the result:
//! blocks of at most 10 words moved at most 50 positions, a beam of 25, and 1000 shift
//! candidates per hypothesis-reference pair, after which the search stops (without taking the
//! last round's best).
//!
//! sacrebleu also caches edit-distance rows by hypothesis prefix; all the hypotheses it compares
//! have one length, so a cached row equals a recomputed one and the cache is left out here.

use std::collections::HashMap;

const MAX_SHIFT_SIZE: usize = 10;
const MAX_SHIFT_DIST: usize = 50;
const BEAM_WIDTH: usize = 25;
const MAX_SHIFT_CANDIDATES: usize = 1000;
const INFINITY: i64 = 10_000_000_000_000_000;

/// One edit step. In the matrix `Del` consumes a hypothesis word and `Ins` a reference word;
/// [`trace`] flips them (sacrebleu's `_flip_trace`), so in a trace `Ins` is a hypothesis word
/// the reference lacks and `Del` a reference word the hypothesis lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Nop,
    Sub,
    Ins,
    Del,
    Undefined,
}

/// `(edits, reference length)` for one hypothesis against one reference (sacrebleu's
/// `translation_edit_rate`).
pub(crate) fn translation_edit_rate(hyp: &[&str], reference: &[&str]) -> (u64, usize) {
    if reference.is_empty() {
        return (hyp.len() as u64, 0);
    }
    let (mut words, reference) = intern(hyp, reference);
    let mut shifts = 0u64;
    let mut checked = 0usize;
    loop {
        let (gain, shifted) = best_shift(&words, &reference, &mut checked);
        if checked >= MAX_SHIFT_CANDIDATES || gain <= 0 {
            break;
        }
        shifts += 1;
        words = shifted;
    }
    let (distance, _) = beam_edit_distance(&words, &reference);
    (shifts + distance as u64, reference.len())
}

/// Words as ids, so that shifting and comparing is cheap.
fn intern(hyp: &[&str], reference: &[&str]) -> (Vec<u32>, Vec<u32>) {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut id = |w| {
        let next = ids.len() as u32;
        *ids.entry(w).or_insert(next)
    };
    let h = hyp.iter().map(|&w| id(w)).collect();
    let r = reference.iter().map(|&w| id(w)).collect();
    (h, r)
}

/// sacrebleu's `_shift`: the best-ranked shift and how much it lowers the edit distance
/// (0 and the words unchanged when no shift qualifies). Ranking: larger gain, then longer
/// block, then earlier block start, then earlier target position.
fn best_shift(words: &[u32], reference: &[u32], checked: &mut usize) -> (i64, Vec<u32>) {
    let (pre_score, trace) = beam_edit_distance(words, reference);
    let alignment = Alignment::from_trace(&trace);
    let mut best: Option<(ShiftRank, Vec<u32>)> = None;
    for (start_h, start_r, length) in shifted_pairs(words, reference) {
        if alignment.skips(start_h, start_r, length) {
            continue;
        }
        let mut prev_idx = -1;
        for pos in start_r as i64 - 1..(start_r + length) as i64 {
            // Unlike tercom, sacrebleu inserts *before* the aligned index.
            let idx = if pos == -1 { 0 } else { alignment.align[pos as usize] + 1 };
            if idx == prev_idx {
                continue;
            }
            prev_idx = idx;
            let shifted = perform_shift(words, start_h, length, idx as usize);
            let gain = pre_score - beam_edit_distance(&shifted, reference).0;
            let key = (gain, length, -(start_h as i64), -idx);
            *checked += 1;
            if best.as_ref().is_none_or(|(b, _)| key > *b) {
                best = Some((key, shifted));
            }
        }
        if *checked >= MAX_SHIFT_CANDIDATES {
            break;
        }
    }
    match best {
        Some(((gain, ..), shifted)) => (gain, shifted),
        None => (0, words.to_vec()),
    }
}

/// `(gain, length, -start_h, -target)`: sacrebleu's candidate tuple, larger is better.
type ShiftRank = (i64, usize, i64, i64);

/// Which hypothesis word each reference word is aligned to, and which words are in error.
struct Alignment {
    /// Per reference position, the hypothesis position (-1 before the first).
    align: Vec<i64>,
    ref_err: Vec<bool>,
    hyp_err: Vec<bool>,
}

impl Alignment {
    /// sacrebleu's `trace_to_alignment` of the flipped trace.
    fn from_trace(trace: &[Op]) -> Self {
        let mut pos_hyp = -1i64;
        let mut out = Alignment { align: Vec::new(), ref_err: Vec::new(), hyp_err: Vec::new() };
        for &op in trace {
            let (hyp_step, ref_step) = match op {
                Op::Nop | Op::Sub => (true, true),
                Op::Ins => (true, false),
                Op::Del => (false, true),
                Op::Undefined => unreachable!("the trace never ends on an unfilled cell"),
            };
            let err = op != Op::Nop;
            if hyp_step {
                pos_hyp += 1;
                out.hyp_err.push(err);
            }
            if ref_step {
                out.align.push(pos_hyp);
                out.ref_err.push(err);
            }
        }
        out
    }

    /// A shift is not tried unless the block is wrong in the hypothesis, the reference is
    /// wrong at the target, and the target is not inside the block itself.
    fn skips(&self, start_h: usize, start_r: usize, length: usize) -> bool {
        let inside = |a: i64| start_h as i64 <= a && a < (start_h + length) as i64;
        !self.hyp_err[start_h..start_h + length].contains(&true)
            || !self.ref_err[start_r..start_r + length].contains(&true)
            || inside(self.align[start_r])
    }
}

/// sacrebleu's `_find_shifted_pairs`: every `(start_h, start_r, length)` with
/// `words[start_h..][..length] == reference[start_r..][..length]`, starts at most
/// `MAX_SHIFT_DIST` apart, `length` up to `MAX_SHIFT_SIZE`, in its generator's order.
fn shifted_pairs(words: &[u32], reference: &[u32]) -> Vec<(usize, usize, usize)> {
    let mut pairs = Vec::new();
    for start_h in 0..words.len() {
        for start_r in 0..reference.len() {
            if start_r.abs_diff(start_h) > MAX_SHIFT_DIST {
                continue;
            }
            let mut length = 0;
            while length < MAX_SHIFT_SIZE
                && start_h + length < words.len()
                && start_r + length < reference.len()
                && words[start_h + length] == reference[start_r + length]
            {
                length += 1;
                pairs.push((start_h, start_r, length));
            }
        }
    }
    pairs
}

/// sacrebleu's `_perform_shift`: moves `words[start..start + length]` to before `target`,
/// with Python's slice clamping.
fn perform_shift(words: &[u32], start: usize, length: usize, target: usize) -> Vec<u32> {
    let s = |a: usize, b: usize| &words[a.min(words.len())..b.clamp(a.min(words.len()), words.len())];
    let end = start + length;
    let parts: [&[u32]; 4] = if target < start {
        [s(0, target), s(start, end), s(target, start), s(end, usize::MAX)]
    } else if target > end {
        [s(0, start), s(end, target), s(start, end), s(target, usize::MAX)]
    } else {
        [s(0, start), s(end, length + target), s(start, end), s(length + target, usize::MAX)]
    };
    parts.concat()
}

/// sacrebleu's `BeamEditDistance`: the edit distance of `words` to `reference` and the trace of
/// operations, computed only within a beam around the pseudo-diagonal `i * |ref| / |hyp|`
/// (the whole last row). Ties prefer match/substitution, then `Del`, then `Ins`.
fn beam_edit_distance(words: &[u32], reference: &[u32]) -> (i64, Vec<Op>) {
    let (n_h, n_r) = (words.len(), reference.len());
    let mut dist = vec![vec![(INFINITY, Op::Undefined); n_r + 1]; n_h + 1];
    for (j, cell) in dist[0].iter_mut().enumerate() {
        *cell = (j as i64, Op::Ins);
    }
    let ratio = if n_h > 0 { n_r as f64 / n_h as f64 } else { 1.0 };
    // Widened when the lengths differ so much that neighbouring rows' beams would not overlap.
    let beam = if (BEAM_WIDTH as f64) < ratio / 2.0 {
        (ratio / 2.0 + BEAM_WIDTH as f64).ceil() as i64
    } else {
        BEAM_WIDTH as i64
    };
    for i in 1..=n_h {
        let diagonal = (i as f64 * ratio).floor() as i64;
        let min_j = (diagonal - beam).max(0) as usize;
        let max_j = if i == n_h { n_r + 1 } else { (diagonal + beam).min(n_r as i64 + 1).max(0) as usize };
        for j in min_j..max_j {
            dist[i][j] = best_step(&dist, words, reference, i, j);
        }
    }
    (dist[n_h][n_r].0, trace(&dist))
}

/// The cheapest way into cell `(i, j)`; a later option wins only when strictly cheaper.
fn best_step(dist: &[Vec<(i64, Op)>], words: &[u32], reference: &[u32], i: usize, j: usize) -> (i64, Op) {
    if j == 0 {
        return (dist[i - 1][0].0 + 1, Op::Del);
    }
    let diagonal = if words[i - 1] == reference[j - 1] { (0, Op::Nop) } else { (1, Op::Sub) };
    let options = [
        (dist[i - 1][j - 1].0 + diagonal.0, diagonal.1),
        (dist[i - 1][j].0 + 1, Op::Del),
        (dist[i][j - 1].0 + 1, Op::Ins),
    ];
    let cheaper = |cell: (i64, Op), option: (i64, Op)| if cell.0 > option.0 { option } else { cell };
    options.into_iter().fold((INFINITY, Op::Undefined), cheaper)
}

/// The operations from the start to the last cell, flipped (`Ins` <-> `Del`) so that they
/// rewrite the reference into the hypothesis, as `_shift` reads them.
fn trace(dist: &[Vec<(i64, Op)>]) -> Vec<Op> {
    let (mut i, mut j) = (dist.len() - 1, dist[0].len() - 1);
    let mut ops = Vec::new();
    while i > 0 || j > 0 {
        let op = dist[i][j].1;
        match op {
            Op::Nop | Op::Sub => (i, j) = (i - 1, j - 1),
            Op::Ins => j -= 1,
            Op::Del => i -= 1,
            Op::Undefined => unreachable!("the beam always reaches the last cell"),
        }
        ops.push(match op {
            Op::Ins => Op::Del,
            Op::Del => Op::Ins,
            other => other,
        });
    }
    ops.reverse();
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perform_shift_moves_a_block_before_the_target() {
        let w = [0, 1, 2, 3, 4];
        assert_eq!(perform_shift(&w, 3, 2, 0), [3, 4, 0, 1, 2]);
        assert_eq!(perform_shift(&w, 0, 2, 4), [2, 3, 0, 1, 4]);
        assert_eq!(perform_shift(&w, 1, 2, 2), [0, 3, 1, 2, 4]);
    }

    #[test]
    fn edit_distance_counts_word_edits() {
        assert_eq!(beam_edit_distance(&[0, 1, 2], &[0, 2]).0, 1);
        assert_eq!(beam_edit_distance(&[], &[0, 2]).0, 2);
        assert_eq!(translation_edit_rate(&["a", "b"], &["b", "a"]), (1, 2));
    }
}
