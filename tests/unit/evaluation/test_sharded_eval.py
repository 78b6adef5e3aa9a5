"""Chunked, sharded evaluation equals the whole-matrix search; metrics stay honest and match pytrec_eval."""

import json
import zlib

import numpy as np
import pytest
import pytrec_eval
import torch
import torch.multiprocessing as mp
from torchmetrics.retrieval import RetrievalMRR

from twotower.data.corpus import Corpus
from twotower.data.dict_corpus import DictCorpus
from twotower.data.msmarco import Split, passage_split
from twotower.evaluation.metrics import retrieval_metrics
from twotower.evaluation.retrieval import RankingMetrics, evaluate_encoder
from twotower.evaluation.sharding import dist_all_gather
from twotower.retrieval.exact import exact_search


class HashEncoder:
    """A tiny static encoder: hashed words summed through a fixed random projection, unit rows."""

    def __init__(self, dim: int = 48, buckets: int = 1 << 13) -> None:
        self.table = np.random.default_rng(0).standard_normal((buckets, dim)).astype(np.float32)
        self.buckets = buckets
        self.documents_encoded = 0

    def _encode(self, texts):
        out = np.zeros((len(texts), self.table.shape[1]), np.float32)
        for i, text in enumerate(texts):
            ids = [zlib.crc32(w.encode()) % self.buckets for w in text.lower().split()]
            out[i] = self.table[ids].sum(0) if ids else 0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    def encode_queries(self, texts, progress=False):
        return self._encode(texts)

    def encode_documents(self, texts, progress=False):
        self.documents_encoded += len(texts)
        return self._encode(texts)


@pytest.fixture(scope="module")
def dev(msmarco_dir) -> Split:
    return passage_split("dev", msmarco_dir / "msmarco-passage")


def test_chunked_search_equals_one_whole_matrix_search(dev):
    encoder = HashEncoder()
    result = evaluate_encoder(encoder, dev, k=100, chunk_size=3_000)  # 9 chunks

    pids, qids = list(dev.collection), list(result.ranking)
    scores, rows = exact_search(
        encoder.encode_documents([dev.collection[p] for p in pids]),
        encoder.encode_queries([dev.queries[q] for q in qids]),
        100,
    )
    whole = {q: [pids[i] for i in row] for q, row in zip(qids, rows)}
    assert result.metrics == pytest.approx(retrieval_metrics(whole, {q: dev.qrels[q] for q in qids}), abs=1e-12)
    for q, row_scores in zip(qids, scores):  # same scores; the order of exact ties may differ
        np.testing.assert_allclose(result.scores[q], row_scores, rtol=1e-5, atol=1e-6)
    assert result.num_queries == 480 and result.num_passages == 24_372


def test_a_dict_a_dict_corpus_an_on_disk_corpus_and_doc_vectors_agree(dev, msmarco_dir, tmp_path):
    encoder = HashEncoder()
    small = Split(dict(list(dev.queries.items())[:60]), dev.qrels, dev.collection)
    base = evaluate_encoder(encoder, small, chunk_size=5_000)
    corpus = Corpus.build(msmarco_dir / "msmarco-passage" / "collection.tsv", tmp_path / "corpus")
    for collection in (DictCorpus(dev.collection), corpus):
        other = evaluate_encoder(encoder, Split(small.queries, small.qrels, collection), chunk_size=7_000)
        assert other.ranking == base.ranking and other.metrics == pytest.approx(base.metrics, abs=1e-12)

    vectors = encoder.encode_documents([dev.collection[p] for p in dev.collection])
    encoder.documents_encoded = 0
    cached = evaluate_encoder(encoder, small, doc_vectors=vectors, chunk_size=5_000)
    assert cached.ranking == base.ranking and encoder.documents_encoded == 0


def test_metrics_count_relevant_passages_never_retrieved_and_match_pytrec_eval(dev):
    result = evaluate_encoder(HashEncoder(), dev, k=10)  # shallow: most relevant passages are not retrieved
    qrels = {q: dev.qrels[q] for q in result.ranking}
    run = {q: {p: float(10 - i) for i, p in enumerate(pids)} for q, pids in result.ranking.items()}
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank", "recall_10", "ndcg_cut_10", "map", "P_5"}).evaluate(run)
    for ours, theirs in (
        ("recall@10", "recall_10"),
        ("ndcg@10", "ndcg_cut_10"),
        ("map", "map"),
        ("precision@5", "P_5"),
    ):
        expected = sum(trec[q][theirs] for q in trec) / len(qrels)  # every judged query counts
        assert result.metrics[ours] == pytest.approx(expected, abs=1e-9), ours

    # torchmetrics agrees where it sees everything it needs (the rank of the first hit) ...
    preds, target, indexes = [], [], []
    for i, (q, pids) in enumerate(result.ranking.items()):
        preds += [10.0 - j for j in range(len(pids))]
        target += [qrels[q].get(p, 0) > 0 for p in pids]
        indexes += [i] * len(pids)
    mrr = RetrievalMRR(top_k=10, empty_target_action="neg")(
        torch.tensor(preds), torch.tensor(target), indexes=torch.tensor(indexes)
    )
    assert result.metrics["mrr@10"] == pytest.approx(float(mrr), abs=1e-6)


def test_recall_divides_by_every_relevant_passage_not_only_the_retrieved_ones():
    from torchmetrics.retrieval import RetrievalRecall

    # Two relevant passages, one retrieved: torchmetrics, seeing only the retrieved list, says 1.0.
    ranking, qrels = {"q": ["a", "x", "y"]}, {"q": {"a": 1, "b": 1}}
    seen_only = RetrievalRecall(top_k=10)(
        torch.tensor([3.0, 2.0, 1.0]), torch.tensor([1, 0, 0]), indexes=torch.tensor([0, 0, 0])
    )
    metric = RankingMetrics()
    metric.update(ranking, qrels)
    assert float(seen_only) == 1.0 and metric.compute()["recall@10"] == 0.5


def test_candidates_score_each_query_against_its_own_list_only(dev):
    encoder = HashEncoder()
    candidates = {q: pids + ["not-in-corpus"] for q, pids in dev.candidates.items()}
    result = evaluate_encoder(encoder, dev, k=10, candidates=candidates, chunk_size=1_000)

    q = next(iter(result.ranking))
    own = [p for p in dev.candidates[q]]
    scores = encoder.encode_documents([dev.collection[p] for p in own]) @ encoder.encode_queries([dev.queries[q]])[0]
    assert set(result.ranking[q]) <= set(own) and len(result.ranking[q]) == 10
    np.testing.assert_allclose(result.scores[q], np.sort(scores)[::-1][:10], rtol=1e-5)
    assert set(result.ranking) == {q for q in dev.queries if q in dev.qrels}
    assert 0 < result.metrics["mrr@10"] <= 1


def test_ranking_metrics_is_the_mean_of_retrieval_metrics(dev):
    ranking = {q: list(dev.candidates.get(q, {})) for q in dev.qrels}
    metric = RankingMetrics()
    qids = list(dev.qrels)
    metric.update({q: ranking[q] for q in qids[:100]}, {q: dev.qrels[q] for q in qids[:100]})
    metric.update({q: ranking[q] for q in qids[100:]}, {q: dev.qrels[q] for q in qids[100:]})
    assert metric.compute() == pytest.approx(retrieval_metrics(ranking, dev.qrels), abs=1e-12)


def test_world_size_needs_a_gather(dev):
    with pytest.raises(ValueError, match="needs all_gather"):
        evaluate_encoder(HashEncoder(), dev, rank=0, world_size=2)


def _part(split: Split) -> Split:
    """The dev queries over the first 8,000 passages: a quicker corpus for the two-process test."""
    return Split(split.queries, split.qrels, dict(list(split.collection.items())[:8_000]), split.candidates)


def _worker(rank: int, world: int, port: int, out: str, root: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    split = _part(passage_split("dev", root))
    encoder = HashEncoder()
    full = evaluate_encoder(encoder, split, chunk_size=1_000, rank=rank, world_size=world, all_gather=dist_all_gather)
    encoded = encoder.documents_encoded
    cands = evaluate_encoder(
        encoder,
        split,
        k=10,
        candidates=split.candidates,
        chunk_size=700,
        rank=rank,
        world_size=world,
        all_gather=dist_all_gather,
    )
    with open(f"{out}.{rank}", "w") as fh:
        json.dump(
            {"full": [full.metrics, full.ranking, full.num_passages, encoded], "cands": [cands.metrics, cands.ranking]},
            fh,
        )
    dist.destroy_process_group()


def thread_gathers(world: int):
    """One all_gather per rank for `world` threads in this process: each call swaps tensors at a barrier."""
    import threading

    slots: list = [None] * world
    barrier = threading.Barrier(world)

    def make(rank):
        def gather(tensor):
            slots[rank] = tensor.clone()
            barrier.wait()
            out = torch.stack(list(slots))
            barrier.wait()  # nobody overwrites a slot before everyone has read it
            return out

        return gather

    return [make(r) for r in range(world)]


def test_ranks_in_threads_merge_to_the_one_process_result(dev):
    from concurrent.futures import ThreadPoolExecutor

    part = _part(dev)
    single = evaluate_encoder(HashEncoder(), part, chunk_size=1_000)
    for world in (2, 3):
        gathers = thread_gathers(world)
        with ThreadPoolExecutor(world) as pool:
            results = list(
                pool.map(
                    lambda r, world=world, gathers=gathers: evaluate_encoder(
                        HashEncoder(), part, chunk_size=1_000, rank=r, world_size=world, all_gather=gathers[r]
                    ),
                    range(world),
                )
            )
        for result in results:
            assert result.ranking == single.ranking
            assert result.metrics == pytest.approx(single.metrics, abs=1e-12)


@pytest.mark.slow
def test_two_gloo_processes_give_the_one_process_result(dev, msmarco_dir, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / "rank")
    mp.spawn(_worker, args=(2, port, out, str(msmarco_dir / "msmarco-passage")), nprocs=2, join=True)

    encoder, part = HashEncoder(), _part(dev)
    single = evaluate_encoder(encoder, part, chunk_size=1_000)
    single_cands = evaluate_encoder(encoder, part, k=10, candidates=part.candidates, chunk_size=700)
    ranks = [json.loads(open(f"{out}.{r}").read()) for r in range(2)]
    assert [r["full"][3] for r in ranks] == [4_000, 4_000]  # each rank encoded its half of the chunks
    for r in ranks:
        assert r["full"][0] == pytest.approx(single.metrics, abs=1e-12) and r["full"][1] == single.ranking
        assert r["cands"][0] == pytest.approx(single_cands.metrics, abs=1e-12) and r["cands"][1] == single_cands.ranking
