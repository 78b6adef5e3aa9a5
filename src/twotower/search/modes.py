"""How `Searcher.search` ranks a batch of queries in each mode, and assembles `Results` with each stage's time.

* `dense`: the query tower's vector, the vector index's top `k` (inner product);
* `bm25`: the index's BM25 part (`search.lexical`), top `k`; the query tower is not used;
* `hybrid`: both, each to `depth` (100 by default), merged by `twotower.retrieval.fusion` (the function the
  evaluation's hybrid baseline uses) with the index's fusion settings: `tune-fusion`'s choice from the
  manifest, else `DEFAULT_FUSION`; a call can override the method and weight.

Unknown-token warnings (a query the model cannot read) are given here too, for the modes that encode.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from twotower.retrieval.fusion import check_fusion, fuse_lists
from twotower.search.results import Hit, Results, UnknownQueryWarning

MODES = ("dense", "bm25", "hybrid")
# Untuned fusion: the evaluation baseline's (`conf/baselines/hybrid.yaml`), until `twotower tune-fusion` runs.
DEFAULT_FUSION = {"method": "weighted", "weight": 0.2, "depth": 100}


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def fusion_settings(recorded: Mapping[str, Any], method: str | None = None, weight: float | None = None) -> dict:
    """The fusion to use: DEFAULT_FUSION, overridden by the manifest's record, overridden by the call. A method
    given without a weight takes the recorded weight only if that was tuned for the same method (else 1.0 for
    RRF, the default weight for a weighted sum)."""
    settings = {**DEFAULT_FUSION, **{k: v for k, v in recorded.items() if k in DEFAULT_FUSION}}
    if method is not None and method != settings["method"]:
        settings["method"] = method
        settings["weight"] = 1.0 if method == "rrf" else DEFAULT_FUSION["weight"]
    if weight is not None:
        settings["weight"] = weight
    check_fusion(settings["method"], settings["weight"])
    return settings


def warn_unknown(texts: list[str], counts: list[tuple[int, int]]) -> None:
    """A query none of whose tokens the model knows is encoded from [UNK] alone: its hits are arbitrary."""
    lost = [(text, tokens) for text, (tokens, unknown) in zip(texts, counts) if unknown == tokens]
    if lost:
        text, tokens = lost[0]
        what = (
            f"{tokens} of {tokens} tokens are unknown to the model's vocabulary"
            if tokens
            else "no token the model reads"
        )
        more = f" ({len(lost)} of {len(texts)} queries are like this)" if len(texts) > 1 else ""
        warnings.warn(
            f"query {text[:60]!r}: {what}, so its results are arbitrary{more}", UnknownQueryWarning, stacklevel=4
        )


def _ranked(rows: np.ndarray, scores: np.ndarray) -> list[list[tuple[int, float]]]:
    return [[(int(r), float(s)) for r, s in zip(rrow, srow) if r >= 0] for rrow, srow in zip(rows, scores)]


def rank(searcher, texts: list[str], k: int, mode: str, fusion: dict) -> tuple[list[list[tuple[int, float]]], dict]:
    """Each query's ranked (row, score) list in `mode`, and the milliseconds of each stage for the whole batch."""
    ms = {"encode": 0.0, "search": 0.0, "bm25": 0.0, "fusion": 0.0}
    depth = k if mode != "hybrid" else max(k, int(fusion["depth"]))
    dense = lexical = None
    if mode in ("dense", "hybrid"):
        t0 = time.perf_counter()
        vectors = searcher.encoder.encode_queries(texts)
        t1 = time.perf_counter()
        scores, rows = searcher.backend.search(vectors, depth)
        ms["encode"], ms["search"] = (t1 - t0) * 1e3, (time.perf_counter() - t1) * 1e3
        dense = _ranked(rows, scores)
    if mode in ("bm25", "hybrid"):
        t0 = time.perf_counter()
        rows, scores = searcher.bm25.search_rows(texts, depth)
        ms["bm25"] = (time.perf_counter() - t0) * 1e3
        lexical = _ranked(rows, scores)
    if mode == "dense":
        return dense, ms
    if mode == "bm25":
        return lexical, ms
    t0 = time.perf_counter()
    fused = [
        fuse_lists(
            [r for r, _ in d],
            [s for _, s in d],
            [r for r, _ in b],
            [s for _, s in b],
            fusion["method"],
            fusion["weight"],
            k,
        )
        for d, b in zip(dense, lexical)
    ]
    ms["fusion"] = (time.perf_counter() - t0) * 1e3
    return fused, ms


def assemble(searcher, texts: list[str], k: int, mode: str, fusion: dict) -> list[Results]:
    """`Results` of each query: ranked in `mode`, documents fetched from the store, each stage's time shared."""
    counts = [searcher.encoder.token_counts(text) for text in texts] if mode != "bm25" else [(0, 0)] * len(texts)
    if mode != "bm25":
        warn_unknown(texts, counts)
    ranked, ms = rank(searcher, texts, k, mode, fusion)
    t0 = time.perf_counter()
    flat = sorted({row for found in ranked for row, _ in found})
    documents = dict(zip(flat, searcher.store.get(flat)))
    fetch_ms = (time.perf_counter() - t0) * 1e3
    n = len(texts)
    limit = searcher.encoder.query_max_length if mode != "bm25" else 0
    out = []
    for text, (tokens, _), found in zip(texts, counts, ranked):
        hits = []
        for row, score in found:
            doc = documents.get(row)
            if doc is not None:
                hits.append(Hit(len(hits) + 1, doc.id, score, doc.text, doc.metadata))
        out.append(
            Results(
                text,
                hits,
                ms["encode"] / n,
                ms["search"] / n,
                fetch_ms / n,
                tokens,
                limit,
                mode=mode,
                bm25_ms=ms["bm25"] / n,
                fusion_ms=ms["fusion"] / n,
            )
        )
    return out
