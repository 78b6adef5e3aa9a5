"""Rich rendering of search results: rank, score, id, a snippet with the query's words highlighted, timings."""

from __future__ import annotations

import re

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from twotower.retrieval.text import words
from twotower.search.results import Results

SNIPPET_CHARS = 260
# Words too common to be worth highlighting (the towers down-weight them too).
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from has have how i in is it its of on or that the their this to "
    "was were what when where which who why will with you your".split()
)


def query_terms(query: str) -> list[str]:
    seen: dict[str, None] = {}
    for word in words(query):
        if word not in STOP_WORDS and len(word) > 1:
            seen.setdefault(word, None)
    return list(seen)


def _pattern(terms: list[str]) -> re.Pattern | None:
    if not terms:
        return None
    # Plural and -ing/-ed forms of a query word count as the same word when reading a snippet.
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})(?:s|es|ed|ing)?\b", re.IGNORECASE)


def snippet(text: str, terms: list[str], width: int = SNIPPET_CHARS) -> Text:
    """A window of `text` around its first query word, with every query word highlighted."""
    pattern = _pattern(terms)
    start = 0
    if len(text) > width and pattern is not None:
        first = pattern.search(text)
        if first and first.start() > width // 3:
            start = text.rfind(" ", 0, first.start() - width // 3) + 1
    end = min(len(text), start + width)
    if end < len(text):
        end = max(text.rfind(" ", start, end), start + width // 2)
    body = Text(("… " if start else "") + text[start:end].strip() + (" …" if end < len(text) else ""))
    if pattern is not None:
        body.highlight_regex(pattern, style="bold black on yellow")
    return body


def _score_style(score: float, top: float, bottom: float) -> str:
    spread = top - bottom
    position = 1.0 if spread <= 1e-9 else (score - bottom) / spread
    return "bold green" if position > 0.8 else "green" if position > 0.5 else "yellow" if position > 0.2 else "dim"


def timing_line(results: Results, device: str) -> Text:
    line = Text()
    line.append(f"{results.mode}  ", style="bold")
    if results.mode != "bm25":
        line.append("encode ", style="dim").append(f"{results.encode_ms:.2f} ms", style="cyan")
        line.append("  ·  search ", style="dim").append(f"{results.search_ms:.2f} ms", style="magenta")
        line.append(f" on {device}", style="dim")
    if results.mode != "dense":
        line.append("  ·  " if results.mode == "hybrid" else "", style="dim")
        line.append("bm25 ", style="dim").append(f"{results.bm25_ms:.2f} ms", style="magenta")
    if results.mode == "hybrid":
        line.append("  ·  fusion ", style="dim").append(f"{results.fusion_ms:.2f} ms", style="magenta")
    line.append("  ·  fetch ", style="dim").append(f"{results.fetch_ms:.2f} ms", style="blue")
    line.append("  ·  total ", style="dim").append(f"{results.total_ms:.2f} ms", style="bold")
    return line


def render_results(results: Results, device: str = "CPU", title: str | None = None) -> Panel:
    terms = query_terms(results.query)
    table = Table(expand=True, show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right", style="bold cyan", no_wrap=True, width=3)
    table.add_column("score", justify="right", no_wrap=True, width=7)
    table.add_column("id", style="bright_blue", no_wrap=True, max_width=20)
    table.add_column("passage", ratio=1)
    scores = results.scores
    for hit in results.hits:
        table.add_row(
            str(hit.rank),
            Text(f"{hit.score:.4f}", style=_score_style(hit.score, max(scores), min(scores))),
            hit.id,
            snippet(hit.text, terms),
        )
    parts: list = []
    if results.truncated:
        parts.append(
            Text(
                f"⚠ the query has {results.query_tokens} tokens; the model reads the first "
                f"{results.max_query_tokens}, the rest was ignored",
                style="bold yellow",
            )
        )
    parts.append(table if results.hits else Text("no documents found", style="yellow"))
    parts.append(timing_line(results, device))
    return Panel(
        Group(*parts),
        title=Text.assemble(("query: ", "dim"), (results.query, "bold")),
        subtitle=title,
        title_align="left",
        subtitle_align="right",
        border_style="cyan",
    )
