//! The few Python `str` behaviours the reference tools build on, where Rust's differ.

use std::collections::HashMap;
use std::hash::Hash;

/// Python's `str.isspace()`: Rust's `char::is_whitespace` plus U+001C..U+001F, which Python
/// counts as separators (bidi class B/S) and Unicode's White_Space does not.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `s.split()` (no argument): runs of whitespace separate, none at either end.
pub(crate) fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// Python's `s.rstrip()`.
pub(crate) fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_space)
}

/// Python's `" ".join(s.split())`.
pub(crate) fn py_squeeze(s: &str) -> String {
    py_split(s).collect::<Vec<_>>().join(" ")
}

/// `collections.Counter` of the `n`-grams (windows) of `items`.
pub(crate) fn ngram_counts<T: Eq + Hash>(items: &[T], n: usize) -> HashMap<&[T], u64> {
    let mut counts = HashMap::new();
    if n == 0 || items.len() < n {
        return counts;
    }
    for w in items.windows(n) {
        *counts.entry(w).or_insert(0) += 1;
    }
    counts
}

/// `sum((a & b).values())`: the clipped matches of two n-gram counts.
pub(crate) fn clipped_matches<K: Eq + Hash>(hyp: &HashMap<K, u64>, reference: &HashMap<K, u64>) -> u64 {
    hyp.iter().map(|(k, &c)| reference.get(k).map_or(0, |&r| c.min(r))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_treats_information_separators_as_python_does() {
        let words: Vec<_> = py_split(" a\u{1f}b\u{a0} c\t").collect();
        assert_eq!(words, ["a", "b", "c"]);
        assert_eq!(py_rstrip("x \u{1c}\n"), "x");
    }
}
