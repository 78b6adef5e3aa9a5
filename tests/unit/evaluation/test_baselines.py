"""BM25 and zero-shot MiniLM baselines, scored the same way as a checkpoint (`EvalResult`); each is a class built
from its shipped config."""

import numpy as np
import pytest

from twotower.data.msmarco import Split, passage_split
from twotower.evaluation.baselines import BM25Baseline, DenseBaseline, load_baseline

# The figures measured in ../shared/data/README.md (480 dev queries, 24,372 passages).
README = {
    "bm25": {"mrr@10": 0.321, "recall@10": 0.679, "ndcg@10": 0.407},
    "minilm": {"mrr@10": 0.531, "recall@10": 0.852, "ndcg@10": 0.609},
}


@pytest.fixture
def tiny_split() -> Split:
    collection = {
        "p1": "Place the eggs in boiling water and cook them for seven minutes.",
        "p2": "The stock market fell sharply as investors sold technology shares.",
        "p3": "Paris is the capital and most populous city of France.",
        "p4": "A golden retriever is a friendly, medium-sized dog breed.",
        "p5": "Photosynthesis converts light energy into chemical energy in plants.",
    }
    queries = {
        "q1": "how long to cook eggs in boiling water",
        "q2": "capital city of france",
        "q3": "why did share prices drop",
        "q4": "unjudged query about dogs",
    }
    qrels = {"q1": {"p1": 1}, "q2": {"p3": 1}, "q3": {"p2": 1}}
    return Split(queries, qrels, collection)


def test_bm25_ranks_the_passage_sharing_the_query_words_first(tiny_split):
    result = load_baseline("bm25").evaluate(tiny_split, progress=False)

    assert result.ranking["q1"][0] == "p1" and result.ranking["q2"][0] == "p3"
    assert result.num_queries == 3 and "q4" not in result.ranking  # only judged queries are scored
    assert result.num_passages == 5
    assert result.scores["q1"] == sorted(result.scores["q1"], reverse=True)


def test_minilm_understands_what_bm25_cannot_and_caches_the_corpus(tiny_split, monkeypatch):
    # "share prices drop" shares no word with "stock market fell ... shares" except by meaning.
    minilm = load_baseline("minilm")
    assert minilm == DenseBaseline(model="minilm", batch_size=64)
    result = minilm.evaluate(tiny_split, progress=False)
    assert result.metrics["mrr@10"] == 1.0
    cache = minilm.cache_path(tiny_split.collection)
    assert cache.name.startswith("minilm_") and len(cache.stem) == len("minilm_") + 12 and cache.exists()
    assert np.allclose(np.linalg.norm(np.load(cache), axis=1), 1.0, atol=1e-5)

    encoded = []
    real_encode = DenseBaseline.encode
    monkeypatch.setattr(
        DenseBaseline,
        "encode",
        lambda self, model, texts, side: encoded.append((side, len(texts))) or real_encode(self, model, texts, side),
    )
    again = minilm.evaluate(tiny_split, progress=False)
    assert encoded == [("query", 3)]  # the three judged queries; the corpus came from the cache
    assert again.ranking == result.ranking


def test_the_cache_key_changes_when_any_passage_changes(tiny_split):
    edited = dict(tiny_split.collection, p5="Photosynthesis converts light into sugar.")
    reordered = dict(reversed(list(tiny_split.collection.items())))

    cache_path = DenseBaseline(model="minilm").cache_path
    assert cache_path(edited) != cache_path(tiny_split.collection)
    assert cache_path(reordered) == cache_path(tiny_split.collection)


def test_any_sentence_transformers_folder_is_a_dense_baseline_cached_under_its_own_key(tiny_split, tiny_bert):
    dense = DenseBaseline(model=str(tiny_bert), batch_size=8)
    result = dense.evaluate(tiny_split, progress=False)

    assert result.num_queries == 3 and all(len(r) == 5 for r in result.ranking.values())
    assert dense.cache_path(tiny_split.collection).name.startswith(f"st-{tiny_bert.name}_")
    assert dense.cache_path(tiny_split.collection) != DenseBaseline().cache_path(tiny_split.collection)


def test_max_queries_and_k_limit_the_work(small_msmarco):
    split = passage_split("dev", small_msmarco / "msmarco-passage")
    result = BM25Baseline().evaluate(split, max_queries=10, k=20, progress=False)

    assert result.num_queries == 10 and len(result.ranking) == 10
    assert all(len(r) == 20 for r in result.ranking.values())
    assert set(result.metrics) >= {"mrr@10", "recall@1", "recall@5", "recall@10", "ndcg@10", "map"}


def test_an_unknown_baseline_is_named_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown baseline 'bm42'.*bm25, hybrid, minilm"):
        load_baseline("bm42")
    # A name picks one of the configs we ship, never a file elsewhere.
    with pytest.raises(ValueError, match="unknown baseline"):
        load_baseline(str(tmp_path / "bm25"))
    with pytest.raises(FileNotFoundError, match="baselines.<name>.model takes `minilm` or a sentence-transformers"):
        DenseBaseline(model=str(tmp_path / "nowhere"))


def test_bm25_reproduces_the_readme_figures_on_the_full_dev_set(msmarco_dir):
    result = load_baseline("bm25").evaluate(passage_split("dev", msmarco_dir / "msmarco-passage"), progress=False)

    assert result.num_queries == 480 and result.num_passages == 24_372
    for metric, expected in README["bm25"].items():
        assert result.metrics[metric] == pytest.approx(expected, abs=0.005), metric
    assert result.metrics["mrr@10"] == pytest.approx(0.32199, abs=1e-5)  # exactly what evaluate.py has measured


@pytest.mark.slow
def test_minilm_reproduces_the_readme_figures_on_the_full_dev_set(msmarco_dir, monkeypatch):
    # The project's own cache (outputs/cache): the corpus encode takes ~10 minutes once, then seconds.
    monkeypatch.delenv("TWOTOWER_CACHE", raising=False)
    result = load_baseline("minilm").evaluate(passage_split("dev", msmarco_dir / "msmarco-passage"))

    for metric, expected in README["minilm"].items():
        assert result.metrics[metric] == pytest.approx(expected, abs=0.005), metric


def test_hybrid_fusion_adds_max_normalised_bm25_to_the_cosine_and_fills_gaps_with_each_lists_floor():
    from twotower.evaluation.hybrid import fuse

    dense = {"a": 0.9, "b": 0.8, "c": 0.5}
    bm25 = {"b": 12.0, "d": 6.0, "c": 3.0}
    fused = fuse(dense, bm25, weight=0.3)
    # cos + 0.3 * bm25 / 12; "a" lacks a BM25 score (floor 3.0), "d" a cosine (floor 0.5)
    assert fused == pytest.approx(
        {"a": 0.9 + 0.3 * 3 / 12, "b": 0.8 + 0.3, "c": 0.5 + 0.3 * 3 / 12, "d": 0.5 + 0.3 * 6 / 12}
    )
    assert fuse(dense, bm25, weight=0.0) == pytest.approx({**dense, "d": 0.5})  # weight 0: the dense ranking
    assert fuse({}, {}, 0.2) == {}


def test_the_hybrid_baseline_ranks_by_the_fused_score_and_is_built_from_its_config(tiny_split):
    from twotower.evaluation.hybrid import HybridBaseline, fuse

    hybrid = load_baseline("hybrid")
    assert hybrid == HybridBaseline(DenseBaseline("minilm", 64), weight=0.2, depth=100)
    result = hybrid.evaluate(tiny_split, progress=False)
    assert result.metrics["mrr@10"] == 1.0  # MiniLM alone is right on all three; a little BM25 keeps it so

    pids = sorted(tiny_split.collection)
    dense_rank, dense_scores, _ = hybrid.dense.retrieve(tiny_split, pids, ["q1"], 5, False)
    bm25_rank, bm25_scores, _ = BM25Baseline().retrieve(tiny_split, pids, ["q1"], 5, False)
    expected = fuse(dict(zip(dense_rank["q1"], dense_scores["q1"])), dict(zip(bm25_rank["q1"], bm25_scores["q1"])), 0.2)
    assert result.ranking["q1"] == sorted(expected, key=lambda p: (-expected[p], p))
    with pytest.raises(ValueError, match="baselines.hybrid.weight must be a number >= 0"):
        HybridBaseline(weight=-1)
