"""Which evaluation `best.pt` holds: the start unless an epoch beats it, by its mean or by a paired test."""

import pytest
from scipy.stats import ttest_rel

from twotower.evaluation.significance import improvement_p
from twotower.training.callbacks import TwoTowerCheckpoint

QIDS = [f"q{i}" for i in range(8)]


def entry(epoch: int, rr: list[float]) -> dict:
    return {"epoch": epoch, "metrics": {"mrr@10": sum(rr) / len(rr)}, "per_query": {"qids": QIDS, "mrr@10": rr}}


def pick(callback: TwoTowerCheckpoint, history: list[dict]) -> int:
    for e in history:  # what _consider does, without a trainer
        if callback._better(e):
            callback.best_epoch, callback.best_metrics, callback._best_per_query = (
                e["epoch"],
                e["metrics"],
                e["per_query"],
            )
    return callback.best_epoch


START = entry(-1, [1, 0.5, 0.5, 0, 1, 0.25, 0, 1])
WORSE = entry(0, [0.5, 0.5, 0.33, 0, 1, 0.25, 0, 0.5])
SLIGHTLY_BETTER = entry(1, [1, 0.5, 0.5, 0, 1, 0.25, 0.1, 1])  # one query moves: a mean gain inside the noise
CLEARLY_BETTER = entry(2, [1, 1, 1, 0.5, 1, 0.5, 0.5, 1])


def test_the_start_stays_best_when_fine_tuning_makes_the_model_worse(tmp_path):
    assert pick(TwoTowerCheckpoint(str(tmp_path)), [START, WORSE]) == -1


def test_by_mean_any_gain_wins_but_with_significance_only_a_real_one(tmp_path):
    assert pick(TwoTowerCheckpoint(str(tmp_path)), [START, WORSE, SLIGHTLY_BETTER]) == 1
    assert pick(TwoTowerCheckpoint(str(tmp_path), significance=0.05), [START, WORSE, SLIGHTLY_BETTER]) == -1
    assert pick(TwoTowerCheckpoint(str(tmp_path), significance=0.05), [START, SLIGHTLY_BETTER, CLEARLY_BETTER]) == 2


def test_the_paired_p_value_is_scipys_one_sided_ttest_rel():
    expected = ttest_rel(CLEARLY_BETTER["per_query"]["mrr@10"], START["per_query"]["mrr@10"], alternative="greater")
    p = improvement_p(START["per_query"], CLEARLY_BETTER["per_query"], "mrr@10", "max")
    assert p == pytest.approx(expected.pvalue) and p < 0.05
    # Nothing to pair (an old checkpoint's history without per-query values): the earlier model stays.
    assert improvement_p({}, CLEARLY_BETTER["per_query"], "mrr@10", "max") == 1.0


def test_a_significance_outside_0_1_names_the_setting(tmp_path):
    with pytest.raises(ValueError, match="callbacks.twotower_checkpoint.significance"):
        TwoTowerCheckpoint(str(tmp_path), significance=5)
