"""Checkpoint leaderboard: every training run under a folder, ranked by a metric, as a table, JSON or a plot,
with which runs are statistically tied with the best (`mark_ties`: a paired test on the per-query values each
run saved; docs/significance.md). Reading the run folders is `twotower.reporting.runs`.

    runs = collect_runs("outputs")
    ranked = mark_ties(rank_runs(runs, "mrr@10"), "mrr@10")
    console.print(leaderboard_table(ranked, "mrr@10"))
    plot_leaderboard(ranked, "mrr@10", "leaderboard.png")      # twotower.reporting.leaderboard_plot
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from twotower.evaluation.significance import Settings, ties_with_best
from twotower.reporting.runs import RunEntry, collect_runs, overrides_of, read_run

__all__ = ["RunEntry", "collect_runs", "leaderboard_json", "leaderboard_table", "mark_ties", "overrides_of"]
__all__ += ["rank_runs", "read_run", "short_label"]

# Always shown, whatever the ranking metric (the seed's checkpoint analysis showed these).
SHOWN = ("mrr", "recall@1", "recall@5", "recall@10")
TIE_STYLE = {"best": "bold green", "tie": "yellow", "worse": "", "n/a": "dim"}


def rank_runs(runs: Sequence[RunEntry], metric: str = "mrr@10") -> list[RunEntry]:
    """Best first by `metric` (every retrieval metric is higher-is-better); runs without it go last."""
    metric = metric.lower()
    if runs and not any(metric in r.metrics for r in runs):
        available = sorted({k for r in runs for k in r.metrics})
        raise KeyError(f"no run has the metric {metric!r}; available: {', '.join(available)}")

    def key(run: RunEntry) -> tuple[int, float]:
        value = run.metrics.get(metric)
        missing = value is None or math.isnan(value)
        return (1, 0.0) if missing else (0, -value)

    return sorted(runs, key=key)


def mark_ties(ranked: Sequence[RunEntry], metric: str, settings: Settings | None = None) -> list[RunEntry]:
    """Set each run's `vs_best` against the first run (the best by `metric`): `tie` when a paired test on
    their per-query values (Holm-corrected over the runs) cannot tell them apart, `worse` when it can, `n/a`
    when either run saved no per-query values (never a guessed tie). Returns the runs, in the same order."""
    ranked = list(ranked)
    metric = metric.lower()
    scored = [r for r in ranked if r.ok and metric in r.metrics]
    if not scored:
        return ranked
    marks = ties_with_best({r.name: r.per_query for r in scored}, scored[0].name, metric, settings)
    for run in scored:
        run.vs_best = marks[run.name]
    return ranked


def leaderboard_json(runs: Sequence[RunEntry], metric: str) -> str:
    return json.dumps(
        {"metric": metric, "runs": [{"rank": i + 1, **r.to_dict()} for i, r in enumerate(runs)]}, indent=2, default=str
    )


def _size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if num_bytes < 1024 or unit == "GB":
            return f"{num_bytes:,.0f} {unit}" if unit == "B" else f"{num_bytes:,.1f} {unit}"
        num_bytes /= 1024
    return ""


def leaderboard_table(
    runs: Sequence[RunEntry], metric: str, top: int | None = None, width: int | None = None, params: Sequence[str] = ()
):
    """A Rich table: rank, run, sweep, model, the ranking metric, MRR, Recall@1/5/10, "vs best" (once `mark_ties`
    ran: best, tie, worse or n/a), epoch, size, date, history, and a column per name in `params` (a sweep's
    parameters); a failed run shows "failed".

    Below `width` 170 columns the history, model and date columns are left out, in that order, so the numbers
    stay readable in a narrow terminal (`--json` has every field)."""
    from rich.table import Table
    from rich.text import Text

    columns = [metric] + [m for m in SHOWN if m != metric]
    width = width or 250
    optional = {"history": width >= 170, "model": width >= 140, "date": width >= 115}
    left_out = [name for name, kept in optional.items() if not kept]
    caption = f"narrow terminal: {', '.join(left_out)} left out (see --json)" if left_out else None
    table = Table(
        title=f"checkpoint leaderboard · ranked by {metric}",
        title_style="bold",
        header_style="bold",
        caption=caption,
        caption_style="dim",
    )
    table.add_column("#", justify="right", style="bold cyan")
    table.add_column("run", style="bright_blue", overflow="fold", min_width=12)
    table.add_column("sweep", style="dim", overflow="fold")
    if optional["model"]:
        table.add_column("model", overflow="fold")
    for name in columns:
        table.add_column(
            name.upper() if name == "mrr" else name.replace("recall", "R").replace("mrr", "MRR"),
            justify="right",
            style="bold" if name == metric else None,
            no_wrap=True,
        )
    ties = any(r.vs_best is not None for r in runs)
    if ties:
        table.add_column("vs best", no_wrap=True)
    table.add_column("best epoch", justify="right")
    table.add_column("size", justify="right", no_wrap=True)
    if optional["date"]:
        table.add_column("date", no_wrap=True)
    if optional["history"]:
        table.add_column("history", style="dim", overflow="fold")
    for name in params:
        table.add_column(name, overflow="fold")
    shown = list(runs)[:top] if top else list(runs)
    best = {m: max((r.metrics[m] for r in shown if m in r.metrics), default=None) for m in columns}
    for i, run in enumerate(shown, 1):
        cells = []
        for m in columns:
            value = run.metrics.get(m)
            style = "green" if value is not None and value == best[m] else None
            failed = run.error is not None and m == metric
            cells.append(
                Text(
                    "failed" if failed else "—" if value is None else f"{value:.4f}",
                    style="red" if failed else style or "",
                )
            )
        history = (
            run.history_file.relative_to(run.path).as_posix()
            if run.history_file and run.path in run.history_file.parents
            else str(run.history_file or "—")
        )
        row = [str(i), run.path.name, run.sweep or ""] + ([run.model or ""] if optional["model"] else []) + cells
        row += [Text(run.vs_best or "", style=TIE_STYLE.get(run.vs_best or "", ""))] if ties else []
        row += ["" if run.best_epoch is None else str(run.best_epoch), _size(run.size_bytes)]
        row += ([run.date] if optional["date"] else []) + ([history] if optional["history"] else [])
        row += [_number(run.params.get(p, "")) for p in params]
        table.add_row(*row, style=None if run.error is None else "dim")
    return table


def short_label(name: str, width: int = 38) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _number(value: str) -> str:
    """A swept float to 4 significant digits; anything else as it is."""
    try:
        return value if float(value).is_integer() else f"{float(value):.4g}"
    except ValueError:
        return value
