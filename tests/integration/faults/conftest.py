"""Fixtures shared by the fault tests: one tiny trained run folder, trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_RUN = [
    "data.batch_size=32",
    "trainer.limit_train_batches=2",
    "logger=csv",
    "tokenizer=glove",
    "negatives=random",
    "model.tower.output_dim=16",
    "eval_max_queries=20",
    "trainer.max_epochs=1",
]


@pytest.fixture(scope="session")
def trained_run(small_msmarco, tmp_path_factory) -> Path:
    """A finished one-epoch run folder (config.yaml, checkpoints/last.ckpt, best.pt, metrics.json). Tests copy
    it before changing anything."""
    from twotower import api

    run_dir = tmp_path_factory.mktemp("runs") / "original"
    api.train(TINY_RUN, config={"data": {"dir": str(small_msmarco)}}, run_dir=run_dir)
    return run_dir
