"""`twotower index / search / leaderboard` on a checkpoint trained for a few steps, as a user would run them."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from twotower import api
from twotower.cli import main
from twotower.conf import CONF_DIR
from twotower.data.msmarco import passage_split, read_qrels, read_run
from twotower.evaluation.metrics import retrieval_metrics
from twotower.evaluation.retrieval import evaluate_encoder
from twotower.models.checkpoint import load_encoder


@pytest.fixture(scope="module")
def trained(small_msmarco, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "mean-run"
    return api.train(
        [
            "data.batch_size=32",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=3",
            "logger=csv",
            "eval_max_queries=20",
            "tokenizer=word",
        ],
        config={"data": {"dir": str(small_msmarco)}},
        run_dir=run_dir,
    )


@pytest.fixture(scope="module")
def data(small_msmarco) -> Path:
    return small_msmarco / "msmarco-passage"


@pytest.fixture(scope="module")
def index(trained, data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index") / "msmarco"
    assert (
        main(
            [
                "index",
                "--ckpt",
                str(trained.best_checkpoint),
                "--collection",
                str(data / "collection.tsv"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return out


def test_index_reports_what_it_built(trained, data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    code = main(
        [
            "index",
            "--ckpt",
            str(trained.best_checkpoint),
            "--collection",
            str(data / "collection.tsv"),
            "--out",
            str(tmp_path / "hnsw"),
            "--kind",
            "hnsw",
            "--param",
            "ef_search=64",
        ]
    )
    out = capsys.readouterr().out

    assert code == 0
    assert "faiss hnsw index of" in out and "ef_search=64" in out and "passages/s" in out
    assert str(trained.best_checkpoint.resolve()) in out


def test_an_index_config_file_picks_the_kind(trained, data, tmp_path, capsys):
    assert (
        main(
            [
                "index",
                "--ckpt",
                str(trained.best_checkpoint),
                "--collection",
                str(data / "collection.tsv"),
                "--out",
                str(tmp_path / "ivf"),
                "--config",
                str(CONF_DIR / "index" / "ivf.yaml"),
                "--param",
                "nprobe=4",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "ivf" / "manifest.json").read_text())["index"] == {
        "kind": "ivf",
        "nlist": None,
        "nprobe": 4,
        "encoding": "flat",
        "pq_bytes": 32,
        "k_factor": 32,
    }


def test_search_prints_ranked_passages_with_highlights_and_timings(index, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "140")
    assert main(["search", "--index", str(index), "--query", "what is the capital of france", "-k", "3"]) == 0
    out = capsys.readouterr().out

    assert "query: what is the capital of france" in out
    rows = re.findall(r"^│\s+(\d+) │\s+(-?[\d.]+) │", out, re.M)
    assert [int(rank) for rank, _ in rows] == [1, 2, 3]
    assert [float(s) for _, s in rows] == sorted((float(s) for _, s in rows), reverse=True)
    assert "encode" in out and "search" in out and "ms on CPU" in out and "total" in out


def test_search_json_gives_ids_scores_texts(index, capsys):
    assert (
        main(["search", "--index", str(index), "-q", "how to cook rice", "-q", "dog breeds", "-k", "4", "--json"]) == 0
    )
    results = json.loads(capsys.readouterr().out)

    assert [r["query"] for r in results] == ["how to cook rice", "dog breeds"]
    assert all(len(r["hits"]) == 4 and r["hits"][0]["rank"] == 1 and r["hits"][0]["text"] for r in results)
    scores = [h["score"] for h in results[0]["hits"]]
    assert scores == sorted(scores, reverse=True) and results[0]["timings_ms"]["search"] > 0


def test_batch_mode_writes_a_trec_run_that_scores_like_evaluation(trained, index, data, tmp_path, capsys):
    run_file = tmp_path / "dev.run"
    assert (
        main(
            [
                "search",
                "--index",
                str(index),
                "--queries",
                str(data / "queries.dev.tsv"),
                "--run-out",
                str(run_file),
                "--qrels",
                str(data / "qrels.dev.tsv"),
                "--tag",
                "mean",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out

    lines = run_file.read_text().splitlines()
    qid, q0, pid, rank, score, tag = lines[0].split()
    assert q0 == "Q0" and rank == "1" and tag == "mean" and float(score) <= 1.0001
    # A flat index is exact: the run scores exactly as the training-time evaluation of the same checkpoint.
    split = passage_split("dev", data)
    expected = evaluate_encoder(load_encoder(trained.best_checkpoint), split, k=100).metrics
    qrels = read_qrels(data / "qrels.dev.tsv")
    run = read_run(run_file)
    got = retrieval_metrics({q: run[q] for q in run if q in qrels}, {q: qrels[q] for q in run if q in qrels})
    assert got["mrr@10"] == pytest.approx(expected["mrr@10"], abs=1e-6)
    assert got["recall@100"] == pytest.approx(expected["recall@100"], abs=1e-6)
    assert f"{expected['mrr@10']:.4f}" in out


def test_interactive_mode_reads_queries_until_quit(index):
    session = "boiling an egg\n:k 2\n\n:k many\nthe capital of france\n:q\n"
    env = {**os.environ, "COLUMNS": "120", "TERM": "dumb"}
    done = subprocess.run(
        [sys.executable, "-m", "twotower.cli", "search", "--index", str(index), "-i"],
        input=session,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.count("query: ") == 2
    assert "showing 2 results per query" in done.stdout and ":k takes a number" in done.stdout
    second = done.stdout.split("query: the capital of france")[1]
    assert " 2 │" in second and " 3 │" not in second


def test_documents_can_be_added_from_the_command_line(trained, index, tmp_path, capsys):
    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"id": "extra-1", "text": "a brand new passage about glaciers", "lang": "en"}) + "\n")
    copy = tmp_path / "idx"
    import shutil

    shutil.copytree(index, copy)
    assert main(["index", "--add", "--out", str(copy), "--collection", str(more)]) == 0
    assert "added 1 documents" in capsys.readouterr().out
    assert main(["index", "--add", "--out", str(copy), "--collection", str(more)]) == 1
    assert "already in" in capsys.readouterr().err
    assert main(["index", "--add", "--out", str(copy), "--collection", str(more), "--skip-existing"]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "--index", "{tmp}/missing", "-q", "x"], "no index at"),
        (["search", "--index", "{index}", "-q", "   "], "the query is empty"),
        (["search", "--index", "{index}", "--queries", "q.tsv"], "--run-out"),
        (["search", "--index", "{index}", "-q", "x", "--ckpt", "{other}"], "different model"),
        (
            ["index", "--ckpt", "{ckpt}", "--collection", "{tmp}/dup.tsv", "--out", "{tmp}/i"],
            "duplicate passage id '7'",
        ),
        (["search", "--index", "{index}", "-q", "x", "--param", "nprobe=3"], "nprobe"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_status_1(argv, message, index, trained, tmp_path, capsys):
    (tmp_path / "dup.tsv").write_text("7\tone\n8\ttwo\n7\tthree\n")
    other = tmp_path / "other.pt"
    other.write_bytes(trained.best_checkpoint.read_bytes())
    from twotower.models.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(other)
    payload["epoch"] = 99  # same architecture, different file: a different model as far as the index knows
    del payload["format"]
    save_checkpoint(other, payload)
    fill = {"tmp": tmp_path, "index": index, "ckpt": trained.best_checkpoint, "other": other}

    assert main([a.format(**fill) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_leaderboard_reads_a_real_training_run(trained, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["leaderboard", "--runs", str(trained.run_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert "mean-run" in out and f"{trained.best['mrr@10']:.4f}" in out and "csv/metrics.csv" in out
