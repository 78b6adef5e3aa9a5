"""Sweeps that survive a failing job, DDP on two CPU processes, and resuming a killed run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from twotower.reporting.sweep import collect, plot, report
from twotower.reporting.sweep import main as sweep_main

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.batch_size=32",
    "trainer.limit_train_batches=6",
    "logger=csv",
    "model.tower.output_dim=32",
    "tokenizer=glove",
    "~callbacks.progress_bar",
]


def train_py(args, data, check=True):
    # The caller's PYTHONPATH stays (a worktree tested with PYTHONPATH=src runs its own code in the child too).
    path = os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TWOTOWER_DATA": str(data), "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, check=check, capture_output=True, text=True
    )


def test_multirun_reports_a_failed_job_and_keeps_the_others(small_msmarco, tmp_path, capsys):
    train_py(
        ["-m", "loss.temperature=0.05,-1", "trainer.max_epochs=1", f"hydra.sweep.dir={tmp_path}", *TINY], small_msmarco
    )
    jobs = collect(tmp_path)
    assert [j.ok for j in jobs] == [True, False]
    assert 0 < jobs[0].metrics["mrr@10"] <= 1
    assert "temperature must be > 0" in jobs[1].error
    written = plot(jobs, "mrr@10", tmp_path)
    assert [p.name for p in written] == ["leaderboard.png", "slice.png"]  # one finished job: nothing to weigh
    assert all(p.stat().st_size > 0 for p in written)
    assert report(jobs, "mrr@10") is jobs[0]
    assert report(jobs, "MRR@10") is jobs[0]  # metric names are matched without case
    # The finished job kept its best evaluation's run and per-query values: the sweep's tie test reads them.
    best = tmp_path / jobs[0].path.name / "eval" / "best"
    assert (best / "run.trec").is_file() and (tmp_path / jobs[0].path.name / "eval" / "last" / "run.trec").is_file()
    assert len(jobs[0].per_query["mrr@10"]) == len(jobs[0].per_query["qids"]) == 60
    assert sum(jobs[0].per_query["mrr@10"]) / 60 == pytest.approx(jobs[0].metrics["mrr@10"])
    assert jobs[0].vs_best == "best" and "statistically tied with the best" in capsys.readouterr().out

    # A metric no job has is one line naming the ones there are, not a table of dashes and no plots.
    with pytest.raises(SystemExit) as exit_info:
        sweep_main([str(tmp_path), "--metric", "mrr@100"])
    assert exit_info.value.code == 2
    assert "no run has the metric 'mrr@100'; available: " in capsys.readouterr().err


def test_ddp_on_two_cpu_processes(small_msmarco, tmp_path):
    train_py(
        ["trainer=ddp", "trainer.accelerator=cpu", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}", *TINY],
        small_msmarco,
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [-1, 0] and (tmp_path / "checkpoints" / "best.pt").exists()


def test_run_killed_mid_epoch_resumes_to_the_same_metrics(small_msmarco, tmp_path):
    common = ["trainer.max_epochs=2", "model=gru", "model.tower.hidden_size=16", "model.tower.dropout=0.2", *TINY]
    train_py([f"hydra.run.dir={tmp_path / 'straight'}", *common], small_msmarco)

    killed = tmp_path / "killed"
    crash = train_py(
        [
            f"hydra.run.dir={killed}",
            *common,
            "+callbacks.crash._target_=crash_helpers.HardCrash",
            "+callbacks.crash.at_step=9",
        ],
        small_msmarco,
        check=False,
    )  # step 9 is inside the second epoch
    assert crash.returncode == 137 and not (killed / "metrics.json").exists()
    train_py([f"hydra.run.dir={killed}", *common, f"ckpt_path={killed / 'checkpoints' / 'last.ckpt'}"], small_msmarco)

    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    resumed = json.loads((killed / "metrics.json").read_text())
    assert [e["epoch"] for e in resumed["epochs"]] == [-1, 0, 1]
    for name, value in straight["last"].items():
        assert resumed["last"][name] == pytest.approx(value, abs=1e-3), name


def test_an_optuna_sweep_persists_its_study_and_a_rerun_extends_it(small_msmarco, tmp_path):
    import optuna

    sweep = [
        "-m",
        "hparams_search=quick",
        "hydra.sweeper.n_trials=2",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={tmp_path}",
        *TINY,
    ]
    train_py(sweep, small_msmarco)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert len(optuna.load_study(study_name="twotower-quick", storage=storage).trials) == 2
    # Run again into the same folder (after an interruption, or to search longer): the same study goes on.
    train_py(sweep, small_msmarco)
    study = optuna.load_study(study_name="twotower-quick", storage=storage)
    assert len(study.trials) == 4 and study.best_value > 0
    jobs = collect(tmp_path)
    assert len(jobs) == 4 and all(j.ok for j in jobs)
    assert {p.name for p in plot(jobs, "mrr@10", tmp_path)} == {"leaderboard.png", "slice.png", "importance.png"}
