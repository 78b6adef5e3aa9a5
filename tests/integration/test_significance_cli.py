"""`python evaluate.py ckpt=A ckpt=B baselines=[bm25] compare_to=bm25`: every system against BM25 with p-values
and confidence intervals, printed and written beside the metrics, with each system's run and per-query values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats
from tiny_models import make_checkpoint

from twotower.data.msmarco import read_collection, read_qrels, read_run
from twotower.evaluation.metrics import per_query_values
from twotower.evaluation.significance import adjust

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def evaluated(small_msmarco, tmp_path_factory):
    """Two tiny untrained checkpoints and BM25 on the small real dev subset (60 queries)."""
    tmp = tmp_path_factory.mktemp("significance")
    texts = list(read_collection(small_msmarco / "msmarco-passage" / "collection.tsv").values())
    ckpts = [make_checkpoint(tmp / name / "best.pt", texts, seed=seed) for seed, name in enumerate(("run-a", "run-b"))]
    out = tmp / "eval"
    done = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            f"ckpt={ckpts[0]}",
            f"ckpt={ckpts[1]}",  # repeated, as a user types it: both are evaluated
            "baselines=[bm25]",
            "compare_to=bm25",
            "significance.resamples=2000",
            f"hydra.run.dir={out}",
        ],
        cwd=ROOT,
        env={**os.environ, "TWOTOWER_DATA": str(small_msmarco)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout, small_msmarco


def test_every_system_is_compared_with_bm25_with_p_values_and_intervals(evaluated):
    out, stdout, _ = evaluated
    assert "Against bm25" in stdout and "paired t-test" in stdout and "Holm-corrected" in stdout
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert [(r["system"].split("/")[-2], r["metric"]) for r in rows] == [
        (run, metric) for metric in ("mrr@10", "recall@10", "ndcg@10") for run in ("run-a", "run-b")
    ]
    for row in rows:
        assert row["baseline"] == "bm25" and row["n"] == 60
        assert row["ci_low"] <= row["diff"] <= row["ci_high"]
        assert f"{row['diff']:+.4f}" in (out / "comparison.md").read_text()
    # Untrained towers against BM25 on real queries: a real, significant loss, not a tie.
    mrr = [r for r in rows if r["metric"] == "mrr@10"]
    assert all(r["verdict"] == "worse" and r["p_adjusted"] < 0.05 and r["ci_high"] < 0 for r in mrr)


def test_the_p_values_are_scipys_on_the_saved_per_query_values(evaluated):
    out, _, _ = evaluated
    saved = {p.parent.name: json.loads(p.read_text()) for p in sorted((out / "systems").glob("*/per_query.json"))}
    assert sorted(saved) == ["bm25", "run-a_best.pt", "run-b_best.pt"]
    rows = [r for r in json.loads((out / "comparison.json").read_text())["rows"] if r["metric"] == "ndcg@10"]
    expected = [
        stats.ttest_rel(saved[name]["ndcg@10"], saved["bm25"]["ndcg@10"]).pvalue for name in saved if name != "bm25"
    ]
    assert [r["p"] for r in rows] == pytest.approx(expected, rel=1e-9)
    assert [r["p_adjusted"] for r in rows] == pytest.approx(adjust(expected, "holm"), rel=1e-9)


def test_each_run_file_scores_what_metrics_json_says(evaluated):
    out, _, data = evaluated
    metrics = json.loads((out / "metrics.json").read_text())
    qrels = read_qrels(data / "msmarco-passage" / "qrels.dev.tsv")
    for folder in (out / "systems").iterdir():
        run = read_run(folder / "run.trec")
        assert max(len(docs) for docs in run.values()) == 100  # top 100 per query, no more
        name = next(n for n in metrics if folder.name in (n, f"{Path(n).parent.name}_{Path(n).name}"))
        ranking = {q: sorted(docs, key=docs.__getitem__, reverse=True) for q, docs in run.items()}
        recall = per_query_values(ranking, qrels, ["recall@100"])["recall@100"]
        assert sum(recall) / len(recall) == pytest.approx(metrics[name]["metrics"]["recall@100"])
