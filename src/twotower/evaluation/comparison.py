"""The comparison `evaluate.py` prints and writes: each system against one baseline, per metric, with the
difference, the paired test's p-value (raw and corrected) and a bootstrap confidence interval.

    rows = significance.compare(per_query, "bm25", settings)
    print_comparison(rows, settings)
    write_comparison(out_dir, rows, settings)     # comparison.json and comparison.md
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from twotower.evaluation.significance import Comparison, Settings
from twotower.io.atomic import atomic_path, write_json
from twotower.io.console import console as make_console

TEST_NAMES = {"t-test": "paired t-test", "randomization": "Fisher randomisation test"}


def describe(settings: Settings, n_systems: int) -> str:
    """One sentence saying how the rows were tested, for the table's caption and the markdown."""
    correction = (
        "no correction"
        if settings.correction == "none" or n_systems < 2
        else f"{settings.correction.capitalize()}-corrected over the {n_systems} systems compared per metric"
    )
    return (
        f"{TEST_NAMES[settings.test]} (two-sided, {correction}); {settings.confidence:.0%} bootstrap CI (BCa, "
        f"{settings.resamples:,} resamples) of the mean per-query difference; significant when p < {settings.alpha}"
    )


def _cells(row: Comparison, name) -> list[str]:
    return [
        name(row.system),
        row.metric,
        f"{row.mean:.4f}",
        f"{row.baseline_mean:.4f}",
        f"{row.diff:+.4f}",
        f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}]",
        _p(row.p),
        _p(row.p_adjusted),
        row.verdict,
    ]


HEADERS = ["system", "metric", "mean", "baseline", "diff", "95% CI", "p", "p (corrected)", "verdict"]


def _p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def print_comparison(rows: Sequence[Comparison], settings: Settings, console: Console | None = None, name=str) -> None:
    """A Rich table of `rows` (nothing when there is a single system); `name` shortens a system's name."""
    if not rows:
        return
    console = console or make_console()
    n_systems = len({r.system for r in rows})
    table = Table(
        title=f"Against {name(rows[0].baseline)} ({rows[0].n} paired queries)",
        caption=describe(settings, n_systems),
        caption_style="dim",
    )
    for header in HEADERS:
        table.add_column(header, justify="left" if header in ("system", "metric", "verdict") else "right")
    colour = {"better": "green", "worse": "red", "tie": "yellow"}
    for row in rows:
        cells = _cells(row, name)
        cells[-1] = f"[{colour[row.verdict]}]{row.verdict}[/]"
        table.add_row(*cells)
    console.print(table)


def comparison_markdown(rows: Sequence[Comparison], settings: Settings, name=str) -> str:
    """`rows` as a markdown table headed by how they were tested."""
    if not rows:
        return "Only one system was evaluated: nothing to compare.\n"
    n_systems = len({r.system for r in rows})
    lines = [
        f"Against **{name(rows[0].baseline)}** on {rows[0].n} paired queries: {describe(settings, n_systems)}.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if h in ("system", "metric", "verdict") else "---:" for h in HEADERS) + "|",
    ]
    lines += ["| " + " | ".join(_cells(row, name)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_comparison(out_dir: str | Path, rows: Sequence[Comparison], settings: Settings, name=str) -> list[Path]:
    """`comparison.json` (settings and every row) and `comparison.md` in `out_dir`."""
    out_dir = Path(out_dir)
    payload = {"settings": asdict(settings), "rows": [r.to_dict() for r in rows]}
    written = [write_json(out_dir / "comparison.json", payload)]
    with atomic_path(out_dir / "comparison.md") as tmp:
        tmp.write_text(comparison_markdown(rows, settings, name))
    written.append(out_dir / "comparison.md")
    return written
