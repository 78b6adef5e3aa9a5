"""The Hydra entry: every strategy config instantiates and a run writes log, results and plots."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from twotower.emb_opt import SearchInterrupted, SearchLog
from twotower.emb_opt.cli import CONF_DIR, run_search

SMALL = [
    "vector_db.n=3000",
    "vector_db.dim=8",
    "vector_db.n_clusters=10",
    "start.n=20",
    "iterations=4",
    "k=8",
    "progress=false",
    "max_calls=null",
]


def config(*overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name="config", overrides=[*SMALL, *overrides])


@pytest.mark.parametrize("strategy", ["beam", "rl", "topk_continuous"])
def test_each_strategy_runs_and_writes_its_outputs(strategy, tmp_path):
    log = run_search(config(f"strategy={strategy}"), tmp_path)

    assert log.iterations == 4
    for name in ("results.parquet", "trajectories.png", "best_so_far.png", "log/meta.json"):
        assert (tmp_path / name).exists(), name
    results = pd.read_parquet(tmp_path / "results.parquet")
    assert results["score"].is_monotonic_decreasing
    assert SearchLog.load(tmp_path / "log").iterations == 4


def test_numpy_backend_and_a_filter_from_the_config(tmp_path):
    cfg = config(
        "vector_db.backend=numpy", "+filter._target_=twotower.emb_opt.filters.MaxDistance", "+filter.max_distance=1e9"
    )
    assert run_search(cfg, tmp_path).iterations == 4


def test_module_entry_point_runs_with_overrides(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "twotower.emb_opt.cli", *SMALL, "iterations=2", f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 iterations" in out.stdout and (tmp_path / "best_so_far.png").exists()


def test_a_failing_score_still_leaves_the_log_on_disk(tmp_path):
    # Any importable function can be the score: here math.sqrt, which cannot take an item and raises.
    cfg = config("score=python", "score.fn.path=math.sqrt", "score.batched=false")
    with pytest.raises(SearchInterrupted, match="TypeError"):
        run_search(cfg, tmp_path)
    assert SearchLog.load(tmp_path / "log").stop_reason.startswith("error: TypeError")
