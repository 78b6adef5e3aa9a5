"""Dense, BM25 and hybrid search over one index, on faiss and on Milvus Lite; the fusion tuned on training
queries is kept in the manifest; old indexes without BM25 still serve dense search.

The checkpoint is the small untrained mean-of-word-vectors model of `test_search_index.py`, the passages real
MS MARCO ones, in pid order (so ranking ties break the same way by row as the evaluation breaks them by pid).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from tiny_models import make_checkpoint

from twotower.cli import main as cli
from twotower.data.dict_corpus import DictCorpus
from twotower.data.msmarco import read_collection
from twotower.evaluation.hybrid import fused_rankings
from twotower.evaluation.metrics import retrieval_metrics
from twotower.retrieval.bm25 import BM25Index
from twotower.search import MODES, ModeUnavailableError, Searcher, add_bm25, build_index, read_manifest
from twotower.search.batch import run_of, search_queries_file
from twotower.search.fusion_tuning import GRID, save_fusion, tune_fusion

N_DOCS = 300
BACKENDS = ["faiss", "milvus"]


@pytest.fixture(scope="module")
def corpus(msmarco_dir) -> dict[str, str]:
    collection = read_collection(msmarco_dir / "msmarco-passage" / "collection.tsv")
    return dict(sorted(list(collection.items())[:N_DOCS]))


@pytest.fixture(scope="module")
def checkpoint(corpus, tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", list(corpus.values()))


@pytest.fixture(scope="module")
def queries(corpus) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Training-style queries: 8 words from the middle of a passage, judged relevant to that passage."""
    pids = list(corpus)[::10]
    table = {f"q{i}": " ".join(corpus[p].split()[4:12]) for i, p in enumerate(pids)}
    return table, {f"q{i}": {p: 1} for i, p in enumerate(pids)}


def _backend(name: str) -> str:
    if name == "milvus":
        pytest.importorskip("pymilvus", reason="the milvus backend needs pymilvus + milvus-lite")
        pytest.importorskip("milvus_lite", reason="Milvus Lite runs the tests without a server")
    return name


@pytest.fixture(scope="module", params=BACKENDS)
def index(request, checkpoint, corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"index-{request.param}") / "index"
    build_index(checkpoint, corpus, out, backend=_backend(request.param), progress=False)
    return out


def test_an_index_serves_dense_bm25_and_hybrid_search(index, corpus, queries):
    with Searcher.load(index) as searcher:
        assert searcher.modes == MODES == ("dense", "bm25", "hybrid")
        text = queries[0]["q3"]
        found = {mode: searcher.search(text, k=5, mode=mode) for mode in MODES}

    target = next(iter(queries[1]["q3"]))
    for mode, results in found.items():
        assert results.mode == mode and len(results) == 5 and results.ids[0] == target
        assert results.scores == sorted(results.scores, reverse=True)
        assert results.texts[0] == corpus[target]
    assert found["bm25"].encode_ms == 0 and found["bm25"].bm25_ms > 0
    assert found["dense"].bm25_ms == 0 and found["dense"].encode_ms > 0
    assert found["hybrid"].encode_ms > 0 and found["hybrid"].bm25_ms > 0 and found["hybrid"].fusion_ms > 0
    manifest = read_manifest(index)
    assert manifest.bm25["count"] == N_DOCS and all(f in manifest.checksums for f in manifest.files)


def test_the_interactive_mode_command_switches_and_cycles(index):
    from twotower.search.interactive import switch_mode

    with Searcher.load(index) as searcher:
        assert switch_mode(searcher, "dense", ":mode hybrid")[0] == "hybrid"
        assert [switch_mode(searcher, mode, ":m")[0] for mode in MODES] == ["bm25", "hybrid", "dense"]
        mode, message = switch_mode(searcher, "bm25", ":mode fuzzy")
        assert mode == "bm25" and "unknown mode 'fuzzy'" in str(message)


def test_bm25_mode_is_the_one_bm25_of_the_package(index, corpus, queries):
    reference = BM25Index.build(DictCorpus(corpus), index.parent / "reference-bm25")
    texts = list(queries[0].values())
    ids, scores = reference.search(texts, 10)

    with Searcher.load(index) as searcher:
        found = searcher.search(texts, k=10, mode="bm25")

    assert [r.ids for r in found] == ids
    assert [r.scores for r in found] == [pytest.approx(s, rel=1e-6) for s in scores]


@pytest.mark.parametrize("method, weight", [("weighted", 0.3), ("rrf", 1.0)])
def test_hybrid_search_equals_the_evaluation_baselines_fusion_of_the_same_lists(index, queries, method, weight):
    texts = queries[0]
    with Searcher.load(index) as searcher:
        depth = searcher.fusion()["depth"]
        dense = searcher.search(list(texts.values()), k=depth, mode="dense")
        bm25 = searcher.search(list(texts.values()), k=depth, mode="bm25")
        hybrid = searcher.search(list(texts.values()), k=10, mode="hybrid", fusion=method, weight=weight)

    def retrieved(results):
        return {q: r.ids for q, r in zip(texts, results)}, {q: r.scores for q, r in zip(texts, results)}, {}

    ranking, scores = fused_rankings(retrieved(dense), retrieved(bm25), weight, 10, method)
    assert {q: r.ids for q, r in zip(texts, hybrid)} == ranking
    assert all(r.scores == pytest.approx(scores[q]) for q, r in zip(texts, hybrid))


def test_a_hybrid_trec_run_scores_the_same_with_pytrec_eval(index, queries, tmp_path):
    table, qrels = queries
    path = tmp_path / "queries.tsv"
    path.write_text("".join(f"{q}\t{t}\n" for q, t in table.items()))
    with Searcher.load(index) as searcher:
        results = search_queries_file(searcher, path, tmp_path / "hybrid.run", k=20, mode="hybrid", progress=False)

    run: dict[str, dict[str, float]] = {}
    for line in (tmp_path / "hybrid.run").read_text().splitlines():
        qid, _, doc, _, score, _ = line.split()
        run.setdefault(qid, {})[doc] = float(score)
    expected = run_of(results)
    assert run.keys() == expected.keys() and all(run[q] == pytest.approx(expected[q], abs=1e-6) for q in run)
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank", "recall_10"}).evaluate(run)
    ours = retrieval_metrics(run, qrels)
    assert ours["mrr"] == pytest.approx(np.mean([v["recip_rank"] for v in trec.values()]))
    assert ours["recall@10"] == pytest.approx(np.mean([v["recall_10"] for v in trec.values()]))


def test_the_fusion_tuned_on_training_queries_is_saved_read_back_and_overridable(index, queries, tmp_path):
    folder = tmp_path / "tuned"
    shutil.copytree(index, folder)
    if read_manifest(folder).backend == "milvus":
        pytest.skip("Milvus Lite allows one process on a .db: the copy would share the collection")
    table, qrels = queries
    with Searcher.load(folder) as searcher:
        assert searcher.fusion() == {"method": "weighted", "weight": 0.2, "depth": 100}  # untuned default
        record = tune_fusion(searcher, table, qrels, progress=False)
        build_id = searcher.manifest.build_id

    grid = record["tuned_on"]["grid"]
    assert len(grid) == sum(len(w) for w in GRID.values()) and record["tuned_on"]["queries"] == len(table)
    assert record["tuned_on"]["score"] == max(row["mrr@10"] for row in grid)
    assert {"method": record["method"], "weight": record["weight"], "mrr@10": record["tuned_on"]["score"]} in grid
    save_fusion(folder, record, build_id)

    with Searcher.load(folder) as searcher:
        assert read_manifest(folder).fusion == record
        assert searcher.fusion() == {"method": record["method"], "weight": record["weight"], "depth": 100}
        tuned = searcher.search(table["q1"], k=5, mode="hybrid")
        explicit = searcher.search(table["q1"], k=5, mode="hybrid", fusion=record["method"], weight=record["weight"])
        rrf = searcher.search(table["q1"], k=5, mode="hybrid", fusion="rrf", weight=2.0)
    assert tuned.ids == explicit.ids and tuned.scores == explicit.scores
    assert max(rrf.scores) <= 1 / 61 + 2 / 61 + 1e-12  # RRF scores, whatever the manifest says


def test_tune_fusion_and_search_overrides_from_the_command_line(index, queries, tmp_path, capsys):
    if read_manifest(index).backend == "milvus":
        pytest.skip("the CLI path is the same for both backends; Milvus Lite allows one process on a .db")
    folder = tmp_path / "cli"
    shutil.copytree(index, folder)
    table, qrels = queries
    (tmp_path / "train-queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in table.items()))
    (tmp_path / "train-qrels.tsv").write_text("".join(f"{q} 0 {p} 1\n" for q, d in qrels.items() for p in d))

    args = ["--index", str(folder), "--queries", str(tmp_path / "train-queries.tsv")]
    assert cli(["tune-fusion", *args, "--qrels", str(tmp_path / "train-qrels.tsv")]) == 0
    fusion = read_manifest(folder).fusion
    assert fusion["tuned_on"]["queries_file"].endswith("train-queries.tsv")

    capsys.readouterr()
    query = ["search", "--index", str(folder), "--query", table["q2"], "--json", "-k", "3", "--mode", "hybrid"]
    assert cli([*query, "--fusion", "rrf", "--weight", "0"]) == 0
    out = json.loads(capsys.readouterr().out)[0]
    assert out["mode"] == "hybrid" and [h["score"] for h in out["hits"]] == pytest.approx([1 / 61, 1 / 62, 1 / 63])
    assert cli(["search", "--index", str(folder), "--query", "x", "--weight", "1"]) == 1
    assert "add --mode hybrid" in capsys.readouterr().err


def test_an_old_index_without_bm25_serves_dense_and_refuses_bm25_in_one_line(checkpoint, corpus, tmp_path, capsys):
    folder = tmp_path / "old"
    build_index(checkpoint, corpus, folder, bm25=False, progress=False)
    data = json.loads((folder / "manifest.json").read_text())
    for key in ("bm25", "fusion"):  # what a manifest written before BM25 was stored looks like
        del data[key]
    (folder / "manifest.json").write_text(json.dumps(data))
    text = next(iter(corpus.values()))

    with Searcher.load(folder) as searcher:
        assert searcher.modes == ("dense",)
        dense = searcher.search(text, k=3)
        assert dense.ids[0] == next(iter(corpus))
        for mode in ("bm25", "hybrid"):
            with pytest.raises(ModeUnavailableError, match=f"--mode {mode} needs a BM25 index.*--add-bm25 --out"):
                searcher.search(text, mode=mode)
        from twotower.search.interactive import switch_mode

        mode, message = switch_mode(searcher, "dense", ":mode bm25")
        assert mode == "dense" and "--add-bm25" in str(message)
    assert cli(["search", "--index", str(folder), "--query", "egg", "--mode", "hybrid"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --mode hybrid needs a BM25 index") and err.count("\n") == 1

    add_bm25(folder, progress=False)  # `twotower index --add-bm25 --out DIR`: no re-encoding
    with Searcher.load(folder) as searcher:
        assert searcher.modes == MODES
        assert (
            searcher.search(text, k=3).ids == dense.ids and searcher.search(text, k=1, mode="bm25").ids == dense.ids[:1]
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_added_documents_are_found_by_bm25_and_hybrid_and_the_bm25_part_follows(backend, checkpoint, corpus, tmp_path):
    folder = tmp_path / "grow"
    build_index(checkpoint, corpus, folder, backend=_backend(backend), progress=False)
    texts = list(corpus.values())
    new = {"new-1": f"{texts[1][:80]} zqxjkv", "new-2": f"{texts[2][:80]} wvyqpx {texts[3][:40]}"}

    with Searcher.load(folder) as searcher:
        old_folder = searcher.manifest.bm25["folder"]
        assert searcher.search("zqxjkv", k=1, mode="bm25").ids == []  # no passage has the word yet
        assert searcher.add(new) == 2
        assert searcher.search("zqxjkv", k=1, mode="bm25").ids == ["new-1"]
        assert searcher.search(f"wvyqpx {texts[2][:80]}", k=1, mode="hybrid").ids == ["new-2"]

    manifest = read_manifest(folder)
    assert manifest.bm25["count"] == manifest.count == N_DOCS + 2
    assert not (folder / old_folder).exists() and (folder / manifest.bm25["folder"]).is_dir()
    with Searcher.load(folder) as reloaded:
        assert len(reloaded.bm25) == N_DOCS + 2
        assert reloaded.search("wvyqpx", k=1, mode="bm25").ids == ["new-2"]


def test_a_damaged_bm25_part_is_caught_on_load_and_add_bm25_repairs_it(checkpoint, corpus, tmp_path):
    from twotower.search import IndexCorruptError

    folder = tmp_path / "damaged"
    build_index(checkpoint, corpus, folder, progress=False)
    part = folder / read_manifest(folder).bm25["folder"]
    victim = max(part.glob("*.npy"), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:-8])

    with pytest.raises(IndexCorruptError, match=victim.name):
        Searcher.load(folder)
    add_bm25(folder, progress=False)  # `twotower index --add-bm25 --out DIR`: rebuilt from the document store
    with Searcher.load(folder) as searcher:
        assert searcher.search(next(iter(corpus.values())), k=1, mode="bm25").ids == [next(iter(corpus))]
    assert not part.exists()
