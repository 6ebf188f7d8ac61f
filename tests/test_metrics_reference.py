"""Our metrics against the reference implementations, on generated cases (hypothesis):
the official SQuAD v1.1 evaluation for exact match and F1, pytrec_eval (trec_eval) for recall@k,
MRR and nDCG@k, statsmodels for McNemar's exact test, scipy for the paired permutation test.
Where we chose a convention of our own (docs/metrics.md), a test below states it."""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np
import pytest
import pytrec_eval
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, permutation_test
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from evals.metrics import _source_of, answer_metrics, normalize, normalize_path, retrieval_metrics
from evals.stats import mcnemar, sign_flip

# -- the official SQuAD v1.1 evaluation script's functions, verbatim ----------------------------


def squad_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r"\b(a|an|the)\b", " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_f1_score(prediction, ground_truth):
    prediction_tokens = squad_normalize_answer(prediction).split()
    ground_truth_tokens = squad_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def squad_exact_match_score(prediction, ground_truth):
    return squad_normalize_answer(prediction) == squad_normalize_answer(ground_truth)


def squad_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    return max(metric_fn(prediction, ground_truth) for ground_truth in ground_truths)


WORDS = st.sampled_from(
    ["Paris", "paris", "the", "A", "an", "city", "of", "France!", "2019", "New", "York,", "é", "-"]
)
TEXT = st.lists(WORDS, max_size=8).map(" ".join)
ANSWER = TEXT.filter(lambda text: normalize(text) != "")  # datasets refuse answers with no words


@settings(max_examples=400, deadline=None)
@given(output=TEXT, expected=st.lists(ANSWER, min_size=1, max_size=3))
def test_exact_and_f1_equal_the_official_squad_evaluation(output, expected):
    ours = answer_metrics(output, tuple(expected), None)
    assert normalize(output) == squad_normalize_answer(output)
    assert ours["exact"] == float(
        squad_metric_max_over_ground_truths(squad_exact_match_score, output, expected)
    )
    # Our F1 of an empty output against an answer is 0, as SQuAD's (no common tokens).
    assert ours["f1"] == pytest.approx(
        squad_metric_max_over_ground_truths(squad_f1_score, output, expected), abs=1e-12
    )


def test_f1_of_two_empty_strings_is_one_by_our_convention():
    # SQuAD's script returns 0 when nothing is in common, even for two empty answers; such an
    # expected answer is refused by our datasets, so this only shows the function's edge.
    assert answer_metrics("", ("-",), None) == {}  # "-" has no words: left out, not scored


# -- ranking metrics against trec_eval (pytrec_eval) ----------------------------------------------

PATHS = st.sampled_from(
    ["a.md", "docs/a.md", "./docs/a.md", "b.md", "docs\\b.md", "c.md", "x/c.md", "d.md", "docs//e.md"]
)
SOURCES = st.sampled_from(["a.md", "b.md", "docs/b.md", "c.md", "e.md", "f.md"])


def _reference(retrieved: list[str], sources: list[str], k: int | None) -> dict[str, float]:
    """trec_eval over the run our conventions make of the retrieved chunks: the first k chunks,
    their distinct files in order, each file the source it is (credited once) or a document of
    its own; the distinct expected sources are the relevant documents."""
    expected = list(dict.fromkeys(normalize_path(s) for s in sources))
    cutoff = len(retrieved) if k is None else k
    ranked = list(dict.fromkeys(normalize_path(p) for p in retrieved[:cutoff]))
    run, credited = {}, set()
    for rank, path in enumerate(ranked):
        source = _source_of(path, tuple(expected))
        doc = source if source is not None and source not in credited else f"~{rank}:{path}"
        credited.add(doc)
        run[doc] = float(len(ranked) - rank)
    if not run or cutoff == 0:
        return {"recall_at_k": 0.0, "mrr": 0.0, "ndcg": 0.0}
    measures = {f"recall.{cutoff}", f"ndcg_cut.{cutoff}", "recip_rank"}
    evaluator = pytrec_eval.RelevanceEvaluator({"q": {s: 1 for s in expected}}, measures)
    result = evaluator.evaluate({"q": run})["q"]
    return {
        "recall_at_k": result[f"recall_{cutoff}"],
        "mrr": result["recip_rank"],
        "ndcg": result[f"ndcg_cut_{cutoff}"],
    }


@settings(max_examples=600, deadline=None)
@given(
    retrieved=st.lists(PATHS, max_size=12),
    sources=st.lists(SOURCES, min_size=1, max_size=4),
    k=st.none() | st.integers(min_value=1, max_value=12),
)
def test_recall_mrr_ndcg_equal_trec_eval(retrieved, sources, k):
    ours = retrieval_metrics(retrieved, tuple(sources), k)
    reference = _reference(retrieved, sources, k)
    for name in ("recall_at_k", "mrr", "ndcg"):
        assert ours[name] == pytest.approx(reference[name], abs=1e-9), name
        assert 0.0 <= ours[name] <= 1.0


def test_the_cases_the_review_found():
    # One relevant file of six sources retrieved alone in a k=5 retrieval: the ideal ranking
    # would have had 5 relevant files in the top 5.
    alone = retrieval_metrics(["a.md"], ("a.md", "b.md", "c.md", "d.md", "e.md", "f.md"), k=5)
    assert alone["ndcg"] == pytest.approx(1 / sum(1 / np.log2(r + 1) for r in range(1, 6)))
    # Two retrieved paths that end in the source: the source is credited once, nDCG stays <= 1.
    twice = retrieval_metrics(["docs/a.md", "old/a.md"], ("a.md",))
    assert twice == {"recall_at_k": 1.0, "mrr": 1.0, "ndcg": 1.0}
    # A source listed twice is one source: a perfect ranking stays perfect.
    assert retrieval_metrics(["a.md", "b.md"], ("a.md", "a.md", "b.md"))["ndcg"] == 1.0
    # Separators and ./ do not matter; no sources, no retrieval metrics.
    assert retrieval_metrics(["docs\\a.md"], ("./docs/a.md",))["recall_at_k"] == 1.0
    assert retrieval_metrics(["a.md"], ()) == {}


# -- statistics ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(lost=st.integers(0, 12_000), gained=st.integers(0, 12_000), same=st.integers(0, 50))
def test_mcnemar_equals_statsmodels_exact(lost, gained, same):
    two, fall = mcnemar(lost, gained)
    reference = sm_mcnemar([[same, lost], [gained, same]], exact=True).pvalue
    assert two.p == pytest.approx(reference, rel=1e-9, abs=1e-300)
    if lost + gained:
        assert fall.p == pytest.approx(
            binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue, rel=1e-9
        )


def test_mcnemar_at_twelve_thousand_discordant_pairs_is_quick():
    import time

    started = time.perf_counter()
    two, _ = mcnemar(6_100, 5_900)
    assert two.p == pytest.approx(sm_mcnemar([[0, 6_100], [5_900, 0]], exact=True).pvalue, rel=1e-9)
    assert time.perf_counter() - started < 1.0  # was 29 s as an exact sum of big integers


@settings(max_examples=150, deadline=None)
@given(before=st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=2, max_size=10), data=st.data())
def test_sign_flip_equals_scipys_exact_paired_permutation_test(before, data):
    after = data.draw(
        st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=len(before), max_size=len(before))
    )
    x, y = np.array(before), np.array(after)
    two, fall = sign_flip(y - x)
    if not np.any(y != x):
        assert two.p == fall.p == 1.0
        return

    def statistic(a, b, axis):
        return np.mean(b - a, axis=axis)

    for alternative, ours in (("two-sided", two), ("less", fall)):
        reference = permutation_test(
            (x, y),
            statistic,
            permutation_type="samples",
            alternative=alternative,
            n_resamples=np.inf,
            vectorized=True,
        ).pvalue
        assert ours.p == pytest.approx(reference, abs=1e-12), alternative


def test_the_permutation_test_holds_its_level_at_small_n():
    # The old percentile bootstrap rejected a true null 14% of the time at n = 5 (alpha 0.05).
    rng = np.random.default_rng(7)
    rejected = sum(sign_flip(rng.normal(size=5))[0].p < 0.05 for _ in range(2000))
    assert rejected / 2000 <= 0.05 + 0.015


def test_a_single_loss_is_not_significant_and_no_p_is_zero():
    deltas = np.zeros(33)
    deltas[0] = -1
    two, fall = sign_flip(deltas)
    assert two.p == 1.0 and fall.p == 0.5
    assert mcnemar(1, 0)[0].p == 1.0
    big = np.where(np.arange(5_000) < 1_000, -1.0, 0.0)
    assert sign_flip(big)[1].p > 0  # at the normal limit, tiny but not zero
