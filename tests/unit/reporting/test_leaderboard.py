"""The checkpoint leaderboard over a folder of runs: single runs, a sweep, a run that died before metrics.json."""

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from twotower.cli import main
from twotower.models.checkpoint import save_checkpoint
from twotower.reporting.leaderboard import collect_runs, leaderboard_table, mark_ties, rank_runs
from twotower.reporting.leaderboard_plot import plot_leaderboard

CONFIG = (
    "model:\n  tower:\n    _target_: twotower.models.recurrent.{tower}\nloss:\n  _target_: twotower.losses.{loss}\n"
)


def metrics(mrr10: float, recall1: float, epochs: int = 3) -> dict:
    history = [
        {
            "epoch": e,
            "train_loss": 2.0 - 0.3 * e,
            "mrr@10": mrr10 * (e + 1) / epochs,
            "mrr": mrr10 * (e + 1) / epochs + 0.01,
            "recall@1": recall1,
            "recall@5": 0.5,
            "recall@10": 0.6,
        }
        for e in range(epochs)
    ]
    best = dict(history[-1])
    del best["epoch"], best["train_loss"]
    return {
        "monitor": "mrr@10",
        "best_epoch": epochs - 1,
        "best": best,
        "last": best,
        "epochs": history,
        "best_checkpoint": "checkpoints/best.pt",
    }


def write_run(folder: Path, result: dict, tower="MeanTower", loss="ContrastiveLoss", ckpt_bytes=1000) -> Path:
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(result))
    (folder / "config.yaml").write_text(CONFIG.format(tower=tower, loss=loss))
    (folder / "checkpoints" / "best.pt").write_bytes(b"\0" * ckpt_bytes)
    (folder / "csv").mkdir()
    (folder / "csv" / "metrics.csv").write_text("epoch,eval/mrr@10\n")
    return folder


@pytest.fixture
def outputs(tmp_path) -> Path:
    root = tmp_path / "outputs"
    write_run(root / "runs" / "2026-01-01_mean", metrics(0.30, 0.20), ckpt_bytes=5 * 2**20)
    sweep = root / "multirun" / "2026-01-02_sweep"
    write_run(sweep / "0_lr=0.001", metrics(0.35, 0.18), tower="GRUTower")
    write_run(sweep / "1_lr=0.01", metrics(0.25, 0.22, epochs=2), tower="GRUTower", loss="TripletLoss")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    # Killed after an epoch: best.pt was written, metrics.json never was.
    died = root / "runs" / "2026-01-03_died" / "checkpoints"
    died.mkdir(parents=True)
    save_checkpoint(
        died / "best.pt",
        {
            "model_state_dict": {"w": torch.zeros(1)},
            "embedding_matrix": torch.zeros(2, 2),
            "word_to_index": {},
            "index_to_word": [],
            "model_config": {},
            "epoch": 0,
            "eval_results": {},
            "wandb_run_id": None,
            "training_stats": {
                "config": {"monitor": "mrr@10"},
                "best_epoch": 0,
                "best_metrics": {"mrr@10": 0.28, "recall@1": 0.1},
                "training_stats": [{"epoch": 0, "train_loss": 1.5}],
                "evaluation_stats": [{"epoch": 0, "mrr@10": 0.28, "recall@1": 0.1}],
            },
        },
    )
    (root / "runs" / "2026-01-04_just_started").mkdir()
    (root / "emb_opt").mkdir()
    (root / "emb_opt" / "metrics.json").write_text('{"score": 1}')  # another tool's file, not a training run
    return root


def test_runs_are_ranked_by_the_chosen_metric(outputs):
    ranked = rank_runs(collect_runs(outputs), "mrr@10")

    assert [r.name for r in ranked] == [
        "multirun/2026-01-02_sweep/0_lr=0.001",
        "runs/2026-01-01_mean",
        "runs/2026-01-03_died",
        "multirun/2026-01-02_sweep/1_lr=0.01",
    ]
    assert [r.metrics["mrr@10"] for r in ranked] == pytest.approx([0.35, 0.30, 0.28, 0.25])
    assert [r.name for r in rank_runs(ranked, "recall@1")][0].endswith("1_lr=0.01")


def test_each_run_carries_sweep_model_size_date_and_history(outputs):
    runs = {r.name: r for r in collect_runs(outputs)}
    swept, single, died = (
        runs["multirun/2026-01-02_sweep/1_lr=0.01"],
        runs["runs/2026-01-01_mean"],
        runs["runs/2026-01-03_died"],
    )

    assert swept.sweep == "2026-01-02_sweep" and single.sweep is None
    assert swept.model == "GRUTower + TripletLoss" and single.model == "MeanTower + ContrastiveLoss"
    assert single.size_bytes == 5 * 2**20 and single.date.startswith("20")
    assert single.history_file == single.path / "csv" / "metrics.csv"
    assert [e["epoch"] for e in swept.epochs] == [0, 1]
    # The run without metrics.json is read from its checkpoint's training history.
    assert died.best_epoch == 0 and died.epochs == [{"epoch": 0, "train_loss": 1.5, "mrr@10": 0.28, "recall@1": 0.1}]
    assert died.history_file == died.checkpoint


def test_an_unknown_metric_lists_the_available_ones(outputs):
    with pytest.raises(KeyError, match="no run has the metric 'mrr@1000'.*recall@1"):
        rank_runs(collect_runs(outputs), "mrr@1000")


def test_the_table_shows_mrr_and_recall_at_1_5_10(outputs):
    console = Console(record=True, width=250)
    console.print(leaderboard_table(rank_runs(collect_runs(outputs), "recall@1"), "recall@1", width=250))
    text = console.export_text()

    header = next(line for line in text.splitlines() if "run" in line and "R@1" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")][:9] == [
        "#",
        "run",
        "sweep",
        "model",
        "R@1",
        "MRR",
        "R@5",
        "R@10",
        "best epoch",
    ]
    assert "5.0 MB" in text and "csv/metrics.csv" in text and "2026-01-02_sweep" in text

    narrow = Console(record=True, width=100)
    narrow.print(leaderboard_table(rank_runs(collect_runs(outputs), "mrr@10"), "mrr@10", width=100))
    text = narrow.export_text()
    assert "history, model, date left out" in text and "0.3500" in text and "GRUTower" not in text


def test_cli_writes_json_and_a_plot(outputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["leaderboard", "--runs", str(outputs), "--metric", "MRR@10", "--json"]) == 0
    board = json.loads(capsys.readouterr().out)

    assert board["metric"] == "mrr@10"
    assert [r["rank"] for r in board["runs"]] == [1, 2, 3, 4]
    first = board["runs"][0]
    assert first["name"].endswith("0_lr=0.001") and first["metrics"]["mrr@10"] == pytest.approx(0.35)
    assert {"sweep", "model", "size_bytes", "date", "history_file", "checkpoint", "epochs"} <= set(first)

    png = tmp_path / "board.png"
    assert main(["leaderboard", "--runs", str(outputs), "--top", "3", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert "0_lr=0.001" in capsys.readouterr().out


def test_an_empty_or_missing_folder_says_so(tmp_path, capsys):
    assert main(["leaderboard", "--runs", str(tmp_path)]) == 1
    assert "no training runs" in capsys.readouterr().out
    assert main(["leaderboard", "--runs", str(tmp_path / "nope")]) == 1
    assert "no runs folder" in capsys.readouterr().err


def test_plot_needs_a_run_with_the_metric(outputs, tmp_path):
    with pytest.raises(ValueError, match="no run has the metric"):
        plot_leaderboard(collect_runs(outputs), "ndcg@1", tmp_path / "x.png")


def write_per_query(run: Path, rr: list[float]) -> None:
    (run / "eval" / "best").mkdir(parents=True)
    (run / "eval" / "best" / "per_query.json").write_text(
        json.dumps({"qids": [f"q{i}" for i in range(len(rr))], "mrr@10": rr})
    )


def test_runs_the_paired_test_cannot_tell_from_the_best_are_marked_tied(tmp_path, capsys, monkeypatch):
    """Per-query RR@10 on 200 queries: `close` trails the best by 0.005 in the mean (wins and losses that
    nearly cancel), `far` by 0.1 (a real loss); `old` saved no per-query values, so nothing is claimed."""
    best_rr = [1.0, 0.5, 0.0, 0.25] * 50
    close_rr = list(best_rr)
    for i in range(0, 40, 4):  # 10 queries fall from rank 1 to 2, 8 others rise from a miss to rank 2
        close_rr[i] = 0.5
    for i in range(2, 34, 4):
        close_rr[i] = 0.5
    far_rr = [v / 2 for v in best_rr]
    root = tmp_path / "outputs"
    for name, rr in (("best", best_rr), ("close", close_rr), ("far", far_rr), ("old", None)):
        mean = sum(rr) / len(rr) if rr else 0.3
        run = write_run(root / name, metrics(mean, 0.2))
        if rr:
            write_per_query(run, rr)
    ranked = mark_ties(rank_runs(collect_runs(root), "mrr@10"), "mrr@10")

    assert {r.name: r.vs_best for r in ranked} == {"best": "best", "close": "tie", "far": "worse", "old": "n/a"}
    console = Console(record=True, width=250)
    console.print(leaderboard_table(ranked, "mrr@10", width=250))
    rows = {line.split("│")[2].strip(): line for line in console.export_text().splitlines() if line.count("│") > 5}
    assert "tie" in rows["close"] and "worse" in rows["far"] and "n/a" in rows["old"]

    capsys.readouterr()  # the table above went to stdout too
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["leaderboard", "--runs", str(root), "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["vs_best"]) for r in board["runs"]][:2] == [("best", "best"), ("close", "tie")]
