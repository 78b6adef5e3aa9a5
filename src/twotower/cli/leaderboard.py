"""`twotower leaderboard`: rank the runs of a folder by a metric, as a table, JSON and a plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from twotower.io.console import console as make_console

TIE_NOTE = (
    "vs best: tie = a paired t-test on the per-query values (Holm-corrected over the runs, p >= 0.05) cannot "
    "tell the run from the best; n/a = no eval/best/per_query.json saved (docs/significance.md)"
)


def configure_leaderboard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs", default="outputs", help="folder of training runs (searched recursively; default outputs)"
    )
    parser.add_argument("--metric", default="mrr@10", help="rank by this metric (default mrr@10)")
    parser.add_argument("--top", type=int, help="show only the best N runs")
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="FILE", help="write JSON to FILE (or stdout with no FILE)"
    )
    parser.add_argument("--plot", metavar="PNG", help="write per-epoch curves and the leaderboard as a PNG")


def run_leaderboard(args: argparse.Namespace) -> int:

    from twotower.io.atomic import atomic_path
    from twotower.reporting.leaderboard import collect_runs, leaderboard_json, leaderboard_table, mark_ties, rank_runs
    from twotower.reporting.leaderboard_plot import plot_leaderboard

    console = make_console(stderr=args.json == "-")
    metric = args.metric.lower()
    # Which runs a paired test cannot tell from the best (their saved per-query values; n/a without them).
    runs = mark_ties(rank_runs(collect_runs(args.runs), metric), metric)
    if not runs:
        console.print(
            f"[yellow]no training runs under {args.runs}[/] (a run folder holds metrics.json or checkpoints/best.pt)"
        )
        return 1
    shown = runs[: args.top] if args.top else runs
    if args.json == "-":
        print(leaderboard_json(shown, metric))
    else:
        console.print(leaderboard_table(shown, metric, width=console.width))
        console.print(f"[dim]{TIE_NOTE}[/]")
        if args.json:
            with atomic_path(args.json) as tmp:
                Path(tmp).write_text(leaderboard_json(shown, metric) + "\n")
            console.print(f"wrote {args.json}")
    if args.plot:
        plot_leaderboard(shown, metric, args.plot)
        console.print(f"wrote {args.plot}")
    return 0
