"""A transformer tower through the whole framework, on a tiny random BERT: train a few steps, rebuild from the
`.pt` alone, evaluate.py agrees with the callback, index and search, export to sentence-transformers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from twotower import api
from twotower.models.checkpoint import load_checkpoint, load_encoder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(small_msmarco, tiny_bert, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("transformer-run")
    return api.train(
        [
            "model=transformer",
            f"model.tower.path={tiny_bert}",
            "model.tower.output_dim=24",
            "model.tower.backbone_lr=1e-4",
            "optim.lr=1e-3",
            "data.batch_size=16",
            "data.prepare.num_negatives=2",
            "model.doc_max_length=48",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "logger=csv",
        ],
        config={"data": {"dir": str(small_msmarco)}},
        run_dir=run_dir,
    )


def test_training_steps_and_the_checkpoint_carry_what_the_tower_needs(trained):
    assert trained.metrics["epochs"][1]["train_loss"] > 0
    payload = load_checkpoint(trained.best_checkpoint)
    fields = payload["model_config"]["tower_fields"]
    assert fields["backbone_config"]["hidden_size"] == 32 and "tokenizer.json" in fields["tokenizer_files"]
    assert payload["embedding_matrix"].numel() == 0 and payload["word_to_index"]["[UNK]"] == 100


def test_the_pt_alone_rebuilds_the_trained_encoder(trained, tiny_bert, tmp_path):
    texts = ["how long to boil an egg", "what is the capital of france"]
    rebuilt = load_encoder(trained.run_dir / "checkpoints" / "last.pt")
    assert np.allclose(rebuilt.encode_queries(texts), trained.encoder().encode_queries(texts), atol=1e-5)


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
    metrics = next(iter(json.loads((tmp_path / "metrics.json").read_text()).values()))["metrics"]
    for name, value in trained.best.items():
        assert metrics[name] == pytest.approx(value, abs=1e-5), name


def test_index_and_search(trained, small_msmarco, tmp_path):
    from twotower.cli import main
    from twotower.search import Searcher

    collection = small_msmarco / "msmarco-passage" / "collection.tsv"
    assert (
        main(
            [
                "index",
                "--ckpt",
                str(trained.best_checkpoint),
                "--collection",
                str(collection),
                "--out",
                str(tmp_path / "index"),
                "--kind",
                "flat",
            ]
        )
        == 0
    )
    first = collection.read_text().splitlines()[5].split("\t", 1)
    hits = Searcher.load(tmp_path / "index").search(first[1], k=3)
    assert len(hits.hits) == 3 and first[0] in [h.id for h in hits.hits]


def test_export_round_trip_through_sentence_transformers(trained, tmp_path):
    from sentence_transformers import SentenceTransformer

    from twotower.cli import main

    out = tmp_path / "st-model"
    assert main(["export", "--ckpt", str(trained.best_checkpoint), "--out", str(out)]) == 0
    st = SentenceTransformer(str(out), device="cpu")
    ours = load_encoder(trained.best_checkpoint)
    queries = ["how long to boil an egg", "capital of france " * 20]
    passages = ["Boil the egg for seven minutes, then cool it in cold water. " * 5, "Paris is the capital."]
    assert np.abs(st.encode_query(queries) - ours.encode_queries(queries)).max() <= 1e-5
    assert np.abs(st.encode_document(passages) - ours.encode_documents(passages)).max() <= 1e-5
    card = (out / "README.md").read_text()
    assert "mrr@10" in card and "TransformerTower" in card and "model.tower.path" not in card
