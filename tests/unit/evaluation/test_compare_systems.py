"""How `evaluate.py` reads its systems: one checkpoint or several, and which system the others are compared with."""

import pytest

from twotower.evaluation.comparison import comparison_markdown
from twotower.evaluation.evaluate import checkpoint_list, compare_systems, display_name
from twotower.evaluation.significance import Settings

RR_A = [1.0, 0.5, 0.0, 1.0, 0.25, 0.0, 1.0, 0.5]
RR_B = [1.0, 1.0, 0.5, 1.0, 0.5, 0.25, 1.0, 1.0]
QIDS = [f"q{i}" for i in range(len(RR_A))]


def test_one_checkpoint_a_list_or_repeated_overrides():
    assert checkpoint_list("a.pt") == ["a.pt"] and checkpoint_list(None) == []
    assert checkpoint_list(["a.pt", "b.pt"]) == ["a.pt", "b.pt"]
    # Hydra keeps only the last of `ckpt=a.pt ckpt=b.pt`; its override list has both.
    assert checkpoint_list("b.pt", ["baselines=[bm25]", "ckpt=a.pt", "ckpt=b.pt"]) == ["a.pt", "b.pt"]
    with pytest.raises(ValueError, match="ckpt lists a.pt more than once"):
        checkpoint_list(["a.pt", "a.pt"])


def test_the_first_system_is_the_baseline_unless_compare_to_names_one():
    per_query = {
        "/runs/x/checkpoints/best.pt": {"qids": QIDS, "mrr@10": RR_B},
        "bm25": {"qids": QIDS, "mrr@10": RR_A},
    }
    settings = Settings(metrics=("mrr@10",), resamples=1000)
    first = compare_systems(per_query, None, settings)
    assert [(r.system, r.baseline) for r in first] == [("bm25", "/runs/x/checkpoints/best.pt")]
    by_name = compare_systems(per_query, "bm25", settings)
    shown = compare_systems(per_query, "x/best.pt", settings)  # the name the table shows works too
    assert by_name[0].diff == pytest.approx(sum(RR_B) / 8 - sum(RR_A) / 8) == -first[0].diff
    assert shown[0].baseline == "/runs/x/checkpoints/best.pt"
    with pytest.raises(ValueError, match=r"compare_to='minilm' is not one of the systems evaluated: x/best.pt, bm25"):
        compare_systems(per_query, "minilm", settings)
    assert compare_systems({"bm25": per_query["bm25"]}, None, settings) == []  # one system: nothing to compare
    table = comparison_markdown(by_name, settings, display_name)
    assert "| x/best.pt | mrr@10 |" in table and "paired t-test" in table
