"""What a search returns: `Results` (the hits of one query and the time of each stage) and `Hit`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


class UnknownQueryWarning(UserWarning):
    """A query whose every token is unknown to the model: it is searched, but its hits are arbitrary."""


@dataclass
class Hit:
    rank: int
    id: str
    score: float
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Results:
    """The ranked hits of one query, and where the time went (for a batch: each query's share of it).

    `mode` is how they were ranked ("dense", "bm25", "hybrid"); `search_ms` is the vector search, `bm25_ms`
    the BM25 search and `fusion_ms` merging the two lists (hybrid), `encode_ms` the query tower."""

    query: str
    hits: list[Hit]
    encode_ms: float = 0.0
    search_ms: float = 0.0
    fetch_ms: float = 0.0
    query_tokens: int = 0
    max_query_tokens: int = 0
    mode: str = "dense"
    bm25_ms: float = 0.0
    fusion_ms: float = 0.0

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]

    @property
    def scores(self) -> list[float]:
        return [h.score for h in self.hits]

    @property
    def texts(self) -> list[str]:
        return [h.text for h in self.hits]

    @property
    def truncated(self) -> bool:
        """The query had more tokens than the query tower reads; only the first `max_query_tokens` counted."""
        return self.query_tokens > self.max_query_tokens

    @property
    def total_ms(self) -> float:
        return self.encode_ms + self.search_ms + self.bm25_ms + self.fusion_ms + self.fetch_ms

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def __getitem__(self, i: int) -> Hit:
        return self.hits[i]
