"""What an evaluation leaves beside its results, so its numbers can be checked and compared later:

* `run.trec`: the ranking it scored, in TREC format (`qid Q0 pid rank score tag`), at most `DEPTH` per query;
* `per_query.json`: `{"qids": [...], metric: [value per query], ...}`, the input of a paired test
  (`twotower.evaluation.significance`); a few hundred KB for 480 queries and every metric.

`evaluate.py` writes one folder per system (`<output>/systems/<name>/`), the training run `<run>/eval/best/` and
`<run>/eval/last/`. Both files are written atomically.

    folder = save_evaluation(out / "systems" / "bm25", result.ranking, result.scores, split.qrels, tag="bm25")
    read_per_query(folder / PER_QUERY)["mrr@10"]
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from twotower.data.msmarco import Qrels
from twotower.evaluation.metrics import METRIC_NAMES, per_query_values
from twotower.io.atomic import atomic_path, write_json

log = logging.getLogger(__name__)

DEPTH = 100  # passages per query kept in run.trec: enough for every metric we report (recall@100)
RUN = "run.trec"
PER_QUERY = "per_query.json"


def write_trec_run(
    path: str | Path,
    ranking: Mapping[str, Sequence[str]],
    scores: Mapping[str, Sequence[float]] | None = None,
    tag: str = "twotower",
    depth: int = DEPTH,
) -> Path:
    """`ranking` ({qid: [pid, ...] best first}) as a TREC run, the top `depth` of each query. Without `scores`
    a passage's score is minus its rank, so any TREC tool reads the same order back."""
    tag = re.sub(r"\s+", "_", tag) or "twotower"
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for qid, pids in ranking.items():
            row_scores = (scores or {}).get(qid)
            for rank, pid in enumerate(pids[:depth], 1):
                score = float(row_scores[rank - 1]) if row_scores is not None else -float(rank)
                fh.write(f"{qid} Q0 {pid} {rank} {score:.6f} {tag}\n")
    return Path(path)


def read_per_query(path: str | Path) -> dict[str, list] | None:
    """The per-query values saved at `path`, or None when there are none (a run from before they were saved);
    a damaged file is logged and read as None, never as made-up values."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("qids"), list):
        log.warning("ignoring %s: not per-query values (no qids list)", path)
        return None
    if any(isinstance(v, list) and len(v) != len(data["qids"]) for v in data.values()):
        log.warning("ignoring %s: a metric has not one value per query", path)
        return None
    return data


def save_evaluation(
    folder: str | Path,
    ranking: Mapping[str, Sequence[str]],
    scores: Mapping[str, Sequence[float]] | None,
    qrels: Qrels,
    tag: str = "twotower",
    names: Sequence[str] = METRIC_NAMES,
) -> dict[str, list]:
    """Write `run.trec` and `per_query.json` of one evaluation into `folder`; return the per-query values."""
    folder = Path(folder)
    values = per_query_values(ranking, qrels, names)
    write_trec_run(folder / RUN, ranking, scores, tag)
    write_json(folder / PER_QUERY, values)
    return values


def slug(name: str) -> str:
    """A system name as a folder name: `run-a/best.pt` -> `run-a_best.pt`."""
    return re.sub(r"[^\w.@+-]+", "_", name).strip("_") or "system"
