//! The Porter stemmer exactly as nltk 3.x's `PorterStemmer()` runs it (mode `NLTK_EXTENSIONS`,
//! its default, which rouge-score's `use_stemmer=True` uses): Porter's 1980 steps with Martin
//! Porter's later changes and nltk's own (irregular forms, `ies`/`ied` on four-letter words,
//! `y -> i` only after a consonant, `alli`, `fulli`, `logi`, two-letter `*o`).

/// A word as characters: the rules index from the end by character, as Python does.
type Word = Vec<char>;

/// A suffix rule: `(suffix, replacement, condition on the stem left after removing suffix)`.
type Rule = (&'static str, &'static str, fn(&[char]) -> bool);

/// nltk's irregular forms (`self.pool`), looked up before any step.
const IRREGULAR: [(&str, &str); 16] = [
    ("sky", "sky"), ("skies", "sky"), ("dying", "die"), ("lying", "lie"), ("tying", "tie"),
    ("news", "news"), ("innings", "inning"), ("inning", "inning"), ("outings", "outing"),
    ("outing", "outing"), ("cannings", "canning"), ("canning", "canning"), ("howe", "howe"),
    ("proceed", "proceed"), ("exceed", "exceed"), ("succeed", "succeed"),
];

/// nltk's `PorterStemmer().stem(word)`: the word lowercased, then stemmed; words of at most
/// two characters are only lowercased.
pub fn porter_stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some((_, stem)) = IRREGULAR.iter().find(|(form, _)| *form == lower) {
        return stem.to_string();
    }
    if word.chars().count() <= 2 {
        return lower;
    }
    let steps: [fn(Word) -> Word; 8] = [step1a, step1b, step1c, step2, step3, step4, step5a, step5b];
    let stem = steps.iter().fold(lower.chars().collect(), |w, step| step(w));
    stem.into_iter().collect()
}

/// Per character, whether it is a consonant: not a vowel, and `y` only when it starts the
/// word or follows a vowel.
fn consonant_flags(w: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for (i, &c) in w.iter().enumerate() {
        let consonant = match c {
            'a' | 'e' | 'i' | 'o' | 'u' => false,
            'y' => i == 0 || !flags[i - 1],
            _ => true,
        };
        flags.push(consonant);
    }
    flags
}

fn is_consonant(w: &[char], i: usize) -> bool {
    consonant_flags(&w[..=i])[i]
}

/// Porter's m: the number of vowel-consonant transitions, `[C](VC){m}[V]`.
fn measure(w: &[char]) -> usize {
    consonant_flags(w).windows(2).filter(|p| !p[0] && p[1]).count()
}

fn contains_vowel(w: &[char]) -> bool {
    consonant_flags(w).contains(&false)
}

/// `*d`: ends with a doubled consonant.
fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

/// `*o`: ends consonant-vowel-consonant, the last not w, x or y; or (nltk) is a two-letter
/// vowel-consonant word.
fn ends_cvc(w: &[char]) -> bool {
    let n = w.len();
    let cvc = n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], 'w' | 'x' | 'y');
    cvc || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

fn ends(w: &[char], suffix: &str) -> bool {
    let n = suffix.chars().count();
    w.len() >= n && w[w.len() - n..].iter().copied().eq(suffix.chars())
}

/// `w` without its last `suffix.chars().count()` characters, plus `replacement`.
fn replace(w: &[char], suffix: &str, replacement: &str) -> Word {
    let mut out = w[..w.len() - suffix.chars().count()].to_vec();
    out.extend(replacement.chars());
    out
}

/// nltk's `_apply_rule_list`: the first rule whose suffix matches decides, applied when its
/// condition holds and the word kept as is otherwise.
fn apply_rules(w: Word, rules: &[Rule]) -> Word {
    for &(suffix, replacement, condition) in rules {
        if ends(&w, suffix) {
            let stem = replace(&w, suffix, "");
            return if condition(&stem) { replace(&w, suffix, replacement) } else { w };
        }
    }
    w
}

fn always(_: &[char]) -> bool {
    true
}

fn m_gt0(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn m_gt1(stem: &[char]) -> bool {
    measure(stem) > 1
}

fn step1a(w: Word) -> Word {
    if ends(&w, "ies") && w.len() == 4 {
        return replace(&w, "ies", "ie");
    }
    apply_rules(w, &[("sses", "ss", always), ("ies", "i", always), ("ss", "ss", always), ("s", "", always)])
}

fn step1b(w: Word) -> Word {
    if ends(&w, "ied") {
        return replace(&w, "ied", if w.len() == 4 { "ie" } else { "i" });
    }
    if ends(&w, "eed") {
        let stem = replace(&w, "eed", "");
        return if measure(&stem) > 0 { replace(&w, "eed", "ee") } else { w };
    }
    let stems = ["ed", "ing"].iter().filter(|s| ends(&w, s)).map(|s| replace(&w, s, ""));
    match stems.into_iter().find(|s| contains_vowel(s)) {
        Some(stem) => step1b_tidy(stem),
        None => w,
    }
}

/// After `ed`/`ing` went: restore the `e` of `-ate`/`-ble`/`-ize`, undouble a final
/// consonant (not l, s, z), or add `e` to a short cvc stem.
fn step1b_tidy(stem: Word) -> Word {
    for (suffix, replacement) in [("at", "ate"), ("bl", "ble"), ("iz", "ize")] {
        if ends(&stem, suffix) {
            return replace(&stem, suffix, replacement);
        }
    }
    if ends_double_consonant(&stem) {
        let last = stem[stem.len() - 1];
        return if matches!(last, 'l' | 's' | 'z') { stem } else { stem[..stem.len() - 1].to_vec() };
    }
    if measure(&stem) == 1 && ends_cvc(&stem) {
        return replace(&stem, "", "e");
    }
    stem
}

fn step1c(w: Word) -> Word {
    fn after_consonant(stem: &[char]) -> bool {
        stem.len() > 1 && is_consonant(stem, stem.len() - 1)
    }
    apply_rules(w, &[("y", "i", after_consonant)])
}

fn step2(w: Word) -> Word {
    if ends(&w, "alli") && m_gt0(&replace(&w, "alli", "")) {
        return step2(replace(&w, "alli", "al"));
    }
    // `logi`'s condition is on the word less `ogi`, i.e. the stem plus `l`.
    fn logi(stem: &[char]) -> bool {
        m_gt0(&[stem, &['l']].concat())
    }
    apply_rules(
        w,
        &[
            ("ational", "ate", m_gt0), ("tional", "tion", m_gt0), ("enci", "ence", m_gt0),
            ("anci", "ance", m_gt0), ("izer", "ize", m_gt0), ("bli", "ble", m_gt0),
            ("alli", "al", m_gt0), ("entli", "ent", m_gt0), ("eli", "e", m_gt0),
            ("ousli", "ous", m_gt0), ("ization", "ize", m_gt0), ("ation", "ate", m_gt0),
            ("ator", "ate", m_gt0), ("alism", "al", m_gt0), ("iveness", "ive", m_gt0),
            ("fulness", "ful", m_gt0), ("ousness", "ous", m_gt0), ("aliti", "al", m_gt0),
            ("iviti", "ive", m_gt0), ("biliti", "ble", m_gt0), ("fulli", "ful", m_gt0),
            ("logi", "log", logi),
        ],
    )
}

fn step3(w: Word) -> Word {
    apply_rules(
        w,
        &[
            ("icate", "ic", m_gt0), ("ative", "", m_gt0), ("alize", "al", m_gt0),
            ("iciti", "ic", m_gt0), ("ical", "ic", m_gt0), ("ful", "", m_gt0), ("ness", "", m_gt0),
        ],
    )
}

fn step4(w: Word) -> Word {
    fn ion(stem: &[char]) -> bool {
        m_gt1(stem) && matches!(stem.last(), Some('s' | 't'))
    }
    apply_rules(
        w,
        &[
            ("al", "", m_gt1), ("ance", "", m_gt1), ("ence", "", m_gt1), ("er", "", m_gt1),
            ("ic", "", m_gt1), ("able", "", m_gt1), ("ible", "", m_gt1), ("ant", "", m_gt1),
            ("ement", "", m_gt1), ("ment", "", m_gt1), ("ent", "", m_gt1), ("ion", "", ion),
            ("ou", "", m_gt1), ("ism", "", m_gt1), ("ate", "", m_gt1), ("iti", "", m_gt1),
            ("ous", "", m_gt1), ("ive", "", m_gt1), ("ize", "", m_gt1),
        ],
    )
}

fn step5a(w: Word) -> Word {
    if ends(&w, "e") {
        let stem = replace(&w, "e", "");
        let m = measure(&stem);
        if m > 1 || (m == 1 && !ends_cvc(&stem)) {
            return stem;
        }
    }
    w
}

fn step5b(w: Word) -> Word {
    // The condition is on the word less one `l`, i.e. the stem plus `l`.
    fn double_l(stem: &[char]) -> bool {
        m_gt1(&[stem, &['l']].concat())
    }
    apply_rules(w, &[("ll", "l", double_l)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_examples_stem_as_nltk_does() {
        let cases = [
            ("caresses", "caress"), ("ponies", "poni"), ("ties", "tie"), ("agreed", "agre"),
            ("hopping", "hop"), ("filing", "file"), ("happy", "happi"), ("relational", "relat"),
            ("generalizations", "gener"), ("dying", "die"), ("controll", "control"),
        ];
        for (word, stem) in cases {
            assert_eq!(porter_stem(word), stem, "{word}");
        }
    }
}
