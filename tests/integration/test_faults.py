"""Faults and bad input (issue 11, "nothing lost, nothing silent"): each test is one way things go wrong.

Every case is written as the user would meet it and named for the fault. Before the fix each one lost data,
finished with a wrong result and exit status 0, or ended in a traceback; now none loses data, none is
silent, and each user error is one line naming the file, row, field or setting at fault.
"""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from tiny_models import (  # a tiny untrained mean-tower checkpoint (same helper, one copy)
    first_passages,
    make_checkpoint,
)

ROOT = Path(__file__).resolve().parents[2]
N_DOCS = 400


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus(msmarco_dir) -> dict[str, str]:
    return first_passages(msmarco_dir, N_DOCS)


@pytest.fixture(scope="module")
def checkpoint(corpus, tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", list(corpus.values()))


@pytest.fixture(scope="module")
def collection_file(corpus, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "collection.tsv"
    path.write_text("".join(f"{pid}\t{text}\n" for pid, text in corpus.items()))
    return path


@pytest.fixture
def index(checkpoint, collection_file, tmp_path) -> Path:
    from twotower.search import build_index

    build_index(checkpoint, collection_file, tmp_path / "index", progress=False)
    return tmp_path / "index"


def run(args: list[str], env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """A command run from the repository root, as a user would type it."""
    return subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------ 1. concurrent writers


def _add_one_at_a_time(store_path: str, writer: int, n: int, barrier) -> None:
    from twotower.deep_memory import HashingEmbedding, VectorStore

    db = VectorStore(store_path, embedding_function=HashingEmbedding(dim=16))
    barrier.wait(timeout=60)
    for j in range(n):
        db.add([f"writer {writer} document {j} about topic {j % 7}"], ids=[f"w{writer}-d{j}"])


def test_four_processes_adding_to_one_deep_memory_store_keep_every_document(tmp_path):
    from twotower.deep_memory import HashingEmbedding, VectorStore

    writers, per_writer = 4, 25
    ctx = multiprocessing.get_context("fork")  # the children use numpy and pyarrow only
    barrier = ctx.Barrier(writers)
    procs = [
        ctx.Process(target=_add_one_at_a_time, args=(str(tmp_path / "store"), w, per_writer, barrier))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * writers

    db = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=16))
    assert sorted(db.ids) == sorted(f"w{w}-d{j}" for w in range(writers) for j in range(per_writer))
    assert len(db.embeddings) == writers * per_writer
    assert db.info()["count"] == writers * per_writer


# `twotower index` with a pause after it has written its document store, so the two builds below overlap
# for sure: the first waits there until the second is either building too or waiting for the lock.
BUILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import twotower.search.build as build
    from twotower.cli import main

    role, out, checkpoint, collection = sys.argv[1:5]
    signals = Path(out).parent

    def wait_for(ready):
        deadline = time.time() + 120
        while not ready() and time.time() < deadline:
            time.sleep(0.02)

    add = build.DocumentStore.add
    def paused_add(self, documents):
        rows = add(self, documents)
        if role == "first":
            wait_for(lambda: (signals / "second-waits").exists() or len(list(Path(out).glob("documents-*"))) > 1)
        else:
            wait_for(lambda: (Path(out) / "manifest.json").exists())
        return rows
    build.DocumentStore.add = paused_add

    if role == "second" and hasattr(build, "index_lock"):
        lock = build.index_lock
        def announced_lock(folder):
            (signals / "second-waits").touch()
            return lock(folder)
        build.index_lock = announced_lock

    sys.exit(main(["index", "--ckpt", checkpoint, "--collection", collection, "--out", out]))
""")


def test_two_index_builds_into_one_folder_both_succeed_and_leave_one_complete_index(checkpoint, msmarco_dir, tmp_path):
    collection = tmp_path / "collection.tsv"
    with open(msmarco_dir / "msmarco-passage" / "collection.tsv", encoding="utf-8") as fh:
        collection.write_text("".join(line for _, line in zip(range(2000), fh)))
    out = tmp_path / "index"

    def start(role):
        return subprocess.Popen(
            [sys.executable, "-c", BUILD, role, str(out), str(checkpoint), str(collection)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = start("first")
    while not list(out.glob("documents-*")) and first.poll() is None:  # the first build is under way
        time.sleep(0.02)
    second = start("second")
    outputs = [p.communicate(timeout=300) for p in (first, second)]

    assert [first.returncode, second.returncode] == [0, 0], [err[-1500:] for _, err in outputs]
    assert "waiting for another process writing the index" in outputs[1][1]  # the second said why it waited
    from twotower.io.output import MARKER
    from twotower.search import Searcher, read_manifest

    manifest = read_manifest(out)
    # Top-level names: the BM25 part is a folder (`bm25-<id>/...` in the manifest); the other build left nothing.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        {*(f.split("/")[0] for f in manifest.files), "manifest.json", MARKER}
    )
    with Searcher.load(out) as searcher:
        assert len(searcher) == manifest.count == 2000


def test_two_processes_adding_to_one_index_keep_every_document(index, corpus):
    script = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from twotower.search import Searcher
        folder, writer = sys.argv[1], sys.argv[2]
        texts = list(open(sys.argv[3], encoding="utf-8").read().splitlines())
        with Searcher.load(folder) as searcher:
            Path(folder + f".ready-{writer}").touch()  # both have loaded the same commit before either adds
            while len(list(Path(folder).parent.glob("index.ready-*"))) < 2:
                time.sleep(0.01)
            for j, text in enumerate(texts):
                searcher.add({f"w{writer}-{j}": text})
    """)
    texts = [t[:200] for t in list(corpus.values())[:20]]
    (index.parent / "texts.txt").write_text("\n".join(texts))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(index), str(w), str(index.parent / "texts.txt")],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-1500:] for _, err in outputs]

    from twotower.search import Searcher

    with Searcher.load(index) as searcher:
        assert len(searcher) == N_DOCS + 40
        rows = searcher.store.rows_of([f"w{w}-{j}" for w in range(2) for j in range(20)])
        assert len(rows) == 40


# ------------------------------------------------------------------------------------ 2. nothing runs from a file


def test_an_index_config_naming_other_code_is_refused_before_anything_runs(
    checkpoint, collection_file, tmp_path, capsys
):
    from twotower.cli import main

    marker = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f"_target_: os.makedirs\nname: {marker}\n")

    code = main(
        [
            "index",
            "--ckpt",
            str(checkpoint),
            "--collection",
            str(collection_file),
            "--out",
            str(tmp_path / "index"),
            "--config",
            str(config),
        ]
    )

    assert code == 1 and not marker.exists()
    err = capsys.readouterr().err
    assert "'os.makedirs' is not an index kind" in err and str(config) in err


def test_a_deep_memory_adapter_target_outside_the_allow_list_is_refused(tmp_path):
    from twotower.deep_memory import HashingEmbedding, VectorStore
    from twotower.deep_memory.training import RelevanceData, TrainingSettings, train_adapter

    db = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=16))
    db.add([f"document {i}" for i in range(40)], ids=[f"d{i}" for i in range(40)])
    queries = [f"document {i}" for i in range(40)]
    relevance = [[(f"d{i}", 1.0)] for i in range(40)]
    evil = {"_target_": "os.makedirs", "name": str(tmp_path / "pwned")}

    # Through the API: refused before a job exists.
    with pytest.raises(ValueError, match="'os.makedirs' is not allowed"):
        db.deep_memory.train(queries, relevance, adapter=evil)
    assert db.deep_memory.job_ids() == []
    # A job's settings.json, as the worker reads it back, cannot name other code either.
    data = RelevanceData(
        db.embeddings[:40].copy(), np.arange(41, dtype=np.int64), np.arange(40, dtype=np.int64), np.ones(40, np.float32)
    )
    with pytest.raises(ValueError, match="not allowed"):
        train_adapter(data, db.embeddings, TrainingSettings(adapter=evil, epochs=1))
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------------------------ 3. integrity


@pytest.mark.parametrize("part", ["vectors", "documents"])
def test_a_same_size_corrupted_index_file_is_refused_naming_it(index, part):
    from twotower.search import IndexCorruptError, Searcher, read_manifest

    name = next(n for n in read_manifest(index).files if n.startswith(part))
    data = bytearray((index / name).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0x5A for b in data[middle : middle + 64])  # same size, other bytes
    (index / name).write_bytes(bytes(data))

    with pytest.raises(IndexCorruptError, match=f"{name} is damaged"):
        Searcher.load(index)


def test_no_verify_skips_the_checksum_but_not_the_size_check(index):
    from twotower.search import IndexCorruptError, Searcher, read_manifest

    manifest = read_manifest(index)
    name = next(n for n in manifest.files if n.startswith("vectors"))
    with Searcher.load(index, verify=False) as searcher:  # for huge indexes: sizes only
        assert len(searcher) == N_DOCS
    with open(index / name, "r+b") as fh:
        fh.truncate(manifest.files[name] - 8)
    with pytest.raises(IndexCorruptError, match="truncated"):
        Searcher.load(index, verify=False)


# ------------------------------------------------------------------------------------ 4. Milvus credentials


def test_milvus_credentials_are_never_written_to_the_manifest(checkpoint, corpus, tmp_path, monkeypatch):
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from pymilvus import MilvusClient

    from twotower.search import Searcher, SearchError, build_index, milvus_backend

    # A "server" that is Milvus Lite underneath: what reaches the client is recorded, the rest is real.
    reached = []

    def client(uri):
        reached.append(uri)
        return MilvusClient(uri=str(tmp_path / "lite.db"))

    monkeypatch.setattr(milvus_backend, "_client", client)
    monkeypatch.delenv("MILVUS_TOKEN", raising=False)
    uri = "https://alice:s3cret-pw@milvus.example.com:19530?token=tok-XYZ&db_name=prod"
    build_index(
        checkpoint,
        dict(list(corpus.items())[:50]),
        tmp_path / "index",
        backend="milvus",
        milvus_uri=uri,
        progress=False,
    )

    text = (tmp_path / "index" / "manifest.json").read_text()
    assert "s3cret-pw" not in text and "tok-XYZ" not in text and "alice" not in text
    assert json.loads(text)["milvus"]["uri"] == "https://milvus.example.com:19530?db_name=prod"
    assert reached == [uri]  # the build itself did use the credentials
    with pytest.raises(SearchError, match="--milvus-uri"):
        Searcher.load(tmp_path / "index")  # a reader must give them again
    with Searcher.load(tmp_path / "index", milvus_uri=uri) as searcher:
        assert len(searcher.search("egg", k=3)) == 3
        assert "s3cret" not in searcher.describe()


# ------------------------------------------------------------------------------------ 5. stale caches


def test_an_edited_collection_is_embedded_again_not_served_from_the_cache(tmp_path, caplog):
    from twotower.deep_memory.embeddings import cached_collection_embeddings

    calls = []

    def embed(texts):
        calls.append(len(texts))
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    collection = tmp_path / "collection.tsv"
    collection.write_text("1\tapple pie\n2\tbanana\n")
    first = cached_collection_embeddings(embed, ["apple pie", "banana"], collection, "toy")
    with caplog.at_level(logging.INFO, logger="twotower.retrieval.embedding_cache"):
        again = cached_collection_embeddings(embed, ["apple pie", "banana"], collection, "toy")
    assert calls == [2] and np.array_equal(first, again)
    assert "reusing cached" in caplog.text  # a reuse is logged

    collection.write_text("1\tapple pie\n2\tbandan\n")  # same size, one passage edited
    edited = cached_collection_embeddings(embed, ["apple pie", "bandan"], collection, "toy")
    assert calls == [2, 2] and edited[1, 1] == 2.0


def test_a_cache_of_other_texts_with_the_same_row_count_is_not_reused(tmp_path):
    from twotower.retrieval.embedding_cache import cached_embeddings

    def embed(texts):
        return np.array([[len(t)] for t in texts], dtype=np.float32)

    target = tmp_path / "vectors.npy"
    cached_embeddings(embed, ["a", "bb"], target, progress=False)
    assert cached_embeddings(embed, ["ccc", "dddd"], target, progress=False).ravel().tolist() == [3.0, 4.0]


# ------------------------------------------------------------------------------------ 6. inputs that score zero


@pytest.fixture
def tiny_split(tmp_path) -> dict[str, Path]:
    files = {
        "collection": tmp_path / "collection.tsv",
        "queries": tmp_path / "queries.tsv",
        "qrels": tmp_path / "qrels.tsv",
    }
    files["collection"].write_text("p1\tboil an egg for seven minutes\np2\tparis is the capital of france\n")
    files["queries"].write_text("q1\thow to boil an egg\nq2\tcapital of france\n")
    files["qrels"].write_text("q1 0 p1 1\nq2 0 p2 1\n")
    return files


def test_qrels_naming_passages_outside_the_collection_warn_with_counts(tiny_split, caplog):
    from twotower.evaluation.evaluate import load_eval_split

    tiny_split["qrels"].write_text("q1 0 p1 1\nq2 0 p999 1\n")
    with caplog.at_level(logging.WARNING):
        split = load_eval_split(**{k: str(v) for k, v in tiny_split.items()})
    assert len(split.qrels) == 2
    assert (
        "1 of 2 relevant passages (in 1 queries) are not in" in caplog.text and str(tiny_split["qrels"]) in caplog.text
    )


def test_qrels_naming_no_passage_of_the_collection_are_an_error(tiny_split):
    from twotower.data.msmarco import DataFormatError
    from twotower.evaluation.evaluate import load_eval_split

    tiny_split["qrels"].write_text("q1 0 x1 1\nq2 0 x2 1\n")
    with pytest.raises(DataFormatError, match=r"none of its 2 relevant passages is in .*collection.tsv"):
        load_eval_split(**{k: str(v) for k, v in tiny_split.items()})


def test_a_duplicate_query_id_is_an_error_naming_file_and_line(tmp_path):
    from twotower.data.msmarco import DataFormatError, read_queries

    path = tmp_path / "queries.tsv"
    path.write_text("q1\thow to boil an egg\nq2\tcapital of france\nq1\tsomething else entirely\n")
    with pytest.raises(DataFormatError, match=r"queries.tsv, line 3: duplicate query id 'q1' \(first on line 1\)"):
        read_queries(path)


def test_a_duplicate_qrels_row_is_an_error_naming_file_and_line(tmp_path):
    from twotower.data.msmarco import DataFormatError, read_qrels

    path = tmp_path / "qrels.tsv"
    path.write_text("q1 0 p1 1\nq2 0 p2 1\nq1 0 p1 0\n")
    with pytest.raises(DataFormatError, match=r"qrels.tsv, line 3: query 'q1' judges passage 'p1' a second time"):
        read_qrels(path)


def test_an_empty_qrels_file_is_an_error_naming_it(tmp_path):
    from twotower.data.msmarco import DataFormatError, read_qrels

    path = tmp_path / "qrels.dev.tsv"
    path.write_text("\n")
    with pytest.raises(DataFormatError, match=f"{path}: the qrels file is empty"):
        read_qrels(path)


def test_evaluate_py_refuses_a_negative_max_queries_in_one_line(tiny_split, tmp_path):
    out = run(
        [
            sys.executable,
            "evaluate.py",
            "baselines=[bm25]",
            "max_queries=-1",
            f"hydra.run.dir={tmp_path / 'run'}",
            *(f"data.{k}={v}" for k, v in tiny_split.items()),
        ]
    )

    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert [line for line in error_lines(out.stderr) if line.startswith("error:")] == [
        "error: ValueError: max_queries must be a whole number >= 1, or null for every judged query; got -1 "
        f"(traceback in {tmp_path / 'run' / 'error.txt'})"
    ]
    assert "Traceback" in (tmp_path / "run" / "error.txt").read_text()


def test_evaluate_refuses_k_0_naming_k(tiny_split):
    from twotower.evaluation.evaluate import evaluate, load_eval_split

    split = load_eval_split(**{k: str(v) for k, v in tiny_split.items()})
    with pytest.raises(ValueError, match=r"^k \(passages retrieved per query\) must be a whole number >= 1, got 0"):
        evaluate(split, baselines=["bm25"], k=0)


def test_twotower_search_refuses_k_0(index, capsys):
    from twotower.cli import main

    assert main(["search", "--index", str(index), "-q", "boil an egg", "-k", "0"]) == 1
    assert capsys.readouterr().err.strip() == "error: -k/--k (results per query) must be at least 1, got 0"


def test_emb_opt_refuses_a_negative_max_calls():
    from twotower.emb_opt import Runner, Score, TopKDiscrete
    from twotower.emb_opt.vector_db import NumpyVectorDB

    vectors = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    runner = Runner(NumpyVectorDB(vectors), Score(lambda items: -items.vectors[:, 0]), TopKDiscrete(2), k=4)
    with pytest.raises(ValueError, match=r"max_calls must be a whole number >= 1, or null for no cap; got -5"):
        runner.search(vectors[:3], iterations=5, max_calls=-5)


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_query_to_a_deep_memory_store_is_refused(tmp_path, query):
    from twotower.deep_memory import HashingEmbedding, VectorStore

    db = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=16))
    db.add(["the cat sat on the mat", "stock markets fell"], ids=["cat", "stocks"])
    with pytest.raises(ValueError, match="the query is empty"):
        db.search(embedding_data=query, k=1)
    with pytest.raises(ValueError, match=r"the query is empty \(query 1\)"):
        db.search(embedding_data=["cat", query], k=1)


def test_a_query_of_only_unknown_words_warns_with_the_count(index):
    from twotower.search import Searcher
    from twotower.search.results import UnknownQueryWarning

    with Searcher.load(index) as searcher:
        with pytest.warns(UnknownQueryWarning, match=r"'zqxj vbnmw': 2 of 2 tokens are unknown"):
            found = searcher.search("zqxj vbnmw", k=3)
        assert len(found) == 3  # still searched: the warning says the hits are arbitrary
        with pytest.warns(UnknownQueryWarning, match=r"1 of 2 queries are like this"):
            searcher.search(["zqxj vbnmw", "the capital of france"], k=3)


def test_a_text_file_given_as_npy_is_one_clear_error_naming_it(tmp_path):
    from twotower.emb_opt.vector_db import NumpyVectorDB

    path = tmp_path / "vectors.npy"
    path.write_text("0.1,0.2,0.3\n0.4,0.5,0.6\n")
    with pytest.raises(ValueError, match=f"^{path} is not a NumPy .npy file") as err:
        NumpyVectorDB.from_npy(path)
    assert "\n" not in str(err.value)


def test_disk_full_during_a_build_keeps_the_previous_index_serving(index, checkpoint, collection_file, monkeypatch):
    import faiss

    from twotower.search import DiskFullError, Searcher, build_index, read_manifest

    before = read_manifest(index)
    files = sorted(p.name for p in index.iterdir())

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(faiss, "write_index", no_space)
    with pytest.raises(DiskFullError, match=f"disk full while building the index {index}") as err:
        build_index(checkpoint, collection_file, index, kind="hnsw", progress=False)
    assert "previous index is unchanged and still serving" in str(err.value) and "vectors-" in str(err.value)
    monkeypatch.undo()

    assert read_manifest(index) == before and sorted(p.name for p in index.iterdir()) == files
    with Searcher.load(index) as searcher:
        assert len(searcher) == N_DOCS


# ------------------------------------------------------------------------------------ 7. one line, not a traceback


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs must be a whole number, got 'abc'"),
        ("trainer.max_epochs=0", "trainer.max_epochs must be >= 1 or -1"),
        (
            "data.prepare.num_negatives=0",
            "data.prepare.num_negatives must be >= 1, got 0 (0 is allowed only with loss=contrastive",
        ),
        ("data.batch_size=0", "data.batch_size must be >= 1, got 0"),
        ("data.prepare.subsample=0", "data.prepare.subsample must be in (0, 1]"),
        ("data.prepare.subsample=1.5", "data.prepare.subsample must be in (0, 1]"),
        ("optim.lr=-0.1", "optim.lr must be a finite number > 0"),
        ("optim.lr=nan", "optim.lr must be a finite number > 0"),
        ("eval_max_queries=-1", "eval_max_queries must be >= 1 or null"),
        (
            "data.prepare.negatives=dense",
            "data.prepare.negatives=dense names no source: choose one with negatives=NAME "
            "(bm25, bm25+dense, candidates, dense, random), e.g. negatives=dense",
        ),
        ("data.prepare.negatives.depth=0", "negatives.depth must be a whole number >= 1, got 0 (BM25Negatives)"),
    ],
)
def test_a_bad_training_setting_is_refused_before_any_data_work(override, message):
    from hydra import compose, initialize_config_module

    from twotower.training.validate import validate_config

    extra = ["loss=triplet"] if override.startswith("data.prepare.num_negatives") else []
    with initialize_config_module("twotower.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=[override, *extra])
    OmegaConf.set_struct(cfg, False)
    with pytest.raises(ValueError) as err:
        validate_config(cfg)
    assert str(err.value).startswith(message)


def test_the_default_training_config_passes_validation():
    from hydra import compose, initialize_config_module

    from twotower.training.validate import validate_config

    with initialize_config_module("twotower.conf", version_base="1.3"):
        validate_config(compose(config_name="train"))


def test_a_user_error_is_one_line_on_stderr_and_exit_1_with_the_trace_kept(tmp_path, capsys, monkeypatch):
    from twotower.errors import user_errors

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("TWOTOWER_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        with user_errors(trace_dir=tmp_path):
            raise FileNotFoundError("checkpoint not found: runs/x/best.pt")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == (
        f"error: FileNotFoundError: checkpoint not found: runs/x/best.pt (traceback in {tmp_path / 'error.txt'})\n"
    )
    assert "Traceback" in (tmp_path / "error.txt").read_text()

    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        with user_errors(trace_dir=tmp_path):
            _ = 1 / 0
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # Hydra's convention: the full trace, please
    with pytest.raises(FileNotFoundError):
        with user_errors(trace_dir=tmp_path):
            raise FileNotFoundError("x")


@pytest.mark.slow
def test_train_py_prints_one_line_for_a_bad_setting_and_a_multirun_goes_on(tmp_path):
    single = run(
        [sys.executable, "train.py", "trainer.max_epochs=abc", f"hydra.run.dir={tmp_path / 'run'}", "logger=csv"]
    )
    assert single.returncode == 1 and "Traceback" not in single.stderr
    assert [line for line in error_lines(single.stderr) if line.startswith("error:")] == [
        f"error: ValueError: trainer.max_epochs must be a whole number, got 'abc' (traceback in {tmp_path / 'run' / 'error.txt'})"
    ]
    full = run(
        [sys.executable, "train.py", "trainer.max_epochs=abc", f"hydra.run.dir={tmp_path / 'run2'}", "logger=csv"],
        env={"HYDRA_FULL_ERROR": "1"},
    )
    assert full.returncode == 1 and "Traceback" in full.stderr

    sweep = run(
        [
            sys.executable,
            "train.py",
            "-m",
            "trainer.max_epochs=abc,xyz",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "logger=csv",
        ]
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    errors = sorted((tmp_path / "sweep").glob("*/error.txt"))
    assert len(errors) == 2 and all("must be a whole number" in e.read_text() for e in errors)


# ------------------------------------------------------------------------------------ 8. files in their place


def test_caches_go_to_the_user_cache_dir_never_into_the_package(tmp_path, monkeypatch):
    import twotower
    from twotower.io.paths import cache_dir

    monkeypatch.delenv("TWOTOWER_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))

    assert cache_dir() == tmp_path / "home" / ".cache" / "twotower" and cache_dir().is_dir()
    package = Path(twotower.__file__).resolve().parent
    assert package.parent.parent not in cache_dir().parents
    monkeypatch.setenv("TWOTOWER_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_the_data_dir_follows_the_working_directory_not_the_package(tmp_path, monkeypatch):
    from twotower.io.paths import data_dir

    monkeypatch.delenv("TWOTOWER_DATA", raising=False)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    assert data_dir() == tmp_path / "shared" / "data"
    monkeypatch.setenv("TWOTOWER_DATA", str(tmp_path / "elsewhere"))
    assert data_dir() == tmp_path / "elsewhere"
