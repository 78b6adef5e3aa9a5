"""Integrity of everything we read back (issue 18, section 4): each artefact carries a checksum written with it.

Before: a same-size damaged file (a flipped byte in the middle: a bad disk, a torn copy, an edit) of a corpus,
its row map, a BM25 index, a triplet shard or a Deep Memory store was read back as if whole: wrong text,
wrong rows or wrong vectors, silently. Now a damaged *cache* is rebuilt with one log line, and a damaged
*user artefact* is refused with one line naming the file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

PASSAGES = {str(i * 3): f"passage {i} about topic {i % 11} with some words" for i in range(3000)}


def flip_a_byte(path: Path, at: float = 0.5) -> None:
    """Damage `path` in place as a bad disk would: one byte, same size, same mtime."""
    stat = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(int(stat.st_size * at))
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0x20]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def as_a_new_process() -> None:
    """Forget which files this process has verified: the next open checks them again, as a new process would."""
    import sys

    checksum = sys.modules.get("twotower.io.checksum")  # absent before checksums existed
    if checksum is not None:
        checksum.forget_verified()


def rebuild_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage() and r.levelno >= logging.WARNING]


@pytest.fixture
def collection(tmp_path) -> Path:
    path = tmp_path / "collection.tsv"
    path.write_text("".join(f"{pid}\t{text}\n" for pid, text in PASSAGES.items()))
    return path


# ---------------------------------------------------------------------------------------- corpus and row map


@pytest.mark.parametrize("name", ["corpus.arrow", "keys.npy", "rows.npy"])
def test_a_damaged_corpus_cache_file_is_rebuilt_with_one_log_line(collection, name, caplog):
    from twotower.data.corpus import Corpus

    built = Corpus.build(collection)
    flip_a_byte(built.path / name, at=0.6)

    as_a_new_process()
    with caplog.at_level(logging.INFO):
        again = Corpus.build(collection)
    assert [again[pid] for pid in list(PASSAGES)[::97]] == [PASSAGES[pid] for pid in list(PASSAGES)[::97]]
    assert again.texts(list(PASSAGES)) == list(PASSAGES.values())
    lines = rebuild_lines(caplog)
    assert len(lines) == 1 and name in lines[0]


def test_a_damaged_corpus_opened_by_path_is_refused_naming_the_file(collection, tmp_path):
    from twotower.data.corpus import Corpus
    from twotower.errors import one_line

    Corpus.build(collection, tmp_path / "my-corpus")
    flip_a_byte(tmp_path / "my-corpus" / "corpus.arrow")
    as_a_new_process()
    with pytest.raises(ValueError) as err:
        Corpus.open(tmp_path / "my-corpus")
    line = one_line(err.value)
    assert str(tmp_path / "my-corpus" / "corpus.arrow") in line and "damaged" in line and "\n" not in line


def test_a_corpus_built_before_checksums_still_opens_and_gains_them(collection, tmp_path):
    import json

    from twotower.data.corpus import DONE, Corpus

    folder = Corpus.build(collection, tmp_path / "old").path
    info = json.loads((folder / DONE).read_text())
    del info["checksums"]  # as an older twotower wrote it
    (folder / DONE).write_text(json.dumps(info))

    assert Corpus.open(folder)["3"] == PASSAGES["3"]
    assert set(json.loads((folder / DONE).read_text())["checksums"]) == {"corpus.arrow", "keys.npy", "rows.npy"}


# ------------------------------------------------------------------------------------------------ BM25 index


def test_a_damaged_bm25_index_cache_is_rebuilt_with_one_log_line(collection, caplog):
    from twotower.data.corpus import Corpus
    from twotower.retrieval.bm25 import BM25Index

    corpus = Corpus.build(collection)
    index = BM25Index.build(corpus)
    expected = index.search(["passage about topic 7"], k=5)
    biggest = max((p for p in index.path.iterdir() if p.suffix == ".npy"), key=lambda p: p.stat().st_size)
    flip_a_byte(biggest, at=0.7)

    as_a_new_process()
    with caplog.at_level(logging.INFO):
        again = BM25Index.build(corpus)
    assert again.search(["passage about topic 7"], k=5) == expected
    lines = rebuild_lines(caplog)
    assert len(lines) == 1 and biggest.name in lines[0]


# ------------------------------------------------------------------------------------------------ triplets


def test_a_damaged_triplet_shard_is_rebuilt_with_one_log_line(small_msmarco, caplog):
    import pyarrow.parquet as pq

    from twotower.data.msmarco import passage_split
    from twotower.data.prepare import PrepareConfig, prepare_triplets, triplet_files

    split = passage_split("train", small_msmarco / "msmarco-passage")
    config = PrepareConfig(shard_rows=50, row_group_rows=10)
    out = prepare_triplets(split, config, "train-damaged-shard")
    rows = pq.read_table(triplet_files(out)).to_pylist()
    flip_a_byte(triplet_files(out)[2], at=0.4)

    as_a_new_process()
    with caplog.at_level(logging.INFO):
        prepare_triplets(split, config, "train-damaged-shard")
    assert pq.read_table(triplet_files(out)).to_pylist() == rows
    lines = rebuild_lines(caplog)
    assert len(lines) == 1 and "shard-00002.parquet" in lines[0]


def test_a_triplet_set_written_before_checksums_is_reused_and_gains_them(small_msmarco, caplog):
    import json

    from twotower.data.msmarco import passage_split
    from twotower.data.prepare import DONE, PrepareConfig, prepare_triplets, triplet_files

    split = passage_split("train", small_msmarco / "msmarco-passage")
    config = PrepareConfig(shard_rows=50)
    out = prepare_triplets(split, config, "train-old-set")
    info = json.loads((out / DONE).read_text())
    (out / DONE).write_text(json.dumps({k: v for k, v in info.items() if k != "files"}))  # as written before

    with caplog.at_level(logging.INFO):
        assert prepare_triplets(split, config, "train-old-set") == out
    assert any("reusing the triplets" in r.getMessage() for r in caplog.records) and not rebuild_lines(caplog)
    assert json.loads((out / DONE).read_text())["files"] == info["files"]
    assert len(triplet_files(out)) == info["shards"]


# ------------------------------------------------------------------------------------------ Deep Memory store


def test_damaged_deep_memory_store_vectors_are_refused_naming_the_file(tmp_path):
    from twotower.deep_memory import HashingEmbedding, VectorStore
    from twotower.errors import one_line

    db = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=16))
    db.add([f"document {i} on topic {i % 5}" for i in range(200)], ids=[f"d{i}" for i in range(200)])
    vectors = next((tmp_path / "store").glob("data*/embeddings.npy"))
    flip_a_byte(vectors, at=0.5)

    as_a_new_process()
    with pytest.raises(ValueError) as err:
        VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=16)).search("document 3", k=2)
    line = one_line(err.value)
    assert str(vectors) in line and "damaged" in line


def test_a_store_written_before_versions_and_checksums_still_loads_and_takes_adds(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from twotower.deep_memory import HashingEmbedding, VectorStore

    store = tmp_path / "old-store"  # the format-1 layout: one data/ folder, no checksums
    (store / "data").mkdir(parents=True)
    emb = HashingEmbedding(dim=8)
    vectors = np.asarray(emb(["an old document"]), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pq.write_table(
        pa.table({"id": ["old"], "text": ["an old document"], "metadata": [None]}), store / "data" / "documents.parquet"
    )
    np.save(store / "data" / "embeddings.npy", vectors)
    (store / "store.json").write_text(json.dumps({"format": 1, "dim": 8, "count": 1, "embedding_function": "hashing"}))

    db = VectorStore(store, embedding_function=emb)
    assert db.ids == ["old"] and db.search("old document", k=1)["id"] == ["old"]
    db.add(["a new document"], ids=["new"])
    assert VectorStore(store, embedding_function=emb).ids == ["old", "new"]
    assert json.loads((store / "store.json").read_text())["checksums"]


# ----------------------------------------------------------------------------- embedding and teacher caches


def test_a_damaged_embedding_cache_is_embedded_again_with_one_log_line(tmp_path, caplog):
    from twotower.retrieval.embedding_cache import cached_embeddings

    texts = [f"text number {i}" for i in range(500)]
    calls = []

    def embed(batch: list[str]) -> np.ndarray:  # a stand-in model: one row per text, from its number
        calls.append(len(batch))
        return np.array([[float(t.split()[-1]), 1.0, 2.0, 3.0] for t in batch], dtype=np.float32)

    first = cached_embeddings(embed, texts, tmp_path / "vectors.npy", progress=False)
    flip_a_byte(tmp_path / "vectors.npy", at=0.5)
    as_a_new_process()
    with caplog.at_level(logging.INFO):
        again = cached_embeddings(embed, texts, tmp_path / "vectors.npy", progress=False)
    np.testing.assert_array_equal(again, first)
    assert sum(calls) == 2 * len(texts)  # embedded twice: the damaged cache was not served
    lines = rebuild_lines(caplog)
    assert len(lines) == 1 and "vectors.npy" in lines[0]


def test_an_embedding_cache_written_before_checksums_is_reused_and_gains_one(tmp_path):
    from twotower.retrieval.embedding_cache import cached_embeddings

    texts = [f"text number {i}" for i in range(50)]
    calls = []

    def embed(batch: list[str]) -> np.ndarray:
        calls.append(len(batch))
        return np.ones((len(batch), 4), dtype=np.float32)

    cached_embeddings(embed, texts, tmp_path / "vectors.npy", progress=False)
    key = tmp_path / "vectors.npy.key"
    key.write_text(key.read_text().split()[0])  # the key file as an older twotower wrote it: no checksum
    as_a_new_process()
    cached_embeddings(embed, texts, tmp_path / "vectors.npy", progress=False)
    assert sum(calls) == len(texts)  # reused, not embedded again
    assert len(key.read_text().split()) == 2  # and its checksum recorded


# ------------------------------------------------------------------- a transformer backbone inside a .pt


@pytest.fixture
def transformer_pt(tiny_bert, tmp_path) -> Path:
    """A `.pt` of a tiny BERT tower: its backbone config and tokenizer files travel inside it."""
    from functools import partial

    from twotower.models.build import build_two_tower
    from twotower.models.checkpoint import model_fields, save_checkpoint
    from twotower.models.transformer import TransformerTower

    tower = {"_target_": "twotower.models.transformer.TransformerTower", "_partial_": True, "path": str(tiny_bert)}
    model = build_two_tower(partial(TransformerTower, path=str(tiny_bert)), query_max_length=8, doc_max_length=8)
    config = {"tower": tower, "shared": True, "tokenizer": None, "query_max_length": 8, "doc_max_length": 8}
    extra = {"training_stats": {}, "epoch": 0, "eval_results": {}, "wandb_run_id": None}
    return save_checkpoint(tmp_path / "best.pt", {**model_fields(model, config), **extra})


def test_an_edited_backbone_config_inside_a_pt_is_refused_naming_the_file(transformer_pt):
    import torch

    from twotower.errors import one_line
    from twotower.models.checkpoint import load_checkpoint

    assert load_checkpoint(transformer_pt)["model_config"]["tower_fields"]["backbone_config"]["hidden_act"] == "gelu"
    # Same weights, another activation: the model would load and give other vectors, silently.
    payload = torch.load(transformer_pt, weights_only=True)
    payload["model_config"]["tower_fields"]["backbone_config"]["hidden_act"] = "relu"
    torch.save(payload, transformer_pt)
    with pytest.raises(ValueError) as err:
        load_checkpoint(transformer_pt)
    line = one_line(err.value)
    assert str(transformer_pt) in line and "damaged" in line and "config" in line


def test_an_edited_tokenizer_inside_a_pt_is_refused(transformer_pt):
    import torch

    from twotower.models.checkpoint import load_checkpoint

    payload = torch.load(transformer_pt, weights_only=True)
    files = payload["model_config"]["tower_fields"]["tokenizer_files"]
    name = next(n for n in files if n.endswith("tokenizer_config.json"))
    files[name] = files[name].replace('"do_lower_case": true', '"do_lower_case": false')
    assert "false" in files[name]
    torch.save(payload, transformer_pt)
    with pytest.raises(ValueError, match="damaged"):
        load_checkpoint(transformer_pt)
