"""Is a difference between two systems real? Paired tests, bootstrap intervals and multiple-comparison correction
over per-query metric values, the one home of the statistics that `evaluate.py`, the training callbacks, the
leaderboard and the sweep report use.

Two systems scored on the same queries are compared *per query* (paired): the difference of their means is
the mean of the per-query differences `d`, and its noise is that of `d`, far smaller than that of either mean.

* `paired_p`: a paired test of "the means are equal". `t-test` is scipy's `ttest_rel`; `randomization` is
  Fisher's randomisation (sign-flip permutation) test, scipy's `permutation_test` with
  `permutation_type="samples"` (what ranx calls "fisher"; exact when 2^n is at most `resamples`).
* `bootstrap_ci`: a 95% confidence interval of the mean difference, scipy's `bootstrap` (BCa) over `d`.
* `adjust`: Holm or Bonferroni correction when several systems are compared with one baseline.
* `compare`: every system against a baseline, per metric (the family a correction covers is one metric's
  comparisons); `ties_with_best`: which runs cannot be told apart from the best one.

    per_query = {"bm25": {"qids": [...], "mrr@10": [...]}, "minilm": {...}}
    rows = compare(per_query, baseline="bm25", metrics=["mrr@10"])
    rows[0].diff, rows[0].p_adjusted, (rows[0].ci_low, rows[0].ci_high)

Per-query values are `{"qids": [...], metric: [value per query], ...}` (`metrics.per_query_values`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

log = logging.getLogger(__name__)

PerQuery = Mapping[str, Sequence]
TESTS = ("t-test", "randomization")
CORRECTIONS = ("holm", "bonferroni", "none")
ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class Settings:
    """How differences are tested: the `significance` node of `evaluate.yaml`, with its defaults."""

    metrics: tuple[str, ...] = ("mrr@10", "recall@10", "ndcg@10")
    test: str = "t-test"
    correction: str = "holm"
    alpha: float = 0.05
    confidence: float = 0.95
    resamples: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        if not self.metrics:
            raise ValueError("significance.metrics must name at least one metric, e.g. [mrr@10]")
        if self.test not in TESTS:
            raise ValueError(f"significance.test must be one of {', '.join(TESTS)}, got {self.test!r}")
        if self.correction not in CORRECTIONS:
            raise ValueError(
                f"significance.correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}"
            )
        for name in ("alpha", "confidence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise ValueError(f"significance.{name} must be a number in (0, 1), got {value!r}")
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or self.resamples < 100:
            raise ValueError(f"significance.resamples must be a whole number >= 100, got {self.resamples!r}")


def settings_from(config: Mapping | None) -> Settings:
    """`Settings` from the `significance` node of a config; a key it does not know is refused by name."""
    config = dict(config or {})
    known = set(Settings.__dataclass_fields__)
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"significance.{unknown[0]} is not a setting; choose from {', '.join(sorted(known))}")
    return Settings(**config)


@dataclass(frozen=True)
class Comparison:
    """One system against the baseline on one metric, over the `n` queries both scored."""

    system: str
    baseline: str
    metric: str
    n: int
    mean: float
    baseline_mean: float
    diff: float  # mean - baseline_mean = the mean per-query difference
    p: float  # the paired test's two-sided p-value
    p_adjusted: float  # after the correction over the systems compared on this metric
    ci_low: float
    ci_high: float
    significant: bool  # p_adjusted < alpha

    @property
    def verdict(self) -> str:
        """`better` or `worse` when the difference is significant, else `tie`."""
        if not self.significant:
            return "tie"
        return "better" if self.diff > 0 else "worse"

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def paired(a: PerQuery, b: PerQuery, metric: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(qids, a's values, b's values) of `metric` over the queries both scored, in a's order."""
    for name, values in (("first", a), ("second", b)):
        if metric not in values or "qids" not in values:
            raise KeyError(f"the {name} system's per-query values hold no {metric!r} (they have: {sorted(values)})")
    b_by_q = dict(zip(b["qids"], b[metric]))
    qids = [q for q in a["qids"] if q in b_by_q]
    if not qids:
        raise ValueError(f"the two systems share no query to pair on {metric}: were they scored on the same split?")
    a_by_q = dict(zip(a["qids"], a[metric]))
    return qids, np.array([a_by_q[q] for q in qids], dtype=np.float64), np.array([b_by_q[q] for q in qids], dtype=float)


def paired_p(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    test: str = "t-test",
    alternative: str = "two-sided",
    resamples: int = 10_000,
    seed: int = 0,
) -> float:
    """p-value of a paired test that x and y (the same queries, in the same order) have equal means;
    `alternative="greater"` tests mean(x) > mean(y). 1.0 when every difference is zero (nothing to test)."""
    from scipy import stats

    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values must be two lists of the same length, got {x.shape} and {y.shape}")
    d = x - y
    if len(d) < 2 or not np.any(d):
        return 1.0
    if test == "t-test":
        if np.ptp(d) == 0:  # a constant non-zero difference: no variance, the t statistic is infinite
            return 0.0 if alternative == "two-sided" or (alternative == "greater") == (d[0] > 0) else 1.0
        return float(stats.ttest_rel(x, y, alternative=alternative).pvalue)
    result = stats.permutation_test(
        (x, y),
        lambda a, b, axis: np.mean(a - b, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=resamples,
        alternative=alternative,
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)


def bootstrap_ci(
    d: Sequence[float] | np.ndarray, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """A `confidence` interval of the mean of the paired differences `d`: scipy's BCa bootstrap over queries."""
    from scipy import stats

    d = np.asarray(d, dtype=np.float64)
    if len(d) < 2 or np.ptp(d) == 0:  # every query moved by the same amount: the interval is that point
        mean = float(d.mean()) if len(d) else 0.0
        return mean, mean
    result = stats.bootstrap(
        (d,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="BCa",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def adjust(p_values: Sequence[float], correction: str = "holm") -> list[float]:
    """p-values corrected for testing them together: Holm's step-down or Bonferroni (both cap at 1), or as given."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if correction == "none" or m == 0:
        return p.tolist()
    if correction == "bonferroni":
        return np.minimum(p * m, 1.0).tolist()
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))  # Holm: the i-th smallest times (m - i)
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out.tolist()


def compare(per_query: Mapping[str, PerQuery], baseline: str, settings: Settings | None = None) -> list[Comparison]:
    """Every other system against `baseline`, for each of `settings.metrics`, in system order per metric."""
    settings = settings or Settings()
    if baseline not in per_query:
        raise ValueError(f"compare_to={baseline!r} is not one of the systems evaluated: {', '.join(per_query)}")
    others = [s for s in per_query if s != baseline]
    rows: list[Comparison] = []
    for metric in settings.metrics:
        raw = []
        for system in others:
            qids, base, mine = paired(per_query[baseline], per_query[system], metric)
            if len(qids) < len(per_query[system]["qids"]) or len(qids) < len(per_query[baseline]["qids"]):
                log.warning("%s and %s share %d queries; they are compared on those only", system, baseline, len(qids))
            d = mine - base
            p = paired_p(mine, base, settings.test, resamples=settings.resamples, seed=settings.seed)
            low, high = bootstrap_ci(d, settings.confidence, settings.resamples, settings.seed)
            raw.append((system, len(qids), float(mine.mean()), float(base.mean()), float(d.mean()), p, low, high))
        for (system, n, mean, base_mean, diff, p, low, high), p_adj in zip(
            raw, adjust([r[5] for r in raw], settings.correction)
        ):
            rows.append(
                Comparison(
                    system, baseline, metric, n, mean, base_mean, diff, p, p_adj, low, high, p_adj < settings.alpha
                )
            )
    return rows


def ties_with_best(
    per_query: Mapping[str, PerQuery | None], best: str, metric: str, settings: Settings | None = None
) -> dict[str, str]:
    """{run: "best" | "tie" | "worse" | "n/a"} against the `best` run on `metric`: `tie` when the paired test
    (corrected over the runs compared) cannot tell the run from the best; `n/a` when either has no per-query
    values of `metric`, never a guessed tie."""
    settings = settings or Settings()
    marks = {name: "n/a" for name in per_query}
    best_values = per_query.get(best)
    if not best_values or metric not in best_values:
        return marks
    marks[best] = "best"
    tested = [n for n, v in per_query.items() if n != best and v and metric in v and "qids" in v]
    p_values = []
    for name in list(tested):
        try:
            _, best_v, other_v = paired(best_values, per_query[name], metric)
        except ValueError:  # scored on other queries (another split): nothing to pair, so no verdict
            tested.remove(name)
            continue
        p_values.append(paired_p(best_v, other_v, settings.test, resamples=settings.resamples, seed=settings.seed))
    for name, p in zip(tested, adjust(p_values, settings.correction)):
        marks[name] = "tie" if p >= settings.alpha else "worse"
    return marks


def improvement_p(before: PerQuery, after: PerQuery, metric: str, mode: str = "max") -> float:
    """One-sided paired t-test p-value that `after` improves on `before` in `metric` (`mode="max"`: higher is
    better) over the queries both scored; 1.0 when there is nothing to pair (then `before` stands)."""
    if not before or not after or metric not in before or metric not in after:
        return 1.0
    try:
        _, old, new = paired(before, after, metric)
    except ValueError:
        return 1.0
    return paired_p(new, old, "t-test", alternative="greater" if mode == "max" else "less")
