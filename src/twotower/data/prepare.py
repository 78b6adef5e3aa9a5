"""Prepare training triplets (query, positive, k negatives, teacher scores) as parquet shards of ids.

Each query's candidate negatives come from a negative source (`twotower.data.negatives`, chosen with `negatives=`
on the command line: random | candidates | bm25 | dense | bm25+dense); each row draws `num_negatives` of the
candidates that are not relevant, topped up with random passages when a query has too few.

With a `teacher` (see `data.prepare.teacher`), every row also carries the teacher's scores of [positive, negatives]
(the `teacher` column: what MarginMSE and KL distil), and `teacher_margin` drops a candidate the teacher scores
within that margin of the positive (most are unjudged relevant passages: false negatives).

Shards hold ids only (qid, pid, neg_pids, teacher): text is fetched when a batch is collated, so a teacher can
be joined later without re-mining and memory does not grow with passage length. Shards are written one by one
through a temp file and `_SUCCESS.json` last, so a crash never leaves a half-written set that looks complete; a
finished set is reused when the same configuration and the same input files ask again. One process builds a set
at a time (a lock per set), and a finished set with a missing or damaged shard is rebuilt (`triplet_shards`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from twotower.data.dict_corpus import as_corpus
from twotower.data.msmarco import Split
from twotower.data.negatives import OLD_SETTINGS, NegativeSource, RandomNegatives, build_source, upgrade_source
from twotower.data.triplet_shards import DONE, SCHEMA, ShardWriter, finished, triplet_files, triplet_lock
from twotower.io.paths import cache_dir

log = logging.getLogger(__name__)

__all__ = ["DONE", "SCHEMA", "PrepareConfig", "ShardWriter", "prepare_triplets", "training_qids", "triplet_files"]


@dataclass(frozen=True)
class PrepareConfig:
    """How the training triplets are mined and scored: the `data.prepare` node of a training config. Every
    field (with the input files) keys the cached triplet set, so a changed setting prepares a new one."""

    # Where candidate negatives come from (conf/negatives); a config mapping is built through the allow-list.
    negatives: NegativeSource = field(default_factory=RandomNegatives)
    num_negatives: int = 1
    subsample: float = 1.0  # fraction of training queries kept
    teacher: str | None = None  # minilm | a model folder | a twotower .pt (data.prepare.teacher)
    teacher_margin: float | None = None  # drop candidates the teacher scores ≥ positive − margin
    shard_rows: int = 50_000
    row_group_rows: int = 1_000
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.negatives, Mapping):
            object.__setattr__(self, "negatives", build_source(self.negatives))

    def settings(self) -> dict[str, Any]:
        """Every setting, the source's as its class and settings: what keys (and describes) a triplet set."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**values, "negatives": self.negatives.settings()}

    def key(self, source: str, inputs: str = "") -> str:
        blob = json.dumps({"source": source, "inputs": inputs, **self.settings()}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    def check(self) -> None:
        if not isinstance(self.negatives, NegativeSource):
            raise ValueError(
                f"data.prepare.negatives must be a negative source (twotower.data.negatives; on the "
                f"command line negatives=NAME), got {self.negatives!r}"
            )
        if not 0 < self.subsample <= 1:
            raise ValueError(f"data.prepare.subsample is a fraction in (0, 1], got {self.subsample}")
        # The data's rule only (a whole number of negatives per row); which losses can train without hard
        # negatives is `training.validate`'s rule, checked before any data work.
        if isinstance(self.num_negatives, bool) or not isinstance(self.num_negatives, int) or self.num_negatives < 0:
            raise ValueError(f"data.prepare.num_negatives must be a whole number >= 0, got {self.num_negatives!r}")
        if self.negatives.needs_teacher and not self.teacher:
            raise ValueError(
                f"negatives={self.negatives.name} mines with a teacher: set data.prepare.teacher (e.g. minilm)"
            )
        if self.teacher_margin is not None and not self.teacher:
            raise ValueError("data.prepare.teacher_margin filters with the teacher's scores: set data.prepare.teacher")


# The prepare settings as runs written before the `prepare` node kept them flat in `data`, with the defaults those
# runs ran with (the source's own settings are upgraded by `twotower.data.negatives.upgrade_source`).
FLAT_DEFAULTS = {
    "negatives": "random",
    "num_negatives": 1,
    "subsample": 1.0,
    **OLD_SETTINGS,
    "teacher": None,
    "teacher_margin": None,
    "shard_rows": 50_000,
    "row_group_rows": 1_000,
}


def upgrade_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """A saved `data` config in today's layout. Runs written before the `prepare` node kept its settings flat
    (`data.negatives`, `data.teacher`, ...): those are moved in (a nested value wins), `data.seed` seeds the
    prepare step as it did then, and the settings they never held take the defaults they ran with. Runs written
    before negative sources were classes name theirs (`negatives: bm25`, `bm25_depth: 50`): that becomes the
    source's config. A config in today's layout comes back unchanged."""
    data = dict(data)
    flat = {k: data.pop(k) for k in FLAT_DEFAULTS if k in data}
    if flat:
        nested = dict(data.get("prepare") or {})
        data["prepare"] = {
            "_target_": f"{__name__}.PrepareConfig",
            **FLAT_DEFAULTS,
            **flat,
            "seed": data.get("seed", 0),
            **nested,
        }
    if isinstance(data.get("prepare"), Mapping):
        data["prepare"] = upgrade_source(data["prepare"])
    return data


def prepare_triplets(
    split: Split,
    config: PrepareConfig,
    source: str,
    out_dir: str | Path | None = None,
    inputs: str = "",
    miner=None,
    teacher=None,
) -> Path:
    """Write the triplets of `split` under `out_dir` (default: the cache, keyed by `source`, the fingerprint
    of the input files `inputs` and `config`). `miner` mines the dense negatives instead of the teacher (the
    model being trained, for an ANCE-style refresh; see `data.datamodule`). `teacher` is the `TeacherScores`
    of `config.teacher` when the caller has loaded it already (it is loaded here otherwise)."""
    config.check()
    out = Path(out_dir) if out_dir else cache_dir() / "triplets" / config.key(source, inputs)
    with triplet_lock(out):  # two trainings preparing one set: the second waits, then reuses the first's
        if finished(out):
            log.info("reusing the triplets in %s (same configuration and input files)", out)
            return out
        return _prepare(split, config, source, out, miner, teacher)


def _prepare(split: Split, config: PrepareConfig, source: str, out: Path, miner, teacher=None) -> Path:
    """Mine and write the set (the caller holds its lock)."""
    rng = np.random.default_rng(config.seed)
    corpus = as_corpus(split.collection)
    qids = training_qids(split)
    missing = len(split.queries) - len(qids)
    if missing:
        log.warning("%d training queries have no relevant passage in the collection; skipped", missing)
    if not qids:
        raise ValueError("no training triplet could be made: no query has a relevant passage in the collection")
    from twotower.data.scoring import TeacherScores

    # Teacher vectors of every training query, whatever the subsample: one cache serves all runs.
    scores = teacher or (TeacherScores.load(config.teacher, split, qids) if config.teacher else None)
    if config.subsample < 1:
        qids = sorted(rng.choice(qids, max(1, round(len(qids) * config.subsample)), replace=False).tolist())
    check_memory(len(qids), config)
    pools = config.negatives.pools(split, qids, miner or scores)
    writer = ShardWriter(out, config)
    for qid in track(qids, description=f"triplets ({config.negatives.name} negatives)"):
        relevant = {p for p, r in split.qrels[qid].items() if r > 0}
        for pid in sorted(relevant):
            if pid not in split.collection:
                continue
            candidates = pools.get(qid, [])
            if scores is not None and config.teacher_margin is not None and candidates:
                candidates = scores.below(qid, pid, candidates, config.teacher_margin)
            negatives = _draw(candidates, relevant, corpus, config.num_negatives, rng)
            writer.add(qid, pid, negatives, scores.of(qid, [pid, *negatives]) if scores is not None else None)
    return writer.finish(source)


POOL_BYTES = 90  # one candidate pid in a query's pool: a short Python str and its list slot


class NotEnoughMemory(ValueError, MemoryError):
    """The settings would not fit this machine's memory; the message names those to lower (a user error)."""


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is no /proc)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(n_queries: int, config: PrepareConfig) -> None:
    """Refuse, before mining, a candidate-pool size the machine cannot hold, naming the settings to lower."""
    need = n_queries * config.negatives.pool_size() * POOL_BYTES
    free = available_memory()
    if free is not None and need > 0.8 * free:
        raise NotEnoughMemory(
            f"mining negatives for {n_queries:,} queries keeps ~{need / 2**30:.1f} GB of candidate "
            f"pools but {free / 2**30:.1f} GB is free: lower data.prepare.subsample (now "
            f"{config.subsample}), negatives.depth (in a mix, negatives.sources.<name>.depth), or "
            "mine in shards (twotower.retrieval.bm25.mine_shard)"
        )


def training_qids(split: Split) -> list[str]:
    """The training queries with a relevant passage in the collection, in file order."""
    return [q for q in split.queries if split.qrels.get(q) and any(p in split.collection for p in split.qrels[q])]


def _draw(pool: list[str], relevant: set[str], corpus, k: int, rng: np.random.Generator) -> list[str]:
    """k distinct non-relevant passages: from `pool` first, then uniformly from the collection."""
    pool = [p for p in pool if p not in relevant]
    chosen = list(rng.choice(pool, min(k, len(pool)), replace=False)) if pool else []
    while len(chosen) < k:
        p = corpus.pid(int(rng.integers(len(corpus))))
        if p not in relevant and p not in chosen:
            chosen.append(p)
    return chosen
