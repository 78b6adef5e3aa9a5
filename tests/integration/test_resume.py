"""Resume in place: last.ckpt every epoch, the run's own config, and conflicting overrides refused."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from twotower import api
from twotower.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.batch_size=32",
    "trainer.limit_train_batches=4",
    "logger=csv",
    "tokenizer=glove",
    "negatives=random",
    "model.tower.output_dim=16",
    "eval_max_queries=20",
]


@pytest.fixture(scope="module")
def run(small_msmarco, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("resumable")
    # mode=min on a metric that rises: later epochs are "worse" than the start, so only an every-epoch
    # last.ckpt holds epoch 1.
    api.train(
        TINY + ["trainer.max_epochs=2", "callbacks.twotower_checkpoint.mode=min"],
        config={"data": {"dir": str(small_msmarco)}},
        run_dir=run_dir,
    )
    return run_dir


def test_last_ckpt_holds_the_latest_epoch_whatever_the_metric(run):
    # Lightning's ModelCheckpoint rewrites it at the end of every epoch: it holds the run's second (last)
    # epoch, although the monitor (mode=min here) prefers an earlier one.
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1


def test_resuming_under_other_settings_is_refused_in_one_line(run, small_msmarco):
    saved = (run / "config.yaml").read_text()
    env = {**os.environ, "TWOTOWER_DATA": str(small_msmarco)}
    done = subprocess.run(
        [sys.executable, "train.py", f"hydra.run.dir={run}", f"ckpt_path={run}/checkpoints/last.ckpt", "logger=csv"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        next(line for line in done.stderr.splitlines() if line.startswith("error:"))
    ]
    assert "data.batch_size is 32" in done.stderr and "twotower resume" in done.stderr
    assert (run / "config.yaml").read_text() == saved


def test_twotower_resume_continues_under_the_runs_own_config(run, small_msmarco, monkeypatch):
    monkeypatch.setenv("TWOTOWER_DATA", str(small_msmarco))
    with pytest.raises(ValueError, match="data.batch_size is 32 .* start a new run"):
        from twotower.training.resume import resume_config

        resume_config(run, ["data.batch_size=64"])
    assert main(["resume", str(run), "trainer.max_epochs=3"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [-1, 0, 1, 2]
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_epochs"] == 3


@pytest.mark.parametrize("layout", ["flat", "named"])
def test_a_run_of_an_older_layout_still_resumes(run, tmp_path, layout):
    """Runs written before `data.prepare` existed saved its settings flat (`data.negatives: bm25`,
    `data.bm25_depth: 20`); runs written before negative sources were classes named theirs inside the node
    (`data.prepare.negatives: bm25`). Resuming upgrades both, and neither is taken for a change of settings."""
    import shutil

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from twotower.data.negatives import BM25Negatives
    from twotower.data.prepare import PrepareConfig
    from twotower.training.resume import check_resume, resume_config

    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    # Such runs' last.ckpt carried no copy of the run config to compare config.yaml with.
    last = torch.load(old / "checkpoints" / "last.ckpt", weights_only=False)
    del last["twotower_run_config"]
    torch.save(last, old / "checkpoints" / "last.ckpt")
    saved = yaml.safe_load((old / "config.yaml").read_text())
    prepare = saved["data"].pop("prepare")
    # and before issue 19 the tokenizer was a top-level group and the token limits sat under `data`
    saved["tokenizer"] = saved["model"].pop("tokenizer")
    for name in ("query_max_length", "doc_max_length"):
        saved["data"][name] = saved["model"].pop(name)
    named = {
        **prepare,
        "negatives": "bm25",
        "run_file": None,
        "bm25_depth": 20,
        "bm25_skip": 2,
        "dense_depth": 50,
        "dense_skip": 3,
    }
    if layout == "flat":
        layout_keys = ("_target_", "seed", "shard_rows", "row_group_rows")  # not in the data node then
        saved["data"].update({k: v for k, v in named.items() if k not in layout_keys})
    else:
        saved["data"]["prepare"] = named
    (old / "config.yaml").write_text(yaml.safe_dump(saved))

    cfg = resume_config(old, ["trainer.max_epochs=3"])
    bm25 = {"_target_": "twotower.data.negatives.BM25Negatives", "depth": 20, "skip": 2}
    assert "negatives" not in cfg and cfg.data.prepare.negatives == bm25 and "bm25_depth" not in cfg.data.prepare
    assert instantiate(cfg.data).prepare == PrepareConfig(
        negatives=BM25Negatives(depth=20, skip=2),
        num_negatives=prepare["num_negatives"],
        subsample=prepare["subsample"],
        seed=prepare["seed"],
    )
    check_resume(old, OmegaConf.create(OmegaConf.to_container(cfg)))  # the saved old config is the same run


@pytest.mark.parametrize(
    "negatives, where",
    [
        ({"_target_": "os.system", "command": "touch owned"}, "data.prepare.negatives"),
        (
            {"_target_": "twotower.data.negatives.MixedNegatives", "sources": {"x": {"_target_": "os.system"}}},
            "data.prepare.negatives.sources.x",
        ),
    ],
)
def test_a_resumed_config_builds_only_our_negative_sources(run, tmp_path, negatives, where, capsys):
    """`config.yaml` is a file a user passes back: a source class that is not one of ours is refused, unbuilt."""
    import shutil

    from twotower.data.negatives import UntrustedSourceError
    from twotower.training.resume import resume_config

    crafted = tmp_path / "crafted-run"
    shutil.copytree(run, crafted)
    saved = yaml.safe_load((crafted / "config.yaml").read_text())
    saved["data"]["prepare"]["negatives"] = negatives
    (crafted / "config.yaml").write_text(yaml.safe_dump(saved))

    with pytest.raises(
        UntrustedSourceError, match=f"^{where} names 'os.system', which is not one of twotower's negative sources"
    ):
        resume_config(crafted)
    assert main(["resume", str(crafted)]) == 1 and "os.system" in capsys.readouterr().err
    assert not (ROOT / "owned").exists() and not Path("owned").exists()


@pytest.mark.parametrize("where", ["loss", "model.tower", "callbacks.retrieval_evaluation", "logger.csv"])
def test_a_resumed_config_builds_nothing_our_configs_do_not_name(run, tmp_path, where, capsys):
    """Every `_target_` of a resumed `config.yaml` must be one a shipped config names: a crafted file that
    points the loss (or the tower, a callback, a logger) at `os.system` is refused before anything is built."""
    import shutil

    from omegaconf import OmegaConf

    from twotower.training.resume import ForeignTargetError, resume_config

    crafted = tmp_path / "crafted-run"
    shutil.copytree(run, crafted)
    saved = OmegaConf.load(crafted / "config.yaml")
    OmegaConf.update(saved, where, {"_target_": "os.system", "command": "touch owned"}, force_add=True, merge=False)
    OmegaConf.save(saved, crafted / "config.yaml")

    with pytest.raises(
        ForeignTargetError,
        match=rf"^config.yaml sets {where}\._target_='os.system', which is not one of twotower's own classes",
    ):
        resume_config(crafted)
    assert main(["resume", str(crafted)]) == 1 and "os.system" in capsys.readouterr().err
    assert not Path("owned").exists()


def test_per_epoch_candidates_check_and_full_corpus_at_the_end(small_msmarco, msmarco_dir, tmp_path):
    """Epochs before the last score each dev query against its BM25 candidates only (cheap); the last one
    searches the whole corpus."""
    import shutil

    from twotower.data.msmarco import passage_split

    data = tmp_path / "data" / "msmarco-passage"
    shutil.copytree(small_msmarco / "msmarco-passage", data)
    # The subset's own BM25 run: the shared run's lines for the subset's passages.
    kept = {line.split("\t", 1)[0] for line in (data / "collection.tsv").read_text().splitlines()}
    run = [
        line
        for line in (msmarco_dir / "msmarco-passage" / "run.dev.bm25top20.tsv").read_text().splitlines()
        if line.split("\t")[1] in kept
    ]
    (data / "run.dev.bm25top20.tsv").write_text("\n".join(run) + "\n")
    result = api.train(
        TINY + ["trainer.max_epochs=2", "callbacks.retrieval_evaluation.per_epoch=candidates"],
        config={"data": {"dir": str(data.parent)}},
        run_dir=tmp_path / "run",
    )
    dev = passage_split("dev", data)
    qids = [q for q in dev.queries if any(r > 0 for r in dev.qrels.get(q, {}).values())][:20]
    covered = sum(any(p in dev.candidates.get(q, []) for p in dev.qrels[q]) for q in qids) / len(qids)
    start, first, last = result.metrics["epochs"]
    assert start["epoch"] == -1 and set(start) == set(last)  # the start row is a full-corpus evaluation
    assert first["recall@100"] <= covered + 1e-9  # only candidates could be found
    assert set(first) == set(last)  # both epochs report every metric
