"""Negative sources: where the prepare step finds each training query's candidate hard negatives.

A source is a small class whose `pools(split, qids, miner)` returns `{qid: [pid, ...]}`, each query's candidates
best first (the prepare step drops the query's relevant passages and draws `num_negatives` of the rest, topping
up at random). Each one has a config in `twotower/conf/negatives/`, chosen on the command line with
`negatives=<name>` and tuned with `negatives.<setting>=...`:

* `RandomNegatives` (`random`): no pool, every negative drawn uniformly from the collection;
* `CandidateNegatives` (`candidates`): the query's own candidates (the v1.1 passage lists, or a run file);
* `BM25Negatives` (`bm25`): BM25 ranks `skip` .. `skip + depth` (`twotower.retrieval.bm25`);
* `DenseNegatives` (`dense`): the teacher's ranks `skip` .. `skip + depth` (exact inner product; ANCE,
  sentence-transformers' `mine_hard_negatives`);
* `MixedNegatives` (`bm25+dense`): several sources, their rankings interleaved so each has an equal share of
  the pool a row's negatives are drawn from.

A new source is a `NegativeSource` subclass and a YAML file naming it as `_target_`. Every setting of a source
keys the cached triplet set (`settings()`). A config a user passes back (a run's `config.yaml` on
`twotower resume`) builds sources only from `SOURCES`, our classes (`build_source`); `register_source` adds one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf

from twotower.data.msmarco import Split, read_run


class Miner(Protocol):
    """Mines by vectors: the teacher's (`twotower.data.scoring.TeacherScores`), or the model's being trained
    (`VectorMiner`, in an ANCE refresh)."""

    def mine(self, qids: list[str], skip: int, depth: int) -> dict[str, list[str]]: ...


class NegativeSource:
    """Where a query's candidate negatives come from. Subclasses implement `pools` (and set `name`, shown in logs)."""

    needs_teacher = False  # mines with the teacher's vectors (data.prepare.teacher)

    @property
    def name(self) -> str:
        return type(self).__name__

    def pools(self, split: Split, qids: list[str], miner: Miner | None = None) -> dict[str, list[str]]:
        """Each query's candidates, best first; `miner` mines by vectors when a source asks for them."""
        raise NotImplementedError

    def pool_size(self) -> int:
        """Candidates kept per query at most, for the memory check before mining (0: none kept)."""
        return 0

    def files(self) -> list[Path]:
        """Input files the pools are read from; their contents key the cached triplets too."""
        return []

    def settings(self) -> dict[str, Any]:
        """The class and every setting: what keys the cached triplet set."""
        values = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else dict(vars(self))
        return {"_target_": _path(type(self)), **values}


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _whole(value: Any, setting: str, minimum: int, source: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"negatives.{setting} must be a whole number >= {minimum}, got {value!r} ({source})")


@dataclass(frozen=True)
class RandomNegatives(NegativeSource):
    """No candidates: every negative is drawn uniformly from the collection."""

    name = "random"

    def pools(self, split: Split, qids: list[str], miner: Miner | None = None) -> dict[str, list[str]]:
        return {}


@dataclass(frozen=True)
class CandidateNegatives(NegativeSource):
    """The query's own candidates: the split's (v1.1 passage lists), or those of `run_file` (TREC or MS MARCO run)."""

    run_file: str | None = None
    name = "candidates"

    def pools(self, split: Split, qids: list[str], miner: Miner | None = None) -> dict[str, list[str]]:
        cands = split.candidates
        if self.run_file:
            cands = {q: sorted(d, key=d.__getitem__, reverse=True) for q, d in read_run(self.run_file).items()}
        if not cands:
            raise ValueError("negatives=candidates needs candidate lists: the v1.1 parquet, or negatives.run_file")
        return {q: [p for p in cands.get(q, []) if p in split.collection] for q in qids}

    def files(self) -> list[Path]:
        return [Path(self.run_file)] if self.run_file else []


@dataclass(frozen=True)
class BM25Negatives(NegativeSource):
    """BM25 ranks `skip` .. `skip + depth` of each query (the top ranks hide unjudged relevant passages)."""

    depth: int = 50
    skip: int = 3
    name = "bm25"

    def __post_init__(self) -> None:
        _whole(self.depth, "depth", 1, type(self).__name__)
        _whole(self.skip, "skip", 0, type(self).__name__)

    def pools(self, split: Split, qids: list[str], miner: Miner | None = None) -> dict[str, list[str]]:
        from twotower.data.dict_corpus import as_corpus
        from twotower.retrieval.bm25 import bm25_index, mine

        # One cached index per corpus (twotower.retrieval.bm25), searched in batches on every core.
        index = bm25_index(as_corpus(split.collection), progress=True)
        depth = min(self.depth + self.skip, len(index))
        pools = mine(index, {q: split.queries[q] for q in qids}, depth, n_threads=os.cpu_count() or 1, progress=True)
        return {q: pids[self.skip :] for q, pids in pools.items()}

    def pool_size(self) -> int:
        return self.depth + self.skip


@dataclass(frozen=True)
class DenseNegatives(NegativeSource):
    """The teacher's ranks `skip` .. `skip + depth` of each query (exact inner product over its vectors)."""

    depth: int = 50
    skip: int = 3
    name = "dense"
    needs_teacher = True

    def __post_init__(self) -> None:
        _whole(self.depth, "depth", 1, type(self).__name__)
        _whole(self.skip, "skip", 0, type(self).__name__)

    def pools(self, split: Split, qids: list[str], miner: Miner | None = None) -> dict[str, list[str]]:
        if miner is None:
            raise ValueError("negatives=dense mines with a teacher: set data.prepare.teacher (e.g. minilm)")
        return miner.mine(qids, self.skip, self.depth)

    def pool_size(self) -> int:
        return self.depth + self.skip


@dataclass(frozen=True)
class MixedNegatives(NegativeSource):
    """Several sources at once (`sources`: name -> source), their rankings interleaved in the order given (a
    draw from the front of the pool takes from each alike); a query's pool is as deep as its shortest ranking."""

    sources: Mapping[str, NegativeSource]

    def __post_init__(self) -> None:
        sources = self.sources
        if isinstance(sources, DictConfig):  # as Hydra passes it: our dataclass sources as structured nodes
            sources = OmegaConf.to_object(sources)
        sources = {str(k): v for k, v in sources.items()}
        if not sources or not all(isinstance(s, NegativeSource) for s in sources.values()):
            raise ValueError(f"negatives.sources must name one or more negative sources, got {self.sources!r}")
        object.__setattr__(self, "sources", sources)

    @property
    def name(self) -> str:  # type: ignore[override]
        return "+".join(self.sources)

    @property
    def needs_teacher(self) -> bool:  # type: ignore[override]
        return any(s.needs_teacher for s in self.sources.values())

    def pools(self, split: Split, qids: list[str], miner: Miner | None = None) -> dict[str, list[str]]:
        rankings = [s.pools(split, qids, miner) for s in self.sources.values()]
        return {q: list(dict.fromkeys(p for row in zip(*(r.get(q, []) for r in rankings)) for p in row)) for q in qids}

    def pool_size(self) -> int:
        return sum(s.pool_size() for s in self.sources.values())

    def files(self) -> list[Path]:
        return [f for s in self.sources.values() for f in s.files()]

    def settings(self) -> dict[str, Any]:
        # A list: the order of the sources decides the pools, so it keys the triplets too.
        return {
            "_target_": _path(type(self)),
            "sources": [{"name": k, **s.settings()} for k, s in self.sources.items()],
        }


def dense_part(source: NegativeSource) -> DenseNegatives:
    """The dense source in `source` (itself, or a mix's), else `DenseNegatives()`: what an ANCE refresh mines."""
    inner = list(source.sources.values()) if isinstance(source, MixedNegatives) else [source]
    return next((s for s in inner if isinstance(s, DenseNegatives)), DenseNegatives())


# -- building from a config a user passed in --------------------------------------------------------------

SOURCES: dict[str, type[NegativeSource]] = {}


def register_source(cls: type[NegativeSource]) -> type[NegativeSource]:
    """Allow `cls` in configs read back from files (a resumed run's `config.yaml`); usable as a decorator."""
    SOURCES[_path(cls)] = cls
    return cls


for _cls in (RandomNegatives, CandidateNegatives, BM25Negatives, DenseNegatives, MixedNegatives):
    register_source(_cls)


class UntrustedSourceError(ValueError):
    """A config read from a file names a negative source class that is not allowed."""


def check_source_config(config: Any, where: str = "data.prepare.negatives") -> None:
    """Refuse a source config (a mapping with `_target_`, nested sources included) naming a class outside
    `SOURCES`, before anything is built from it."""
    if isinstance(config, Mapping):
        target = config.get("_target_")
        if target is not None and target not in SOURCES:
            names = ", ".join(sorted(c.__name__ for c in SOURCES.values()))
            raise UntrustedSourceError(
                f"{where} names {target!r}, which is not one of twotower's negative sources "
                f"({names}); refusing to build it"
            )
        for key, value in config.items():
            check_source_config(value, f"{where}.{key}")
    elif isinstance(config, (list, tuple)):
        for i, value in enumerate(config):
            check_source_config(value, f"{where}.{i}")


def build_source(config: Mapping[str, Any]) -> NegativeSource:
    """The source a config describes (`{"_target_": ..., settings}`), through the allow-list `SOURCES`."""
    from hydra.utils import instantiate

    config = dict(config)
    if "_target_" not in config:
        raise ValueError(f"data.prepare.negatives needs a `_target_` (a negative source class), got {config!r}")
    check_source_config(config)
    return instantiate(config)


# -- runs written before sources were classes --------------------------------------------------------------

# The flat settings runs wrote then (PrepareConfig fields), with the defaults those runs ran with.
OLD_SETTINGS = {"run_file": None, "bm25_depth": 50, "bm25_skip": 0, "dense_depth": 50, "dense_skip": 0}


def upgrade_source(prepare: Mapping[str, Any]) -> dict[str, Any]:
    """A `data.prepare` node in today's layout: a run written before sources were classes names its source
    (`negatives: bm25`) with the settings flat beside it (`bm25_depth`, `dense_skip`, `run_file`, ...);
    those become the source's config. A node in today's layout comes back unchanged."""
    prepare = dict(prepare)
    old = {k: prepare.pop(k) for k in list(OLD_SETTINGS) if k in prepare}
    name = prepare.get("negatives")
    if not isinstance(name, str):
        return prepare
    old = {**OLD_SETTINGS, **old}
    bm25 = {"_target_": _path(BM25Negatives), "depth": old["bm25_depth"], "skip": old["bm25_skip"]}
    dense = {"_target_": _path(DenseNegatives), "depth": old["dense_depth"], "skip": old["dense_skip"]}
    configs = {
        "random": {"_target_": _path(RandomNegatives)},
        "candidates": {"_target_": _path(CandidateNegatives), "run_file": old["run_file"]},
        "bm25": bm25,
        "dense": dense,
        "bm25+dense": {"_target_": _path(MixedNegatives), "sources": {"bm25": bm25, "dense": dense}},
    }
    if name not in configs:
        raise ValueError(f"the run's data.prepare.negatives is {name!r}, not one of {', '.join(configs)}")
    prepare["negatives"] = configs[name]
    return prepare
