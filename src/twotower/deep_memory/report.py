"""How Deep Memory reports jobs: the Deep Lake style ASCII status table of one job, a Rich table of all jobs."""

from __future__ import annotations

import textwrap

from twotower.deep_memory.jobs import ACTIVE


def jobs_table(title: str, rows: list[dict]):
    """A Rich table with one row per job: id, status, results, progress."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("ID", no_wrap=True)
    for name in ("STATUS", "RESULTS", "PROGRESS"):
        table.add_column(name)
    for r in rows:
        table.add_row(r["id"], r["status"], r["results"], r["progress"])
    return table


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def progress_text(job: dict) -> str:
    progress = job.get("progress")
    if not progress:
        return "None"
    eta = progress.get("eta_seconds")
    lines = [f"eta: {eta:.1f} seconds" if eta is not None else "eta: unknown"]
    if progress.get("stage") == "embedding queries":
        lines.append(f"embedding queries: {progress['done']}/{progress['total']}")
    best, base = progress.get("best_val"), progress.get("base_val")
    if best and base and "recall@10" in best:
        lines.append(f"recall@10: {pct(best['recall@10'])} ({100 * (best['recall@10'] - base['recall@10']):+.2f}%)")
    if progress.get("epoch"):
        lines.append(f"epoch: {progress['epoch']}/{progress['epochs']}")
    return "\n".join(lines)


def results_text(job: dict) -> str:
    status = job["status"]
    if status in ACTIVE:
        return "not available yet"
    if status != "completed":
        return f"{status}: {job.get('reason', '')}"
    res = job["results"]
    best, base = res["best_val"], res["base_val"]
    gain = best["recall@10"] - base["recall@10"]
    rel = f", {100 * gain / base['recall@10']:+.1f}% relative" if base["recall@10"] else ""
    text = f"recall@10: {pct(best['recall@10'])} ({100 * gain:+.2f}%{rel})\nmrr@10: {best['mrr@10']:.4f} (base {base['mrr@10']:.4f})"
    flag = "accepted: used by deep_memory=True" if job.get("accepted") else "NOT ACCEPTED: " + job.get("reason", "")
    return text + "\n" + flag


def status_table(row: dict) -> str:
    """The Deep Lake status table: a banner with the id, then status / progress / results rows."""
    left, right = 26, 60
    width = left + right + 7
    rule = "-" * width
    lines = [rule, "|" + row["id"].center(width - 2) + "|", rule]
    for key in ("status", "progress", "results"):
        values = []
        for line in str(row[key]).splitlines() or [""]:
            values.extend(textwrap.wrap(line, right, break_long_words=True) or [""])
        for i, value in enumerate(values):
            lines.append(f"| {(key if i == 0 else ''):<{left}} | {value:<{right}} |")
        lines.append(rule)
    return "\n".join(lines)
