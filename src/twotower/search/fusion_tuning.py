"""Choosing an index's hybrid fusion on *training* queries, and keeping the choice in its manifest.

    record = tune_fusion(searcher, train_queries, train_qrels, max_queries=2000)   # {"method", "weight", ...}
    save_fusion("outputs/index/msmarco", record)        # `twotower tune-fusion --index DIR --queries Q --qrels R`

Each query is searched once per retriever (dense and BM25, each to `depth`); every (method, weight) of the grid
then fuses those lists (`twotower.retrieval.fusion`, as search does) and is scored with
`twotower.evaluation.metrics` on the judged queries given. The best by `metric` (ties: the earlier grid entry)
is recorded with the whole grid's scores and what it was tuned on, so anyone reading the manifest sees that the
weight was not picked on the queries it is reported on. Tune on training queries, never on dev: the dev set
is for the number you report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from rich.progress import Progress

from twotower.evaluation.metrics import retrieval_metrics
from twotower.retrieval.fusion import fuse_lists
from twotower.search.errors import SearchError
from twotower.search.manifest import Manifest, index_lock, read_manifest, write_manifest
from twotower.search.modes import DEFAULT_FUSION, rank

log = logging.getLogger(__name__)

GRID: dict[str, tuple[float, ...]] = {
    "weighted": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
    "rrf": (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0),
}


def candidate_lists(
    searcher, queries: Mapping[str, str], depth: int, batch_size: int = 256, progress: bool = True
) -> tuple[dict[str, tuple[list[str], list[float]]], dict[str, tuple[list[str], list[float]]]]:
    """({qid: (dense ids, scores)}, {qid: (BM25 ids, scores)}), each list the retriever's top `depth`."""
    qids = list(queries)
    dense: dict = {}
    lexical: dict = {}
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("searching (dense and BM25)", total=len(qids))
        for start in range(0, len(qids), batch_size):
            chunk = qids[start : start + batch_size]
            texts = [queries[q] for q in chunk]
            for mode, out in (("dense", dense), ("bm25", lexical)):
                ranked, _ = rank(searcher, texts, depth, mode, DEFAULT_FUSION)
                rows = sorted({r for found in ranked for r, _ in found})
                ids = dict(zip(rows, searcher.store.ids_at(rows)))
                for q, found in zip(chunk, ranked):
                    out[q] = ([ids[r] for r, _ in found], [s for _, s in found])
            bar.advance(task, len(chunk))
    return dense, lexical


def tune_fusion(
    searcher,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    metric: str = "mrr@10",
    depth: int = 100,
    max_queries: int | None = None,
    progress: bool = True,
    source: Mapping[str, str] | None = None,
) -> dict:
    """The best (method, weight) on the judged `queries` -> the manifest's `fusion` record (not saved here)."""
    if "bm25" not in searcher.modes:
        from twotower.search.lexical import no_bm25

        raise no_bm25(searcher.folder, "hybrid")
    judged = [q for q in queries if any(r > 0 for r in qrels.get(q, {}).values())]
    if max_queries:
        judged = judged[:max_queries]
    if not judged:
        raise SearchError("none of the queries has a relevant passage in the qrels: nothing to tune the fusion on")
    dense, lexical = candidate_lists(searcher, {q: queries[q] for q in judged}, depth, progress=progress)
    judged_qrels = {q: dict(qrels[q]) for q in judged}
    grid = []
    for method, weights in GRID.items():
        for weight in weights:
            ranking = {q: [p for p, _ in fuse_lists(*dense[q], *lexical[q], method, weight, depth)] for q in judged}
            score = retrieval_metrics(ranking, judged_qrels)[metric]
            grid.append({"method": method, "weight": weight, metric: round(score, 6)})
    alone = {
        name: round(retrieval_metrics({q: lists[q][0] for q in judged}, judged_qrels)[metric], 6)
        for name, lists in (("dense", dense), ("bm25", lexical))
    }
    best = max(grid, key=lambda row: row[metric])  # max keeps the first of equals: the grid's order
    return {
        "method": best["method"],
        "weight": best["weight"],
        "depth": depth,
        "tuned_on": {
            "queries": len(judged),
            "metric": metric,
            "score": best[metric],
            "dense": alone["dense"],
            "bm25": alone["bm25"],
            **dict(source or {}),
            "grid": grid,
        },
    }


def save_fusion(folder: str | Path, record: dict, build_id: str | None = None) -> Manifest:
    """Write `record` as the manifest's `fusion` (atomically, under the index's write lock). With `build_id`,
    refuse if the index was rebuilt or grown since it was tuned (the tuning would describe other documents)."""
    folder = Path(folder)
    with index_lock(folder):
        manifest = read_manifest(folder)
        if build_id is not None and manifest.build_id != build_id:
            raise SearchError(
                f"{folder} changed while the fusion was being tuned (build {build_id} -> {manifest.build_id}); "
                "tune it again"
            )
        manifest.fusion = dict(record)
        write_manifest(folder, manifest)
    return manifest
