"""An offline W&B run of a tiny training holds the per-epoch sample-retrieval Table (read back from disk)."""

import json

from twotower import api


def test_offline_wandb_run_holds_the_sample_retrievals_table(small_msmarco, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    api.train(
        [
            "logger=default",
            "tokenizer=glove",
            "negatives=random",
            "data.batch_size=32",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=2",
            "eval_max_queries=12",
        ],
        config={"data": {"dir": str(small_msmarco)}},
        run_dir=tmp_path,
    )
    tables = sorted(tmp_path.glob("wandb/offline-run-*/files/media/table/eval/samples_*.table.json"))
    assert tables, "no sample table in the offline run"
    table = json.loads(max(tables, key=lambda p: p.stat().st_mtime).read_text())
    assert table["columns"] == ["epoch", "qid", "query", "rank", "pid", "passage", "score", "relevant"]
    assert {row[0] for row in table["data"]} == {0, 1} and len(table["data"]) == 2 * 8 * 3
    assert all(isinstance(row[7], bool) for row in table["data"])
