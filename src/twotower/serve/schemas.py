"""What the HTTP API takes and answers (pydantic models, shown at `/docs`), and the request size caps."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, Field

from twotower.search import Results
from twotower.search.render import query_terms, snippet


@dataclass(frozen=True)
class Limits:
    """Caps on one request; anything larger is refused with a 4xx naming the cap."""

    max_k: int = 100
    max_batch: int = 64
    max_query_chars: int = 1_000
    # A POST body larger than this is refused (413) before it is parsed: enough for a full batch of full queries.
    max_body_bytes: int = 256 * 1024

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class SearchRequest(BaseModel):
    """`POST /search`: several queries searched as one batch."""

    queries: list[str] = Field(description="the query texts (at most `limits.max_batch`, see /info)")
    k: int = Field(10, description="results per query (1 .. `limits.max_k`)")
    mode: str = Field("dense", description="dense, or a mode listed in /info's `modes`")


class HitOut(BaseModel):
    rank: int
    id: str
    score: float
    text: str = Field(description="the whole stored text")
    snippet: str = Field(
        description="about 260 characters of the text around the first query word, as the terminal shows"
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class Timings(BaseModel):
    """Milliseconds per stage; for a batch, each query's share of the batch's time."""

    encode: float
    search: float = Field(description="the vector search (0 in bm25 mode)")
    bm25: float = Field(0.0, description="the BM25 search (bm25 and hybrid modes)")
    fusion: float = Field(0.0, description="merging the dense and BM25 lists (hybrid mode)")
    fetch: float
    total: float


class ResultsOut(BaseModel):
    """One query's ranked hits and where the time went: `Searcher.search`'s `Results`, as JSON."""

    query: str
    mode: str
    truncated: bool = Field(description="the query had more tokens than the query tower reads")
    warning: str | None = Field(None, description="set when the results cannot be trusted, and why")
    timings_ms: Timings
    hits: list[HitOut]

    @classmethod
    def of(cls, results: Results, mode: str, warning: str | None = None) -> ResultsOut:
        terms = query_terms(results.query)
        return cls(
            query=results.query,
            mode=mode,
            truncated=results.truncated,
            warning=warning,
            timings_ms=Timings(
                encode=results.encode_ms,
                search=results.search_ms,
                bm25=results.bm25_ms,
                fusion=results.fusion_ms,
                fetch=results.fetch_ms,
                total=results.total_ms,
            ),
            hits=[
                HitOut(
                    rank=h.rank,
                    id=h.id,
                    score=h.score,
                    text=h.text,
                    snippet=snippet(h.text, terms).plain,
                    metadata=h.metadata,
                )
                for h in results
            ],
        )


class BatchOut(BaseModel):
    results: list[ResultsOut]


class DocumentOut(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    """Every error: one message saying what was wrong."""

    detail: str
