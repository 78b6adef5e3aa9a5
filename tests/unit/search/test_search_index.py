"""Index a collection with a checkpoint, reload it, query it, grow it; and every way that can go wrong.

Every test runs against both backends: faiss files, and Milvus (Milvus Lite, embedded) when pymilvus is
installed. The checkpoint is a small untrained mean-of-word-vectors model: a passage searched with its own
text must come back first, which is enough to prove the plumbing.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tiny_models import MAX_TOKENS, first_passages, make_checkpoint

from twotower.conf import CONF_DIR
from twotower.data.msmarco import DataFormatError
from twotower.models.tokenizers import WordTokenizer
from twotower.search import (
    DuplicateDocumentError,
    EmptyQueryError,
    FlatIndex,
    HNSWIndex,
    IndexCorruptError,
    IndexMismatchError,
    IndexNotFoundError,
    IVFIndex,
    Searcher,
    build_index,
    read_manifest,
)

N_DOCS = 400
BACKENDS = ["faiss", "milvus"]


@pytest.fixture(autouse=True, scope="module")
def _one_faiss_thread():
    # Training tiny PQ codebooks with OpenMP threads on a busy 2-core machine takes seconds instead of milliseconds.
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(msmarco_dir) -> dict[str, str]:
    return first_passages(msmarco_dir, N_DOCS)


@pytest.fixture(scope="module")
def checkpoint(corpus, tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", list(corpus.values()))


@pytest.fixture(scope="module")
def other_checkpoint(corpus, tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt2") / "best.pt", list(corpus.values()), seed=1)


@pytest.fixture(scope="module")
def collection_file(corpus, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "collection.tsv"
    path.write_text("".join(f"{pid}\t{text}\n" for pid, text in corpus.items()))
    return path


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "milvus":
        pytest.importorskip("pymilvus", reason="the milvus backend needs pymilvus + milvus-lite")
        pytest.importorskip(
            "milvus_lite", reason="Milvus Lite (pip install milvus-lite) runs the tests without a server"
        )
    return request.param


@pytest.fixture
def index(backend, checkpoint, collection_file, tmp_path) -> Path:
    build_index(checkpoint, collection_file, tmp_path / "index", backend=backend, progress=False)
    return tmp_path / "index"


def own_text_queries(corpus, n=20):
    """Passages whose first MAX_TOKENS words no other passage shares (MS MARCO has near-duplicates)."""
    tokenize = WordTokenizer({"<pad>": 0, "<unk>": 1}).tokenize
    heads = [tuple(tokenize(t)[:MAX_TOKENS]) for t in corpus.values()]
    unique = [p for p, h in zip(corpus, heads) if heads.count(h) == 1]
    pids = unique[:: len(unique) // n][:n]
    return pids, [corpus[p] for p in pids]


def test_a_passage_searched_with_its_own_text_comes_back_first(index, corpus):
    searcher = Searcher.load(index)
    pids, queries = own_text_queries(corpus)

    results = searcher.search(queries, k=5)

    assert [r.ids[0] for r in results] == pids
    assert all(r.scores[0] == pytest.approx(1.0, abs=1e-4) for r in results)
    assert all(r.texts[0] == corpus[p] for r, p in zip(results, pids))
    assert all(r.scores == sorted(r.scores, reverse=True) and len(r) == 5 for r in results)
    searcher.close()


def test_one_query_gives_one_result_list_with_timings(index, corpus):
    with Searcher.load(index) as searcher:
        found = searcher.search("cooking an egg", k=3)

    assert len(found.hits) == 3 and [h.rank for h in found] == [1, 2, 3]
    assert found.encode_ms > 0 and found.search_ms > 0 and found.total_ms >= found.search_ms
    assert all(h.id in corpus for h in found)


def test_the_manifest_ties_the_index_to_the_checkpoint(index, checkpoint, backend):
    manifest = read_manifest(index)

    from twotower.io.fingerprint import file_sha256 as file_hash

    assert manifest.checkpoint["sha256"] == file_hash(checkpoint)
    assert manifest.checkpoint["model_config"]["tower"]["output_dim"] == manifest.dim == 32
    assert manifest.count == N_DOCS and manifest.backend == backend and manifest.kind == "flat"
    assert manifest.build["passages_per_second"] > 0


@pytest.mark.parametrize(
    "kind",
    [IVFIndex(nprobe=64), IVFIndex(encoding="pq", pq_bytes=8, nprobe=64, k_factor=64), HNSWIndex(m=16, ef_search=64)],
    ids=["ivf", "ivf-pq", "hnsw"],
)
def test_approximate_kinds_find_what_exact_search_finds(kind, backend, checkpoint, collection_file, corpus, tmp_path):
    if backend == "milvus" and getattr(kind, "encoding", "flat") == "pq":
        pytest.skip("IVF-PQ's 4-bit codes are a faiss fast-scan layout")
    build_index(checkpoint, collection_file, tmp_path / "approx", kind=kind, backend=backend, progress=False)
    pids, queries = own_text_queries(corpus)

    with Searcher.load(tmp_path / "approx") as searcher:
        assert searcher.spec == kind
        assert [r.ids[0] for r in searcher.search(queries, k=3)] == pids


def test_similarity_scores_texts_with_the_two_towers(index, corpus):
    searcher = Searcher.load(index)
    text = next(iter(corpus.values()))

    assert searcher.similarity(text, text) == pytest.approx(1.0, abs=1e-5)
    matrix = searcher.similarity(["boiling eggs", "stock market"], ["how to boil an egg", "shares fell", "an egg"])
    assert matrix.shape == (2, 3) and np.all(np.abs(matrix) <= 1 + 1e-5)
    # The same towers as search: similarity reproduces the search scores.
    found = searcher.search("longest word in the dictionary", k=3)
    assert searcher.similarity("longest word in the dictionary", found.texts) == pytest.approx(
        np.array([found.scores]), abs=1e-4
    )


def test_documents_added_later_are_found_and_survive_a_reload(index, corpus):
    searcher = Searcher.load(index)
    texts = list(corpus.values())
    # New passages mixing words of old ones: the model knows the words, no old passage has this mix.
    new = {"new-1": f"{texts[1][:80]} {texts[2][:80]}", "new-2": f"{texts[3][:80]} {texts[4][:80]}"}

    assert searcher.add(new) == 2

    assert len(searcher) == N_DOCS + 2
    assert searcher.search(new["new-1"], k=1).ids == ["new-1"]
    searcher.close()
    reloaded = Searcher.load(index)
    assert len(reloaded) == N_DOCS + 2 and read_manifest(index).count == N_DOCS + 2
    assert reloaded.search(new["new-2"], k=1).ids == ["new-2"]
    with pytest.raises(DuplicateDocumentError, match="already in"):
        reloaded.add({"new-1": "again"})
    assert reloaded.add({"new-1": "again", "new-3": "third"}, skip_existing=True) == 1
    assert len(reloaded) == N_DOCS + 3
    reloaded.close()


def test_a_failed_add_leaves_the_index_as_it_was(index, monkeypatch):
    searcher = Searcher.load(index)
    before = read_manifest(index)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("twotower.search.add.write_manifest", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        searcher.add({"lost": "a passage that never makes it"})

    assert read_manifest(index) == before
    assert len(searcher) == N_DOCS and searcher.search("a passage that never makes it", k=N_DOCS).ids.count("lost") == 0
    assert sorted(p.name for p in index.glob("*-*.*")) == sorted(f for f in before.files if "/" not in f)
    assert [p.name for p in index.glob("bm25-*")] == [before.bm25["folder"]]  # the add's BM25 rebuild is gone too
    searcher.close()


def test_a_failed_rebuild_leaves_the_previous_index_intact(index, backend, checkpoint, collection_file, monkeypatch):
    before = read_manifest(index)
    files = sorted(p.name for p in index.iterdir())

    def broken(self, vectors):
        raise RuntimeError("killed while indexing")

    target = (
        "twotower.search.faiss_backend.FaissBackend.add"
        if backend == "faiss"
        else "twotower.search.milvus_backend.MilvusBackend.add"
    )
    monkeypatch.setattr(target, broken)
    with pytest.raises(RuntimeError, match="killed"):
        build_index(checkpoint, collection_file, index, kind="hnsw", backend=backend, progress=False)
    monkeypatch.undo()

    assert read_manifest(index) == before
    assert sorted(p.name for p in index.iterdir()) == files
    if backend == "milvus":
        assert milvus_collections(index) == [before.milvus["collection"]]  # the half-built one was dropped
    with Searcher.load(index) as searcher:
        assert searcher.spec == FlatIndex() and len(searcher) == N_DOCS
        assert len(searcher.search("egg", k=3)) == 3


def test_a_rebuild_replaces_the_index_and_removes_the_old_files(index, backend, checkpoint, collection_file):
    old = read_manifest(index)
    (index / "vectors-0badc0ffee00.faiss").write_bytes(b"left by a build that was killed")

    new = build_index(checkpoint, collection_file, index, kind="hnsw", backend=backend, progress=False)

    assert new.build_id != old.build_id and read_manifest(index).kind == "hnsw"
    assert not any(index.glob(f"*-{old.build_id}.*")) and not (index / "vectors-0badc0ffee00.faiss").exists()
    if backend == "milvus":
        assert milvus_collections(index) == [new.milvus["collection"]]


def milvus_collections(index: Path) -> list[str]:
    from pymilvus import MilvusClient

    return MilvusClient(str((index / "milvus.db").resolve())).list_collections()


def test_an_index_built_by_another_model_is_refused(index, other_checkpoint):
    with pytest.raises(IndexMismatchError, match="different model") as err:
        Searcher.load(index, checkpoint=other_checkpoint)
    assert str(other_checkpoint) in str(err.value) and "rebuild" in str(err.value)


def test_a_checkpoint_overwritten_after_indexing_is_refused(index, checkpoint, corpus, tmp_path):
    moved = tmp_path / "best.pt"
    shutil.copy(checkpoint, moved)
    build_index(moved, corpus, tmp_path / "idx2", progress=False)
    make_checkpoint(moved, list(corpus.values()), seed=7)  # training wrote a new best.pt over it

    with pytest.raises(IndexMismatchError, match="different model"):
        Searcher.load(tmp_path / "idx2")


def test_missing_and_truncated_indexes_get_clear_errors(index, backend, tmp_path):
    with pytest.raises(IndexNotFoundError, match="no index at"):
        Searcher.load(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IndexNotFoundError, match="manifest.json is missing"):
        Searcher.load(empty)

    manifest = read_manifest(index)
    name = next(n for n in manifest.files if n.startswith("vectors" if backend == "faiss" else "documents"))
    (index / name).write_bytes(b"\0" * manifest.files[name])  # right size, garbage inside
    with pytest.raises(IndexCorruptError, match=f"{name} is damaged: its checksum differs"):
        Searcher.load(index)
    with pytest.raises(IndexCorruptError, match=f"{name} is not a readable faiss index|{name} is unreadable"):
        Searcher.load(index, verify=False)  # without the checksum, the reader still refuses the garbage
    with open(index / name, "r+b") as fh:
        fh.truncate(manifest.files[name] // 2)
    with pytest.raises(IndexCorruptError, match=rf"{name} is .* bytes but was .* \(truncated"):
        Searcher.load(index)

    (index / "manifest.json").write_text('{"format": "twotower-index/1", "backend": ')
    with pytest.raises(IndexCorruptError, match="not valid JSON"):
        Searcher.load(index)


def test_an_index_built_before_xxh3_checksums_is_verified_by_its_sha256_digests(index):
    import hashlib

    data = json.loads((index / "manifest.json").read_text())
    data["sha256"] = {name: hashlib.sha256((index / name).read_bytes()).hexdigest() for name in data["files"]}
    del data["checksums"]  # how a manifest of the previous release looks
    (index / "manifest.json").write_text(json.dumps(data))
    with Searcher.load(index) as searcher:
        assert len(searcher.search("cooking an egg", k=3)) == 3

    name = next(n for n in data["files"] if n.startswith("documents"))
    (index / name).write_bytes(b"\0" * data["files"][name])
    with pytest.raises(IndexCorruptError, match=f"{name} is damaged: its checksum differs"):
        Searcher.load(index)


def test_an_empty_query_is_an_error_and_a_long_one_is_truncated(index):
    searcher = Searcher.load(index)
    with pytest.raises(EmptyQueryError, match="empty"):
        searcher.search("   ")
    with pytest.raises(EmptyQueryError, match=r"query 1"):
        searcher.search(["egg", ""])

    long_query = " ".join(["egg"] * 10 + ["zebra"] * (MAX_TOKENS + 10))
    found = searcher.search(long_query, k=3)

    assert found.truncated and found.query_tokens == MAX_TOKENS + 20 and found.max_query_tokens == MAX_TOKENS
    # The model read only the first MAX_TOKENS words: the same as the query cut there.
    cut = searcher.search(" ".join(long_query.split()[:MAX_TOKENS]), k=3)
    assert found.ids == cut.ids and not cut.truncated
    searcher.close()


def test_k_larger_than_the_corpus_returns_every_document(index):
    with Searcher.load(index) as searcher:
        assert len(searcher.search("egg", k=N_DOCS + 50)) == N_DOCS


def test_duplicate_ids_in_a_collection_are_rejected_before_anything_is_written(checkpoint, tmp_path):
    bad = tmp_path / "dup.tsv"
    bad.write_text("1\tfirst passage\n2\tsecond passage\n1\tthird passage\n")
    with pytest.raises(DataFormatError, match="duplicate passage id '1'"):
        build_index(checkpoint, bad, tmp_path / "idx", progress=False)
    assert not (tmp_path / "idx").exists()

    jsonl = tmp_path / "dup.jsonl"
    jsonl.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(DataFormatError, match="line 2: duplicate document id 'a'"):
        build_index(checkpoint, jsonl, tmp_path / "idx", progress=False)


def test_metadata_from_jsonl_and_parquet_comes_back_with_hits(checkpoint, msmarco_dir, tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        json.dumps({"id": "d1", "text": "how to poach an egg", "source": "kitchen", "year": 2020})
        + "\n"
        + json.dumps({"id": "d2", "text": "stock markets fell today", "source": "news"})
        + "\n"
    )
    build_index(checkpoint, docs, tmp_path / "jsonl", progress=False)
    with Searcher.load(tmp_path / "jsonl") as searcher:
        assert searcher.search("how to poach an egg", k=1)[0].metadata == {"source": "kitchen", "year": 2020}

    parquet = msmarco_dir / "msmarco-v1.1-sample" / "train-sample.parquet"
    build_index(checkpoint, parquet, tmp_path / "parquet", progress=False)
    with Searcher.load(tmp_path / "parquet") as searcher:
        hit = searcher.search("cost of sales", k=1)[0]
        assert hit.metadata["url"].startswith("http")


def test_a_folder_that_is_not_an_index_is_never_overwritten(checkpoint, corpus, tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")

    from twotower.io.output import OutputExistsError

    with pytest.raises(OutputExistsError, match="not a twotower index"):
        build_index(checkpoint, corpus, precious, progress=False)
    assert (precious / "chapter1.tex").read_text() == "..."


def test_index_kind_configs_match_the_code_defaults():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    conf = CONF_DIR / "index"
    for kind in (FlatIndex(), IVFIndex(), HNSWIndex()):
        assert instantiate(OmegaConf.load(conf / f"{kind.kind}.yaml")) == kind
