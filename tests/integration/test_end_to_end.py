"""Train a few steps on a small real subset, then check the checkpoint and that evaluate.py agrees."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from twotower import api
from twotower.models.checkpoint import CheckpointError, load_checkpoint, load_encoder

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.batch_size=32",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=4",
    "logger=csv",
    "tokenizer=glove",
    "data.prepare.num_negatives=2",
]


@pytest.fixture(scope="module")
def trained(small_msmarco, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return api.train(
        TINY + ["model=gru", "model.tower.hidden_size=32"],
        config={"data": {"dir": str(small_msmarco)}},
        run_dir=run_dir,
    )


def test_run_folder_holds_config_checkpoints_and_metrics(trained):
    files = {p.relative_to(trained.run_dir).as_posix() for p in trained.run_dir.rglob("*") if p.is_file()}
    assert {
        "config.yaml",
        "metrics.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "checkpoints/last.ckpt",
        "csv/metrics.csv",
    } <= files
    metrics = json.loads((trained.run_dir / "metrics.json").read_text())
    # The evaluation before the first step is the "start" row, epoch -1, then one row per trained epoch.
    assert [e["epoch"] for e in metrics["epochs"]] == [-1, 0, 1] and 0 <= metrics["best"]["mrr@10"] <= 1
    assert metrics["epochs"][0]["train_loss"] is None


def test_checkpoint_has_the_seed_structure(trained):
    ckpt = load_checkpoint(trained.best_checkpoint)
    for key in (
        "model_state_dict",
        "embedding_matrix",
        "word_to_index",
        "index_to_word",
        "model_config",
        "training_stats",
        "epoch",
        "eval_results",
        "wandb_run_id",
    ):
        assert key in ckpt
    stats = ckpt["training_stats"]
    assert stats["config"]["model"]["tower"]["_target_"] == "twotower.models.recurrent.GRUTower"
    assert [e["epoch"] for e in stats["training_stats"]] == [-1, 0, 1]
    assert {
        "train_loss",
        "train_accuracy",
        "learning_rate",
        "eval_mrr",
        "eval_mrr@10",
        "eval_recall@10",
        "eval_ndcg@10",
        "eval_map",
    } <= set(stats["training_stats"][1])
    best = next(e for e in stats["evaluation_stats"] if e["epoch"] == stats["best_epoch"])
    # best.pt is the first evaluation with the top MRR@10, the start (epoch -1) included: never worse than it.
    assert stats["best_epoch"] == max(stats["evaluation_stats"], key=lambda e: e["mrr@10"])["epoch"]
    assert all(best[k] == v for k, v in stats["best_metrics"].items())
    assert ckpt["index_to_word"][ckpt["word_to_index"]["the"]] == "the"
    assert ckpt["embedding_matrix"].shape[0] == len(ckpt["word_to_index"])


def test_encoder_rebuilt_from_the_pt_alone_matches_the_trained_model(trained):
    texts = ["how long to boil an egg", "what is the capital of france"]
    rebuilt = load_encoder(trained.run_dir / "checkpoints" / "last.pt")
    assert torch.allclose(
        torch.tensor(rebuilt.encode_queries(texts)), torch.tensor(trained.encoder().encode_queries(texts)), atol=1e-6
    )


def test_evaluate_py_reproduces_the_callback_metrics(trained, small_msmarco, tmp_path):
    env = {**os.environ, "TWOTOWER_DATA": str(small_msmarco)}
    subprocess.run(
        [sys.executable, "evaluate.py", f"ckpt={trained.best_checkpoint}", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    written = json.loads((tmp_path / "metrics.json").read_text())
    metrics = next(iter(written.values()))["metrics"]
    for name, value in trained.best.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name


def test_foreign_or_damaged_files_are_refused(trained, tmp_path):
    with pytest.raises(CheckpointError, match="ckpt_path"):
        load_checkpoint(trained.run_dir / "checkpoints" / "last.ckpt")
    torn = tmp_path / "torn.pt"
    torn.write_bytes((trained.run_dir / "checkpoints" / "best.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable twotower checkpoint"):
        load_checkpoint(torn)


def test_training_from_the_hugging_face_parquet(msmarco_dir, tmp_path):
    """v1.1 rows: each query's own unselected passages are its hard negatives (negatives=candidates)."""
    sample = msmarco_dir / "msmarco-v1.1-sample" / "train-sample.parquet"
    result = api.train(
        [
            "tokenizer=glove",
            "logger=csv",
            "trainer.max_epochs=1",
            "data.batch_size=16",
            f"data.source={sample}",
            f"data.eval_source={sample}",
            "negatives=candidates",
            "data.prepare.num_negatives=2",
        ],
        run_dir=tmp_path,
    )
    assert result.metrics["epochs"][1]["train_loss"] > 0
    assert 0 < result.best["recall@100"] <= 1
