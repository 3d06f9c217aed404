//! lm-eval's rolling windows over a token list (`utils.get_rolling_token_windows` and
//! `make_disjoint_window`): every token is predicted exactly once, each window holding at most
//! `max_seq_len` inputs.

/// The `(inputs, predicted)` windows of `tokens`: the first window predicts the first
/// `min(max_seq_len, n)` tokens after `prefix_token`; each later one predicts up to
/// `max_seq_len - context_len + 1` new tokens with as much preceding context as fits.
///
/// # Panics
/// When `context_len` is not in `1..=max_seq_len` (a caller's error, as lm-eval asserts).
pub fn rolling_token_windows(tokens: &[u32], prefix_token: u32, max_seq_len: usize, context_len: usize) -> Vec<(Vec<u32>, Vec<u32>)> {
    assert!((1..=max_seq_len).contains(&context_len), "context_len {context_len} not in 1..={max_seq_len}");
    let mut out = vec![];
    if tokens.is_empty() {
        return out;
    }
    let pred_len = max_seq_len - context_len + 1;
    let first = max_seq_len.min(tokens.len());
    let mut input = vec![prefix_token];
    input.extend_from_slice(&tokens[..first - 1]);
    out.push((input, tokens[..first].to_vec()));
    let mut predicted = first;
    while predicted < tokens.len() {
        let window_pred = (tokens.len() - predicted).min(pred_len);
        let end = predicted + window_pred;
        // lm-eval slices `tokens[end - max_seq_len - 1 : end - 1]`; after the first window
        // end > max_seq_len, so the start is never negative (Python would wrap it).
        let start = (end - 1).saturating_sub(max_seq_len);
        out.push((tokens[start..end - 1].to_vec(), tokens[end - window_pred..end].to_vec()));
        predicted += window_pred;
    }
    out
}

/// `make_disjoint_window`: drops the inputs that the predicted tokens repeat, so a window's
/// context and its continuation do not overlap (`(context, continuation)` to score).
pub fn disjoint_rolling_windows(windows: Vec<(Vec<u32>, Vec<u32>)>) -> Vec<(Vec<u32>, Vec<u32>)> {
    windows
        .into_iter()
        .map(|(mut a, b)| {
            a.truncate(a.len() - (b.len() - 1));
            (a, b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from lm-eval 0.4.13: `list(map(make_disjoint_window,
    /// get_rolling_token_windows(list(range(1, 11)), 0, 4, 1)))`.
    #[test]
    fn windows_match_lm_eval() {
        let tokens: Vec<u32> = (1..=10).collect();
        let w = disjoint_rolling_windows(rolling_token_windows(&tokens, 0, 4, 1));
        let want: Vec<(Vec<u32>, Vec<u32>)> = vec![
            (vec![0], vec![1, 2, 3, 4]),
            (vec![4], vec![5, 6, 7, 8]),
            (vec![6, 7, 8], vec![9, 10]),
        ];
        assert_eq!(w, want);
        let overlapping = disjoint_rolling_windows(rolling_token_windows(&tokens, 0, 4, 2));
        let want: Vec<(Vec<u32>, Vec<u32>)> =
            vec![(vec![0], vec![1, 2, 3, 4]), (vec![3, 4], vec![5, 6, 7]), (vec![6, 7], vec![8, 9, 10])];
        assert_eq!(overlapping, want);
        let short = disjoint_rolling_windows(rolling_token_windows(&[7, 8], 0, 4, 1));
        assert_eq!(short, vec![(vec![0], vec![7, 8])]);
        assert!(rolling_token_windows(&[], 0, 4, 1).is_empty());
    }
}
