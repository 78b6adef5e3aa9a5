"""Prepare training triplets (query, positive, k negatives) as parquet shards, once per configuration.

Negatives come from one of three sources (`negatives=`):
* `random`: passages drawn uniformly from the collection;
* `candidates`: the query's own non-relevant candidates (the v1.1 passage lists, or a run file such as
  BM25 top-k), topped up with random passages when a query has too few;
* `bm25`: hard negatives mined with BM25 (`bm25s`) over the collection, sampled from its top `bm25_depth`.

Shards are written one by one through a temp file, and `_SUCCESS.json` last, so a crash never leaves a
half-written set that looks complete; a finished set is reused when the same configuration asks again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import track

from twotower.atomic import atomic_path
from twotower.data.msmarco import Split, read_run
from twotower.paths import cache_dir

log = logging.getLogger(__name__)

SCHEMA = pa.schema([
    ("qid", pa.string()),
    ("query", pa.string()),
    ("pid", pa.string()),
    ("positive", pa.string()),
    ("negatives", pa.list_(pa.string())),
])
DONE = "_SUCCESS.json"


@dataclass(frozen=True)
class PrepareConfig:
    negatives: str = "random"  # random | candidates | bm25
    num_negatives: int = 1
    subsample: float = 1.0  # fraction of training queries kept
    run_file: str | None = None  # candidates for `candidates` when the split has none
    bm25_depth: int = 50
    bm25_skip: int = 0  # skip the top ranks of BM25: unjudged relevant passages hide there
    shard_rows: int = 50_000
    row_group_rows: int = 1_000
    seed: int = 0

    def key(self, source: str) -> str:
        blob = json.dumps({"source": source, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def prepare_triplets(split: Split, config: PrepareConfig, source: str, out_dir: str | Path | None = None) -> Path:
    """Write the triplets of `split` under `out_dir` (default: the cache, keyed by `source` and `config`)."""
    if config.negatives not in ("random", "candidates", "bm25"):
        raise ValueError(f"negatives must be random, candidates or bm25, got {config.negatives!r}")
    if not 0 < config.subsample <= 1:
        raise ValueError(f"subsample is a fraction in (0, 1], got {config.subsample}")
    out = Path(out_dir) if out_dir else cache_dir() / "triplets" / config.key(source)
    if (out / DONE).exists():
        return out

    rng = np.random.default_rng(config.seed)
    pids = np.array(list(split.collection))
    qids = [q for q in split.queries if split.qrels.get(q) and any(p in split.collection for p in split.qrels[q])]
    missing = sum(1 for q in split.queries if q not in qids)
    if missing:
        log.warning("%d training queries have no relevant passage in the collection; skipped", missing)
    if config.subsample < 1:
        qids = sorted(rng.choice(qids, max(1, round(len(qids) * config.subsample)), replace=False).tolist())

    pools = _negative_pools(split, qids, config)
    rows: dict[str, list] = {name: [] for name in SCHEMA.names}
    for qid in track(qids, description=f"triplets ({config.negatives} negatives)"):
        relevant = {p for p, r in split.qrels[qid].items() if r > 0}
        for pid in sorted(relevant):
            if pid not in split.collection:
                continue
            negatives = _draw(pools.get(qid, []), relevant, pids, config.num_negatives, rng)
            rows["qid"].append(qid)
            rows["query"].append(split.queries[qid])
            rows["pid"].append(pid)
            rows["positive"].append(split.collection[pid])
            rows["negatives"].append([split.collection[n] for n in negatives])
    if not rows["qid"]:
        raise ValueError("no training triplet could be made: no query has a relevant passage in the collection")

    table = pa.table(rows, schema=SCHEMA)
    # Shuffle once on disk so that row groups mix topics; the loader shuffles again every epoch.
    table = table.take(rng.permutation(len(table)))
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("shard-*.parquet"):
        stale.unlink()
    n_shards = 0
    for n_shards, start in enumerate(range(0, len(table), config.shard_rows), 1):
        with atomic_path(out / f"shard-{n_shards - 1:05d}.parquet") as tmp:
            pq.write_table(table.slice(start, config.shard_rows), tmp, row_group_size=config.row_group_rows)
    with atomic_path(out / DONE) as tmp:
        tmp.write_text(json.dumps({"rows": len(table), "shards": n_shards, "source": source,
                                   "config": asdict(config)}, indent=2))
    log.info("wrote %d triplets in %d shards to %s", len(table), n_shards, out)
    return out


def _negative_pools(split: Split, qids: list[str], config: PrepareConfig) -> dict[str, list[str]]:
    if config.negatives == "random":
        return {}
    if config.negatives == "candidates":
        cands = split.candidates
        if config.run_file:
            cands = {q: sorted(d, key=d.__getitem__, reverse=True) for q, d in read_run(config.run_file).items()}
        if not cands:
            raise ValueError("negatives=candidates needs candidate lists: the v1.1 parquet, or `run_file`")
        return {q: [p for p in cands.get(q, []) if p in split.collection] for q in qids}
    return _bm25_pools(split, qids, config)


def _bm25_pools(split: Split, qids: list[str], config: PrepareConfig) -> dict[str, list[str]]:
    import bm25s

    pids = list(split.collection)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([split.collection[p] for p in pids], stopwords="en", show_progress=False),
                    show_progress=False)
    depth = min(config.bm25_depth + config.bm25_skip, len(pids))
    hits, _ = retriever.retrieve(bm25s.tokenize([split.queries[q] for q in qids], stopwords="en", show_progress=False),
                                 k=depth, show_progress=False)
    return {q: [pids[i] for i in row[config.bm25_skip:]] for q, row in zip(qids, hits)}


def _draw(pool: list[str], relevant: set[str], pids: np.ndarray, k: int, rng: np.random.Generator) -> list[str]:
    """k distinct non-relevant passages: from `pool` first, then uniformly from the collection."""
    pool = [p for p in pool if p not in relevant]
    chosen = list(rng.choice(pool, min(k, len(pool)), replace=False)) if pool else []
    while len(chosen) < k:
        p = str(pids[rng.integers(len(pids))])
        if p not in relevant and p not in chosen:
            chosen.append(p)
    return chosen


def triplet_files(path: str | Path) -> list[Path]:
    """The shards of a finished triplet set, or a clear error if it is missing or unfinished."""
    path = Path(path)
    if not (path / DONE).exists():
        raise FileNotFoundError(f"{path} holds no finished triplet set (no {DONE}); run the prepare step again")
    return sorted(path.glob("shard-*.parquet"))
