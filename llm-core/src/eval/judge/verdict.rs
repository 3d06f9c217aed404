//! Reading a judge's reply as FastChat does (`run_judge_single`, `run_judge_pair`), combining
//! the two position orders of a pairwise match (`load_pairwise_model_judgments`), and the
//! tallies `show_result.py` prints.

use std::sync::OnceLock;

use regex::Regex;

/// A single-answer grade.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rating {
    /// The number the judge wrote between double (or, as a fallback, single) brackets; any
    /// number, as FastChat takes it (constrained decoding keeps it in 1..=10).
    Score(f64),
    /// No rating in the reply (FastChat's `-1`).
    Error,
}

impl Rating {
    /// FastChat's value: the score, or `-1` for [`Rating::Error`].
    pub fn fastchat_score(self) -> f64 {
        match self {
            Self::Score(s) => s,
            Self::Error => -1.0,
        }
    }

    /// The score, if the reply had one.
    pub fn score(self) -> Option<f64> {
        match self {
            Self::Score(s) => Some(s),
            Self::Error => None,
        }
    }
}

/// FastChat's `one_score_pattern` and `one_score_pattern_backup`. Rust's `\d`, like Python 3's,
/// is any Unicode digit.
fn score_patterns() -> &'static [Regex; 2] {
    static PATTERNS: OnceLock<[Regex; 2]> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [Regex::new(r"\[\[(\d+\.?\d*)\]\]").expect("valid regex"), Regex::new(r"\[(\d+\.?\d*)\]").expect("valid regex")]
    })
}

/// The rating in a judge's reply, as `run_judge_single` reads it: the first `[[N]]`, else the
/// first `[N]`; `N` is digits with at most one `.`. A number Python's `ast.literal_eval` would
/// choke on (non-ASCII digits; FastChat raises there) is [`Rating::Error`] here.
pub fn parse_rating(judgment: &str) -> Rating {
    let [primary, backup] = score_patterns();
    let found = primary.captures(judgment).or_else(|| backup.captures(judgment));
    match found.and_then(|c| c[1].parse::<f64>().ok()) {
        Some(score) => Rating::Score(score),
        None => Rating::Error,
    }
}

/// One pairwise game's verdict, by position: the answer shown as assistant A or B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairVerdict {
    /// `[[A]]`: the answer shown first is better.
    A,
    /// `[[B]]`: the answer shown second is better.
    B,
    /// `[[C]]`: a tie.
    Tie,
    /// None of the three in the reply.
    Error,
}

/// The verdict in a judge's reply, as `run_judge_pair` reads it: `[[A]]` anywhere wins over
/// `[[B]]`, which wins over `[[C]]`, wherever each appears.
pub fn parse_pair_verdict(judgment: &str) -> PairVerdict {
    if judgment.contains("[[A]]") {
        PairVerdict::A
    } else if judgment.contains("[[B]]") {
        PairVerdict::B
    } else if judgment.contains("[[C]]") {
        PairVerdict::Tie
    } else {
        PairVerdict::Error
    }
}

/// A pairwise match's result in the models' terms, both position orders combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairWinner {
    /// Both orders prefer model 1's answer.
    Model1,
    /// Both orders prefer model 2's answer.
    Model2,
    /// Both orders call it a tie.
    Tie,
    /// The orders disagree (position bias); `show_result.py` counts it as a tie.
    Inconsistent,
    /// A game's verdict did not parse; `show_result.py` leaves such matches out.
    Error,
}

impl PairWinner {
    /// Game 1 shows model 1's answer as A, game 2 (`swapped`) shows it as B; each maps to the
    /// models as `play_a_match_pair` maps it, and the two agree or the match is
    /// [`PairWinner::Inconsistent`] (`load_pairwise_model_judgments`). A game that did not
    /// parse makes the match [`PairWinner::Error`], as `show_result.py` drops it (FastChat's
    /// loader would call error against a verdict "inconsistent").
    pub fn combine(first: PairVerdict, swapped: PairVerdict) -> Self {
        let g1 = match first {
            PairVerdict::A => Self::Model1,
            PairVerdict::B => Self::Model2,
            PairVerdict::Tie => Self::Tie,
            PairVerdict::Error => return Self::Error,
        };
        let g2 = match swapped {
            PairVerdict::A => Self::Model2,
            PairVerdict::B => Self::Model1,
            PairVerdict::Tie => Self::Tie,
            PairVerdict::Error => return Self::Error,
        };
        if g1 == g2 { g1 } else { Self::Inconsistent }
    }
}

/// Pairwise results of model 1 against model 2, as `show_result.py` counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PairTally {
    /// Matches model 1 won.
    pub wins: usize,
    /// Matches model 2 won.
    pub losses: usize,
    /// Ties and inconsistent matches.
    pub ties: usize,
    /// Matches left out because a verdict did not parse.
    pub errors: usize,
}

impl PairTally {
    /// Counts `winners`.
    pub fn new(winners: impl IntoIterator<Item = PairWinner>) -> Self {
        let mut t = Self::default();
        for w in winners {
            match w {
                PairWinner::Model1 => t.wins += 1,
                PairWinner::Model2 => t.losses += 1,
                PairWinner::Tie | PairWinner::Inconsistent => t.ties += 1,
                PairWinner::Error => t.errors += 1,
            }
        }
        t
    }

    /// `show_result.py`'s `win_rate_adjusted` for model 1: a tie counts half a win; `None`
    /// without a counted match.
    pub fn win_rate_adjusted(&self) -> Option<f64> {
        let n = self.wins + self.losses + self.ties;
        (n > 0).then(|| (self.wins as f64 + 0.5 * self.ties as f64) / n as f64)
    }
}

/// The mean of the parsed ratings, as `show_result.py` averages scores other than `-1`;
/// `None` when none parsed.
pub fn mean_rating(ratings: impl IntoIterator<Item = Rating>) -> Option<f64> {
    let (sum, n) = ratings.into_iter().filter_map(Rating::score).fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PairVerdict::{Tie as C, A, B};

    #[test]
    fn rating_is_the_first_double_bracketed_number() {
        assert_eq!(parse_rating("The answer is fine.\nRating: [[5]]"), Rating::Score(5.0));
        assert_eq!(parse_rating("Rating: [[10]]"), Rating::Score(10.0));
        assert_eq!(parse_rating("[[7.5]]"), Rating::Score(7.5));
        // Python's `ast.literal_eval("8.")` is 8.0.
        assert_eq!(parse_rating("[[8.]]"), Rating::Score(8.0));
        // re.search returns the leftmost match.
        assert_eq!(parse_rating("[[3]] then [[9]]"), Rating::Score(3.0));
        // The double-bracket pattern wins over an earlier single-bracket one.
        assert_eq!(parse_rating("see [2], so [[6]]"), Rating::Score(6.0));
        // Any number is taken, as FastChat takes it.
        assert_eq!(parse_rating("[[0]]"), Rating::Score(0.0));
        assert_eq!(parse_rating("[[11]]"), Rating::Score(11.0));
    }

    #[test]
    fn single_brackets_are_the_fallback() {
        assert_eq!(parse_rating("Rating: [4]"), Rating::Score(4.0));
        // "[[ 4 ]]" fails the first pattern; the fallback needs "[" then digits.
        assert_eq!(parse_rating("Rating: [[ 4 ]] or [2.5]"), Rating::Score(2.5));
        // A "[[4]" prefix holds "[4]" for the fallback.
        assert_eq!(parse_rating("Rating: [[4]"), Rating::Score(4.0));
    }

    #[test]
    fn no_rating_is_an_error_value_not_a_panic() {
        for text in ["", "Rating: 5", "[[five]]", "[[-3]]", "[[5/10]]", "[[.5]]", "[[1.2.3]]", "[[٥x]]"] {
            assert_eq!(parse_rating(text), Rating::Error, "{text:?}");
        }
        assert_eq!(Rating::Error.fastchat_score(), -1.0);
        assert_eq!(Rating::Score(7.0).fastchat_score(), 7.0);
    }

    #[test]
    fn non_ascii_digits_match_as_in_python_but_do_not_parse() {
        // Python's `\d` matches "٥" and `ast.literal_eval` then raises; here it is an error.
        assert_eq!(parse_rating("[[٥]]"), Rating::Error);
    }

    #[test]
    fn pair_verdict_checks_a_then_b_then_c() {
        assert_eq!(parse_pair_verdict("explanation [[A]]"), A);
        assert_eq!(parse_pair_verdict("[[B]]"), B);
        assert_eq!(parse_pair_verdict("[[C]]"), C);
        // Containment, in the order A, B, C, wherever each appears.
        assert_eq!(parse_pair_verdict("[[B]] ... actually [[A]]"), A);
        assert_eq!(parse_pair_verdict("[[C]] or [[B]]"), B);
        for text in ["", "[A]", "[[a]]", "[[D]]", "A is better"] {
            assert_eq!(parse_pair_verdict(text), PairVerdict::Error, "{text:?}");
        }
    }

    #[test]
    fn all_nine_position_orders_combine_as_fastchat() {
        use PairWinner::*;
        // (game 1 with model 1 as A, game 2 with model 1 as B) -> winner.
        let table = [
            (A, A, Inconsistent), // each order prefers the first position
            (A, B, Model1),
            (A, C, Inconsistent),
            (B, A, Model2),
            (B, B, Inconsistent), // each order prefers the second position
            (B, C, Inconsistent),
            (C, A, Inconsistent),
            (C, B, Inconsistent),
            (C, C, Tie),
        ];
        for (first, swapped, want) in table {
            assert_eq!(PairWinner::combine(first, swapped), want, "({first:?}, {swapped:?})");
        }
    }

    #[test]
    fn an_unparsed_game_makes_the_match_an_error() {
        for v in [A, B, C, PairVerdict::Error] {
            assert_eq!(PairWinner::combine(PairVerdict::Error, v), PairWinner::Error);
            assert_eq!(PairWinner::combine(v, PairVerdict::Error), PairWinner::Error);
        }
    }

    #[test]
    fn tally_counts_inconsistent_as_tie_and_drops_errors() {
        use PairWinner::*;
        let t = PairTally::new([Model1, Model1, Model2, Tie, Inconsistent, Error]);
        assert_eq!(t, PairTally { wins: 2, losses: 1, ties: 2, errors: 1 });
        assert_eq!(t.win_rate_adjusted(), Some(3.0 / 5.0));
        assert_eq!(PairTally::new([Error]).win_rate_adjusted(), None);
    }

    #[test]
    fn mean_rating_skips_errors() {
        assert_eq!(mean_rating([Rating::Score(4.0), Rating::Error, Rating::Score(8.0)]), Some(6.0));
        assert_eq!(mean_rating([Rating::Error]), None);
    }
}
