"""Runs the reference text-metric tools and writes fixtures/text_metrics/cases.json, what
llm-core's `eval::metrics` tests (tests/core/text_metrics.rs) compare against.

- sacrebleu (pinned): corpus BLEU (`corpus_bleu`: tokenizer 13a, smooth 'exp', no effective
  order) with its counts, totals, precisions, bp, sys_len and ref_len; `sentence_bleu` per case
  (smooth 'exp', effective order on); chrF (char order 6, word order 0, beta 2, whitespace
  removed, effective-order averaging) and chrF++ (word order 2), corpus and per case; TER
  (tercom tokenizer, not normalized, punctuation kept, case-insensitive), corpus and per case.
  Corpus values are given for the whole set and for a few subsets (`corpora`).
- rouge-score (pinned): RougeScorer(['rouge1', 'rouge2', 'rougeL', 'rougeLsum']) with
  use_stemmer False and True, `score` for one reference and `score_multi` for several; the
  Porter stems nltk gives a word list (`porter`), since use_stemmer=True means nltk's stemmer.
- SQuAD v1.1: the official evaluate-v1.1.py's normalize_answer / f1_score / exact_match_score,
  copied below, max over the gold answers per case and the 0-100 averages.

References are listed per hypothesis (`refs`, one to three); sacrebleu's streams are built from
them with None where a case has fewer references than the stream count.

Run through scripts/text-metrics-reference.sh, which makes the virtualenv.
"""
import json
import re
import string
import sys
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import sacrebleu
from nltk.stem import porter
from rouge_score import rouge_scorer

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "fixtures" / "text_metrics" / "cases.json"

LONG_REF = (
    "The committee met on Tuesday to review the annual budget, and after a long discussion "
    "about transport, housing and the new library, it agreed to postpone the final vote until "
    "the public had been consulted in every district of the city during the spring."
)
LONG_SHUFFLED = (
    "After a long discussion about housing, transport and the new library, the committee, "
    "which met on Tuesday to review the annual budget, agreed that the final vote would wait "
    "until every district of the city had been consulted by the public in the spring."
)
LONG_WORDS = " ".join(f"word{i % 17} item{i % 5}" for i in range(40))

# (hypothesis, [references...]); written to cover paraphrase, exact match, empty and very short
# strings, punctuation, numbers, casing, hyphens, apostrophes, repetition, unicode, long
# sentences, newlines (rougeLsum sentences) and several references.
CASES = [
    ("The cat sat on the mat.", ["The cat sat on the mat."]),
    ("The cat is sitting on the mat.", ["The cat sat on the mat."]),
    ("A cat was on the mat.", ["There is a cat on the mat."]),
    ("", ["The cat sat on the mat."]),
    ("The cat sat on the mat.", [""]),
    ("", [""]),
    ("Hello", ["Hello"]),
    ("Hello", ["Hello world"]),
    ("hello WORLD", ["Hello world"]),
    ("Yes.", ["No."]),
    ("It costs $3.50, not 4,000 dollars.", ["It costs 3.50 dollars, not $4,000."]),
    ("The well-known author wrote a best-selling book.", ["The well known author wrote a best selling book."]),
    ("It's John's book, isn't it?", ["It is John's book, is it not?"]),
    ("the the the the the the the", ["The cat is on the mat."]),
    ("I'd say it's fine; don't worry.", ["I would say it is fine, do not worry."]),
    ("Café au lait costs €3 — cheap!", ["A café au lait costs €3 — quite cheap."]),
    ("Naïve résumé: über-cool coöperation.", ["naive resume: uber cool cooperation."]),
    ("The quick brown fox jumps over the lazy dog.", ["A quick brown fox jumped over the lazy dog."]),
    ("The quick brown fox jumps over the lazy dog.", ["The fast brown fox leaps over the lazy dog.", "A quick brown fox jumps over a lazy dog."]),
    ("He went to the store to buy milk.", ["He went to the shop to buy some milk.", "He visited the store for milk."]),
    ("Paris is the capital of France.", ["The capital of France is Paris."]),
    ("In 2023, revenue grew 12.5% to $1.2 billion.", ["Revenue grew by 12.5% in 2023, reaching $1.2 billion."]),
    ("Call me at 555-1234 or 555-5678.", ["Call me at 555-1234."]),
    ("dog", ["cat"]),
    ("a", ["a"]),
    ("a b", ["b a"]),
    ("one two three four five", ["five four three two one"]),
    ("one two three four five six", ["four five six one two three"]),
    ("We need more data, more compute and more time.", ["More time, more compute and more data are needed."]),
    (LONG_SHUFFLED, [LONG_REF]),
    (LONG_REF, [LONG_REF]),
    ("The committee", [LONG_REF]),
    ("vote", [LONG_REF]),
    ("budget", [LONG_REF + " " + LONG_REF]),
    (LONG_REF, ["the budget vote"]),
    (LONG_WORDS, [" ".join(reversed(LONG_WORDS.split()))]),
    ("The first sentence.\nThe second sentence here.", ["The first sentence.\nAnother second sentence."]),
    ("Line one is short.\nLine two is a bit longer than one.\nLine three.", ["Line three.\nLine one is short.\nLine two is longer."]),
    ("Summary: the model works.\n\nIt is fast.", ["The model works and it is fast."]),
    ("THE END", ["the end"]),
    ("The End.", ["THE END!"]),
    ("Mr. Smith arrived at 5 p.m. on Jan. 3rd.", ["Mr Smith arrived at 5 pm on January 3."]),
    ("Use <tags> & \"quotes\" carefully.", ["Use &lt;tags&gt; &amp; &quot;quotes&quot; carefully."]),
    ("state-of-the-art results (see Table 2).", ["State of the art results, see Table 2."]),
    ("(hi) there", ["hi there"]),
    ("... wait , what ?", ["Wait, what?"]),
    ("Version 2.0.1 was released on 2024-05-01.", ["Version 2.0.1 was released on 1 May 2024."]),
    ("An apple a day keeps the doctor away.", ["An apple a day keeps a doctor away.", "One apple a day keeps the doctor away."]),
    ("The answer is 42", ["42", "forty-two", "The answer is forty two"]),
    ("Barack Obama", ["Obama", "President Barack Obama"]),
    ("the Eiffel Tower", ["Eiffel Tower"]),
    ("an elephant", ["the elephant"]),
    ("Denver Broncos", ["Denver Broncos", "The Denver Broncos"]),
    ("Santa Clara, California", ["Santa Clara", "Levi's Stadium in Santa Clara, California"]),
    ("1990s", ["the 1990s", "1990"]),
    ("It was running and jumping happily.", ["They ran and jumped happily."]),
    ("The studies were conducted by researchers.", ["Researchers conducted the study."]),
    ("connections connected connecting", ["connect connection"]),
    ("  leading and trailing spaces   ", ["leading and trailing spaces"]),
    ("tab\tseparated\twords", ["tab separated words"]),
    ("Ünïcödé ΣΊΣΥΦΟΣ naïveté", ["unicode σίσυφος naivete"]),
    ("日本語のテキスト", ["日本語の文章"]),
    ("We'll see—maybe.", ["We will see - maybe."]),
    ("x", ["x y z w v u t s r q p o n m"]),
    ("repeat repeat repeat repeat", ["repeat"]),
    ("The model's accuracy is 95.3%, up from 91%.", ["Accuracy rose from 91% to 95.3%."]),
    ("He said, \"I'm done.\"", ["\"I'm done,\" he said."]),
    ("a-b-c 1-2-3", ["a b c 1 2 3"]),
    ("Well, well, well.", ["Well well well"]),
    ("Is this the real life? Is this just fantasy?", ["Is this the real life, or is this just fantasy?"]),
    ("The rain in Spain stays mainly in the plain.", ["In Spain, the rain stays mainly in the plain.", "The rain in Spain falls mainly on the plain.", "Rain in Spain stays in the plain."]),
]

# Words for the Porter stemmer check: the paper's examples, nltk's irregular forms and its
# extensions' triggers, plus everyday words.
PORTER_WORDS = """
caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled
sized hopping tanned falling hissing fizzed failing filing happy sky relational conditional
rational valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli
vietnamization predication operator feudalism decisiveness hopefulness callousness formaliti
sensitiviti sensibiliti triplicate formative formalize electriciti electrical hopeful goodness
revival allowance inference airliner gyroscopic adjustable defensible irritant replacement
adjustment dependent adoption homologou communism activate angulariti homologous effective
bowdlerize probate rate cease controll roll skies dying lying tying news innings inning outings
outing cannings canning howe proceed exceed succeed proceeding exceeded dies spied tried flies
cried enjoy enjoyment spy fly try generously fully gracefully analogi geologi biologi
archaeology generalization generalizations oscillators oscillating universities university
running jumped jumping happily studies study studied researchers research conducted connection
connections connected connecting connects abilities ability responsibility responsibilities
organization organizational nationalism nationality rationalize hopelessness helpfulness
carefully easily quickly reliable reliability argument arguments agreement disagreement
establishment establishments determination determined determining measurement measurements
national nationally international internationally emotional emotionally relativity
relatively relational relations relative representative representatives representation
sensational sensation sensations motivational motivation motivated motivating operational
operations operator operating operated computerized computerization computational computing
computers computer computed trees tree troubles private oaten orrery oats ivy syzygy toy
yearly yelling yyyy ayyy beyond buying saying played playing prayed layered eyeing dyeing
hoping hopped hopper shipping shipped shipment controlling controlled controller filling
filled fills willing falls hissed fizzing tanning tanner agreeing feeding needed needing
bleeding speeded seeded generous generosity precedent precedence preceding exceedingly
succeeded succeeding succession successful successfully unsuccessful usefulness uselessness
darkness kindness witness business businesses happiness happier happiest unhappy unhappily
heavily heaviness lively liveliness likely likelihood lovely loveliness early earlier
ski skiing skis skier news newsy innings cannings outings howes dying lying tying eying
abandon abandoned abandoning abandonment absolute absolutely absorb absorbed absorption
abstract abstraction academic academically accept acceptable acceptance accepted accessible
accident accidental accidentally accommodate accommodation accompany accomplish accomplished
according accordingly account accountable accuracy accurate accurately achieve achievement
acknowledge acquisition activity actively actually adaptation addition additional
additionally adequate adequately administration administrative admission adolescent advanced
advantage adventure advertising advocate aesthetic affection afford afraid aggressive
""".split()


def streams(refs_per_case):
    """sacrebleu's layout: stream k holds every case's k-th reference (None where missing)."""
    width = max(len(r) for r in refs_per_case)
    return [[r[k] if k < len(r) else None for r in refs_per_case] for k in range(width)]


def bleu_json(s):
    return {
        "score": s.score, "counts": list(s.counts), "totals": list(s.totals),
        "precisions": list(s.precisions), "bp": s.bp, "sys_len": s.sys_len, "ref_len": s.ref_len,
    }


def ter_json(s):
    return {"score": s.score, "num_edits": s.num_edits, "ref_length": s.ref_length}


# --- SQuAD v1.1 official evaluation script (evaluate-v1.1.py), verbatim functions ---------
def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)
# ------------------------------------------------------------------------------------------


def rouge_json(scorer, hyp, refs):
    if len(refs) == 1:
        scores = scorer.score(refs[0], hyp)
    else:
        scores = scorer.score_multi(refs, hyp)
    return {k: [v.precision, v.recall, v.fmeasure] for k, v in scores.items()}


def corpus_json(indices):
    hyps = [CASES[i][0] for i in indices]
    refs = streams([CASES[i][1] for i in indices])
    return {
        "indices": indices,
        "bleu": bleu_json(sacrebleu.corpus_bleu(hyps, refs)),
        "chrf": sacrebleu.corpus_chrf(hyps, refs).score,
        "chrf_pp": sacrebleu.corpus_chrf(hyps, refs, word_order=2).score,
        "ter": ter_json(sacrebleu.corpus_ter(hyps, refs)),
    }


def main():
    rouge_types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    plain = rouge_scorer.RougeScorer(rouge_types, use_stemmer=False)
    stemmed = rouge_scorer.RougeScorer(rouge_types, use_stemmer=True)
    cases = []
    for hyp, refs in CASES:
        cases.append({
            "hyp": hyp,
            "refs": refs,
            "sentence_bleu": bleu_json(sacrebleu.sentence_bleu(hyp, refs)),
            "sentence_chrf": sacrebleu.sentence_chrf(hyp, refs).score,
            "sentence_chrf_pp": sacrebleu.sentence_chrf(hyp, refs, word_order=2).score,
            "sentence_ter": ter_json(sacrebleu.sentence_ter(hyp, refs)),
            "rouge": rouge_json(plain, hyp, refs),
            "rouge_stemmed": rouge_json(stemmed, hyp, refs),
            "squad": {
                "exact_match": float(metric_max_over_ground_truths(exact_match_score, hyp, refs)),
                "f1": float(metric_max_over_ground_truths(f1_score, hyp, refs)),
            },
        })
    n = len(CASES)
    multi = [i for i, (_, refs) in enumerate(CASES) if len(refs) > 1]
    corpora = [corpus_json(list(range(n))), corpus_json(list(range(10))), corpus_json(multi),
               corpus_json([3]), corpus_json([5, 3])]
    squad = {
        "exact_match": 100.0 * sum(c["squad"]["exact_match"] for c in cases) / n,
        "f1": 100.0 * sum(c["squad"]["f1"] for c in cases) / n,
    }
    stemmer = porter.PorterStemmer()
    words = sorted(set(PORTER_WORDS))
    out = {
        "tools": {p: version(p) for p in ("sacrebleu", "rouge-score", "nltk")},
        "python": sys.version.split()[0],
        "cases": cases,
        "corpora": corpora,
        "squad_corpus": squad,
        "porter": {"words": words, "stems": [stemmer.stem(w) for w in words]},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT} ({len(cases)} cases, {len(corpora)} corpora, {len(words)} stems)")


if __name__ == "__main__":
    main()
