"""Whether a trained adapter is served: it must beat plain search on held-back validation queries, clearly.

"Clearly" is a one-sided paired t-test (`scipy.stats.ttest_rel`) of the monitored metric per query, adapter
against plain search on the same queries; no guard metric may fall by more than `max_val_drop` either.
A rejected model is kept (and can be forced into use) but `search(deep_memory=True)` does not use it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import ttest_rel

from twotower.deep_memory.settings import TrainingSettings


def paired_test(base: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    """(t statistic, one-sided p-value) that `new` beats `base`, query by query.

    No change at all is t=0, p=1; the same gain on every query (no variance) is t=+-inf, p=0 or 1.
    """
    diff = np.asarray(new, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    if len(diff) < 2 or not diff.any():
        return 0.0, 1.0
    if np.ptp(diff) == 0:
        return math.copysign(math.inf, diff[0]), 0.0 if diff[0] > 0 else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-constant differences: the result is still usable
        result = ttest_rel(new, base, alternative="greater")
    return float(result.statistic), float(result.pvalue)


def judge(
    base: dict[str, np.ndarray], new: dict[str, np.ndarray], settings: TrainingSettings
) -> tuple[bool, str, float, float]:
    """Accept a model only if it beats plain search on held-back validation queries, clearly, and no guard
    metric falls by more than `max_val_drop`. Returns (accepted, why, t and p of the monitored gain)."""
    m = settings.monitor
    gain = float(new[m].mean() - base[m].mean())
    t, p = paired_test(base[m], new[m])
    head = (
        f"validation {m} {base[m].mean():.4f} -> {new[m].mean():.4f} ({gain:+.4f}, paired t={t:.2f}, "
        f"p={p:.3g}, {len(base[m])} queries)"
    )
    if gain <= settings.min_val_gain or p > settings.max_val_p:
        return (
            False,
            (
                f"{head}: not a clear gain over plain search (needs > {settings.min_val_gain:+.4f} and p <= "
                f"{settings.max_val_p}); the model is kept but not used by default"
            ),
            t,
            p,
        )
    for name in settings.guard_metrics:
        drop = float(base[name].mean() - new[name].mean())
        if drop > settings.max_val_drop:
            return (
                False,
                (
                    f"{head}, but {name} fell by {drop:.4f} (> {settings.max_val_drop}); the model is kept but not used by default"
                ),
                t,
                p,
            )
    return True, head, t, p
