"""Batch mode: a queries file in (`qid \\t query`), a TREC run out (`qid Q0 docid rank score tag`).

Any standard tool (trec_eval, pytrec_eval, ranx, `twotower.evaluation.metrics`) can then score the run.
"""

from __future__ import annotations

from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from twotower.data.msmarco import read_queries
from twotower.io.atomic import atomic_path
from twotower.search.results import Results
from twotower.search.searcher import Searcher


def search_queries_file(
    searcher: Searcher,
    queries: str | Path,
    run_out: str | Path,
    k: int = 100,
    tag: str = "twotower",
    batch_size: int = 256,
    progress: bool = True,
    mode: str = "dense",
    fusion: str | None = None,
    weight: float | None = None,
) -> dict[str, Results]:
    """Search every query of `queries` in `mode` (`Searcher.search`) and write the TREC run to `run_out`
    (atomically); returns {qid: Results}."""
    table = read_queries(queries)  # blank queries are skipped (and logged) by the reader
    qids = list(table)
    results: dict[str, Results] = {}
    columns = (TextColumn("searching"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        task = bar.add_task("queries", total=len(qids))
        for start in range(0, len(qids), batch_size):
            chunk = qids[start : start + batch_size]
            for qid, found in zip(chunk, searcher.search([table[q] for q in chunk], k, mode, fusion, weight)):
                results[qid] = found
            bar.advance(task, len(chunk))
    write_trec_run(results, run_out, tag)
    return results


def write_trec_run(results: dict[str, Results], path: str | Path, tag: str = "twotower") -> Path:
    if any(c.isspace() for c in tag) or not tag:
        raise ValueError(f"a TREC run tag is one word, got {tag!r}")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for qid, found in results.items():
            for hit in found.hits:
                fh.write(f"{qid} Q0 {hit.id} {hit.rank} {hit.score:.6f} {tag}\n")
    return Path(path)


def run_of(results: dict[str, Results]) -> dict[str, dict[str, float]]:
    """{qid: {docid: score}}, the shape `twotower.evaluation.metrics.retrieval_metrics` and pytrec_eval take."""
    return {qid: {h.id: h.score for h in found.hits} for qid, found in results.items()}
