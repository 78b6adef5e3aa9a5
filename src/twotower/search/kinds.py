"""Index kinds: exact (`flat`), inverted lists (`ivf`), graph (`hnsw`), each with its tuning knobs.

A kind is a small dataclass that knows how to make itself in faiss and in Milvus, so both backends read the
same settings. `twotower/conf/index/<kind>.yaml` holds the same defaults with a Hydra-style `_target_` (read by
`kind_from_config`, which accepts only the kinds here); the CLI's `--kind` picks one and `--param key=value`
overrides a field.

All kinds score by inner product: the towers emit unit vectors, so that is cosine similarity.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar


@dataclass
class FlatIndex:
    """Exact search over every vector: the reference the others are measured against."""

    kind: ClassVar[str] = "flat"

    def faiss_factory(self, num_vectors: int) -> str:
        return "Flat"

    def faiss_search_parameters(self):
        return None

    def milvus_index(self) -> tuple[str, dict[str, Any]]:
        return "FLAT", {}

    def milvus_search_parameters(self) -> dict[str, Any]:
        return {}

    def redis_options(self) -> tuple[dict[str, Any], dict[str, Any]]:
        # A vector set always builds its HNSW graph; TRUTH makes VSIM scan every vector instead.
        return {}, {"truth": True}


@dataclass
class IVFIndex:
    """Inverted lists: vectors are bucketed around `nlist` k-means centroids; a query scans `nprobe` buckets.

    `encoding="flat"` keeps full vectors in the buckets. `encoding="pq"` stores 4-bit product-quantised codes
    (`pq_bytes` bytes a vector, SIMD "fast scan") and re-scores the best `k_factor * k` with the full vectors:
    far less memory traffic a query, which is what keeps a million-vector scan inside a few milliseconds.
    `nlist=None` picks about 4·√n, capped so every centroid trains on at least 39 vectors.
    """

    kind: ClassVar[str] = "ivf"
    nlist: int | None = None
    nprobe: int = 32
    encoding: str = "flat"
    pq_bytes: int = 32
    k_factor: int = 32

    def __post_init__(self) -> None:
        if self.encoding not in ("flat", "pq"):
            raise ValueError(f"ivf encoding must be 'flat' or 'pq', got {self.encoding!r}")
        if self.nprobe < 1 or (self.nlist is not None and self.nlist < 1):
            raise ValueError(f"ivf nlist and nprobe must be positive, got nlist={self.nlist}, nprobe={self.nprobe}")

    def lists_for(self, num_vectors: int) -> int:
        if self.nlist is not None:
            return self.nlist
        return max(1, min(int(4 * math.sqrt(num_vectors)), num_vectors // 39))

    def faiss_factory(self, num_vectors: int) -> str:
        nlist = self.lists_for(num_vectors)
        if self.encoding == "pq":
            return f"IVF{nlist},PQ{self.pq_bytes * 2}x4fs,RFlat"
        return f"IVF{nlist},Flat"

    def faiss_search_parameters(self):
        import faiss

        ivf = faiss.SearchParametersIVF(nprobe=self.nprobe)
        if self.encoding == "pq":
            return faiss.IndexRefineSearchParameters(k_factor=self.k_factor, base_index_params=ivf)
        return ivf

    def milvus_index(self) -> tuple[str, dict[str, Any]]:
        # Milvus picks nlist at build time without knowing n; 4·√n for a million is 4096, its usual advice.
        nlist = self.nlist or 1024
        if self.encoding == "pq":
            return "IVF_PQ", {"nlist": nlist, "m": self.pq_bytes * 2, "nbits": 4}
        return "IVF_FLAT", {"nlist": nlist}

    def milvus_search_parameters(self) -> dict[str, Any]:
        return {"nprobe": self.nprobe}

    def redis_options(self) -> tuple[dict[str, Any], dict[str, Any]]:
        raise ValueError("the redis backend (Redis vector sets) has no ivf index: choose --kind flat or hnsw")


@dataclass
class HNSWIndex:
    """Hierarchical navigable small-world graph: `m` links a node, `ef_construction` candidates when linking,
    `ef_search` candidates when searching (raise it for recall, lower it for speed)."""

    kind: ClassVar[str] = "hnsw"
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128

    def faiss_factory(self, num_vectors: int) -> str:
        return f"HNSW{self.m},Flat"

    def faiss_search_parameters(self):
        import faiss

        return faiss.SearchParametersHNSW(efSearch=self.ef_search)

    def milvus_index(self) -> tuple[str, dict[str, Any]]:
        return "HNSW", {"M": self.m, "efConstruction": self.ef_construction}

    def milvus_search_parameters(self) -> dict[str, Any]:
        return {"ef": self.ef_search}

    def redis_options(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(VADD options, VSIM options) for a Redis vector set."""
        return {"numlinks": self.m, "ef": self.ef_construction}, {"ef": self.ef_search}


IndexKind = FlatIndex | IVFIndex | HNSWIndex
KINDS: dict[str, type] = {cls.kind: cls for cls in (FlatIndex, IVFIndex, HNSWIndex)}


def make_kind(kind: str, **params: Any) -> IndexKind:
    """`make_kind("hnsw", ef_search=256)`; unknown kinds or fields get an error listing the valid ones."""
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    cls = KINDS[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(
            f"index kind {kind!r} has no setting {', '.join(unknown)}; its settings: {', '.join(fields) or 'none'}"
        )
    return cls(**params)


def kind_from_config(path: str | Path, **overrides: Any) -> IndexKind:
    """The kind an index config file describes (`twotower/conf/index/*.yaml`), with `overrides` applied.

    Its `_target_` must name one of the kinds above: the file is read as data, never imported as code, so an
    index config (or a manifest) from elsewhere cannot make this process run anything else.
    """
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an index config is a mapping with a _target_ naming the kind")
    target = data.pop("_target_", None)
    data.pop("backend", None), data.pop("redis", None)  # where the vectors live (conf/index/redis.yaml), not the kind
    allowed = {f"{cls.__module__}.{cls.__name__}": name for name, cls in KINDS.items()}
    if target is None and "kind" in data:
        return make_kind(data.pop("kind"), **{**data, **overrides})
    if target not in allowed:
        raise ValueError(
            f"{path}: _target_ {target!r} is not an index kind; it must be one of {', '.join(sorted(allowed))}"
        )
    return make_kind(allowed[target], **{**data, **overrides})


def with_settings(spec: IndexKind, **settings: Any) -> IndexKind:
    """A copy of `spec` with some settings changed; a setting the kind lacks is a ValueError naming its settings."""
    return make_kind(spec.kind, **{**dataclasses.asdict(spec), **settings})


def kind_to_dict(spec: IndexKind) -> dict[str, Any]:
    return {"kind": spec.kind, **dataclasses.asdict(spec)}


def kind_from_dict(data: dict[str, Any]) -> IndexKind:
    data = dict(data)
    return make_kind(data.pop("kind"), **data)


def parse_param(text: str) -> tuple[str, Any]:
    """`"nprobe=64"` -> ("nprobe", 64); values are read as int, float, null/none, or left as text."""
    if "=" not in text:
        raise ValueError(f"an index setting is key=value, got {text!r}")
    key, raw = text.split("=", 1)
    value: Any = raw
    if raw.lower() in ("none", "null"):
        value = None
    else:
        for convert in (int, float):
            try:
                value = convert(raw)
                break
            except ValueError:
                pass
    return key.strip(), value
