"""Is a difference real? The statistics of `twotower.evaluation.significance`, checked against scipy, ranx and
an exhaustive enumeration, on fixed per-query inputs."""

import itertools

import numpy as np
import pytest
from scipy import stats

from twotower.evaluation.metrics import per_query_values
from twotower.evaluation.significance import (
    Settings,
    adjust,
    bootstrap_ci,
    compare,
    paired,
    paired_p,
    settings_from,
    ties_with_best,
)

N = 480  # as many queries as the shared dev set
QIDS = [f"q{i}" for i in range(N)]


def reciprocal_ranks(seed: int) -> np.ndarray:
    """A fixed spread of RR@10 values like a real run's: 0 for a miss, else 1/rank."""
    ranks = np.random.default_rng(seed).integers(1, 16, size=N)
    return np.where(ranks <= 10, 1.0 / ranks, 0.0)


BASE = reciprocal_ranks(0)
# Wins and losses that nearly cancel, as between two similar models: 40 misses found at rank 2 (+20 in all),
# 20 hits at rank 1 fall to rank 2 and 12 at rank 2 fall out of the top 10 (-16): the mean rises by 0.008,
# inside the noise of 480 queries.
SMALL = BASE.copy()
SMALL[np.flatnonzero(BASE == 0)[:40]] = 0.5
SMALL[np.flatnonzero(BASE == 1)[:20]] = 0.5
SMALL[np.flatnonzero(BASE == 0.5)[:12]] = 0.0
# Every miss becomes a hit at rank 2: a large gain.
LARGE = np.where(BASE == 0, 0.5, BASE)


def values(rr: np.ndarray) -> dict:
    return {"qids": QIDS, "mrr@10": rr.tolist()}


def test_the_t_test_p_value_is_scipys_ttest_rel_and_ranxs_paired_student_t_test():
    from ranx.statistical_tests import paired_student_t_test

    for other in (SMALL, LARGE):
        expected = stats.ttest_rel(other, BASE).pvalue
        ranx_p, _ = paired_student_t_test(BASE, other)
        assert paired_p(other, BASE) == pytest.approx(expected, rel=1e-12) == pytest.approx(ranx_p, rel=1e-12)


def test_a_small_mean_difference_is_not_significant_and_a_large_one_is():
    assert SMALL.mean() - BASE.mean() == pytest.approx(4 / N)
    assert paired_p(SMALL, BASE) > 0.05
    low, high = bootstrap_ci(SMALL - BASE)
    assert low <= 0 <= high  # the interval holds "no difference"

    assert LARGE.mean() - BASE.mean() > 0.05
    assert paired_p(LARGE, BASE) < 1e-6
    low, high = bootstrap_ci(LARGE - BASE)
    assert 0 < low < LARGE.mean() - BASE.mean() < high


def test_the_randomisation_test_is_exact_on_few_queries():
    """With 2^8 sign flips at most `resamples`, scipy enumerates them all: the p-value is the share of flips
    whose mean difference is at least as extreme, counted here by brute force."""
    x = np.array([1, 1, 0.5, 0.5, 1, 0.33, 0.25, 1])
    y = np.array([0.5, 1, 0.5, 0, 1, 0.25, 0, 0.5])
    d = x - y
    flips = np.array(list(itertools.product((1, -1), repeat=len(d))))
    expected = np.mean(np.abs(flips @ d) >= abs(d.sum()) - 1e-12)
    assert paired_p(x, y, "randomization") == pytest.approx(expected)


def test_the_randomisation_test_on_480_queries_is_the_exact_sign_test_when_differences_are_plus_minus_c():
    """SMALL - BASE is +0.5 on 40 queries and -0.5 on 32: flipping signs at random, |sum| >= the observed one
    exactly when the count of +0.5 is 4 or more away from 36, a binomial tail. (ranx's Fisher test, numba
    floats, loses the flips that tie the observed difference and says ~0.29 here: see docs/significance.md.)"""
    exact = stats.binomtest(40, 72).pvalue
    assert paired_p(SMALL, BASE, "randomization", resamples=20_000) == pytest.approx(exact, abs=0.02)
    # And it agrees with the t-test on which difference is real.
    assert paired_p(SMALL, BASE, "randomization") > 0.05 > paired_p(LARGE, BASE, "randomization")


def test_the_bootstrap_interval_matches_the_normal_approximation_on_480_queries():
    d = LARGE - BASE
    low, high = bootstrap_ci(d, confidence=0.95)
    half_width = stats.norm.ppf(0.975) * d.std(ddof=1) / np.sqrt(len(d))
    assert low < d.mean() < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    # A wider confidence gives a wider interval; the same seed gives the same interval.
    low99, high99 = bootstrap_ci(d, confidence=0.99)
    assert low99 < low and high < high99
    assert bootstrap_ci(d) == (low, high)


def test_no_difference_is_p_1_and_a_point_interval():
    assert paired_p(BASE, BASE) == 1.0 and paired_p(BASE, BASE, "randomization") == 1.0
    assert bootstrap_ci(BASE - BASE) == (0.0, 0.0)


def test_holm_and_bonferroni_corrections():
    p = [0.01, 0.04, 0.03, 0.5]
    # Holm: sorted p times (m, m-1, ...), made non-decreasing: 0.01*4, 0.03*3, max(0.04*2, 0.09), max(0.5, 0.09).
    assert adjust(p, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert adjust(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 1.0])
    assert adjust(p, "none") == p
    with pytest.raises(ValueError, match="correction must be one of holm, bonferroni, none"):
        adjust(p, "fdr")


def test_compare_pairs_queries_by_id_and_corrects_over_the_systems():
    shuffled = list(reversed(range(N)))  # the same values, listed in another query order
    per_query = {
        "base": values(BASE),
        "small": {"qids": [QIDS[i] for i in shuffled], "mrr@10": [SMALL[i] for i in shuffled]},
        "large": values(LARGE),
    }
    rows = compare(per_query, "base", Settings(metrics=("mrr@10",)))
    by_system = {r.system: r for r in rows}
    assert [r.system for r in rows] == ["small", "large"]
    small, large = by_system["small"], by_system["large"]
    assert small.diff == pytest.approx(SMALL.mean() - BASE.mean()) and small.n == N
    assert small.p == pytest.approx(stats.ttest_rel(SMALL, BASE).pvalue)
    assert small.p_adjusted == pytest.approx(adjust([small.p, large.p], "holm")[0])
    assert (small.verdict, large.verdict) == ("tie", "better")
    assert large.ci_low > 0 and small.ci_low <= 0 <= small.ci_high


def test_compare_agrees_with_ranx_compare_on_real_rankings():
    """From rankings to p-values: our per-query metrics and paired t-test give ranx.compare's p-value."""
    from ranx import Qrels, Run
    from ranx import compare as ranx_compare

    rng = np.random.default_rng(1)
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(60)}
    pool = [f"d{i}" for i in range(60)]

    def ranking(skill: float) -> dict[str, list[str]]:
        out = {}
        for i in range(60):
            others = [p for p in rng.permutation(pool) if p != f"d{i}"][:19]
            at = int(rng.integers(0, 3)) if rng.random() < skill else int(rng.integers(0, 20))
            out[f"q{i}"] = others[:at] + [f"d{i}"] + others[at:]
        return out

    rankings = {"a": ranking(0.3), "b": ranking(0.8)}
    ours = compare(
        {n: per_query_values(r, qrels) for n, r in rankings.items()},
        "a",
        Settings(metrics=("mrr@10",), correction="none"),
    )[0]
    runs = []
    for name, r in rankings.items():
        run = Run({q: {p: float(20 - i) for i, p in enumerate(pids)} for q, pids in r.items()})
        run.name = name
        runs.append(run)
    report = ranx_compare(Qrels(qrels), runs, ["mrr@10"], stat_test="student", max_p=0.05)
    assert ours.mean == pytest.approx(report.results["b"]["mrr@10"])
    assert ours.p == pytest.approx(report.comparisons["a", "b"]["mrr@10"]["p_value"], rel=1e-9)


def test_ties_with_best_marks_noise_as_a_tie_and_never_fakes_one():
    # SMALL leads BASE by 0.008 in the mean (noise); halving every reciprocal rank is a real loss.
    per_query = {"best": values(SMALL), "close": values(BASE), "far": values(BASE / 2)}
    per_query["old"] = None  # a run saved before per-query values existed
    marks = ties_with_best(per_query, "best", "mrr@10")
    assert marks == {"best": "best", "close": "tie", "far": "worse", "old": "n/a"}
    # The best run itself without per-query values: nothing can be said about anyone.
    assert set(ties_with_best({"best": None, "far": values(BASE)}, "best", "mrr@10").values()) == {"n/a"}


def test_pairing_needs_shared_queries_and_the_metric():
    with pytest.raises(ValueError, match="share no query"):
        paired(values(BASE), {"qids": ["x"], "mrr@10": [1.0]}, "mrr@10")
    with pytest.raises(KeyError, match="no 'ndcg@10'"):
        paired(values(BASE), values(BASE), "ndcg@10")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"test": "wilcoxon"}, "significance.test must be one of t-test, randomization"),
        ({"alpha": 5}, "significance.alpha must be a number in"),
        ({"resamples": 10}, "significance.resamples must be a whole number >= 100"),
        ({"metrics": []}, "significance.metrics must name at least one metric"),
    ],
)
def test_bad_settings_name_the_setting(setting, message):
    with pytest.raises(ValueError, match=message):
        Settings(**setting)


def test_an_unknown_significance_setting_is_named():
    with pytest.raises(ValueError, match=r"significance.alfa is not a setting; choose from alpha, "):
        settings_from({"alfa": 0.01})
    assert settings_from({"metrics": ["mrr@10"], "test": "randomization"}).metrics == ("mrr@10",)
