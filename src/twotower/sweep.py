"""After a sweep: rank its jobs, list failures, and plot the metric against each swept parameter.

    python -m twotower.sweep                      # the newest folder under outputs/multirun
    python -m twotower.sweep outputs/multirun/2026-11-23_16-10-00 --metric recall@10
"""

from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table
from twotower.console import console as make_console


@dataclass
class Job:
    folder: Path
    params: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.metrics)


def latest_multirun(root: str | Path = "outputs/multirun") -> Path:
    folders = sorted(p for p in Path(root).glob("*") if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"no sweep folders under {root}; run `make sweep` first")
    return folders[-1]


def collect(sweep_dir: str | Path) -> list[Job]:
    """One Job per job folder (those holding `.hydra/overrides.yaml`), in job order."""
    jobs = []
    for overrides in sorted(Path(sweep_dir).glob("*/.hydra/overrides.yaml"), key=lambda p: _job_number(p.parents[1])):
        folder = overrides.parents[1]
        params = dict(o.split("=", 1) for o in yaml.safe_load(overrides.read_text()) or [] if "=" in o)
        job = Job(folder, params)
        if (folder / "error.txt").exists():
            job.error = _headline((folder / "error.txt").read_text())
        elif (folder / "metrics.json").exists():
            job.metrics = json.loads((folder / "metrics.json").read_text()).get("best", {})
        else:
            job.error = "no metrics.json (killed, or still running)"
        jobs.append(job)
    if not jobs:
        raise FileNotFoundError(f"{sweep_dir} holds no Hydra job folders")
    return jobs


def _headline(traceback_text: str) -> str:
    """The most telling line of a traceback: the innermost `SomeError: message`, not Hydra's wrapper lines."""
    lines = [l.strip() for l in traceback_text.strip().splitlines()]
    errors = [l for l in lines if re.match(r"^[\w.]+(Error|Exception): ", l)]
    raised = [l for l in errors if not l.startswith("hydra.")]
    return (raised or errors or lines or ["unknown error"])[0 if raised else -1]


def _short(value: str) -> str:
    """Optuna's floats to 4 significant digits; anything else as it is."""
    try:
        return value if float(value).is_integer() else f"{float(value):.4g}"
    except ValueError:
        return value


def _job_number(folder: Path) -> int:
    head = folder.name.split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def swept(jobs: list[Job]) -> list[str]:
    """Parameters that took more than one value across the jobs."""
    names = sorted({k for j in jobs for k in j.params})
    return [n for n in names if len({j.params.get(n) for j in jobs}) > 1]


def report(jobs: list[Job], metric: str, console: Console | None = None) -> Job | None:
    console = console or make_console()
    params = swept(jobs)
    ranked = sorted(jobs, key=lambda j: (not j.ok, -j.metrics.get(metric, -math.inf)))
    table = Table(title=f"{len(jobs)} jobs, ranked by {metric}")
    table.add_column("#", justify="right")
    table.add_column("job")
    table.add_column(metric, justify="right", style="bold")
    for extra in ("mrr", "recall@10", "ndcg@10"):
        if extra != metric:
            table.add_column(extra, justify="right")
    for name in params:
        table.add_column(name)
    for rank, job in enumerate(ranked, 1):
        extras = [f"{job.metrics.get(e, float('nan')):.4f}" for e in ("mrr", "recall@10", "ndcg@10") if e != metric]
        value = f"{job.metrics[metric]:.4f}" if job.ok and metric in job.metrics else f"[red]failed[/]"
        table.add_row(str(rank), str(_job_number(job.folder)), value, *extras, *(_short(job.params.get(p, "")) for p in params),
                      style=None if job.ok else "dim")
    console.print(table)
    for job in jobs:
        if not job.ok:
            console.print(f"[red]failed[/] {job.folder}: {job.error}")
    best = ranked[0] if ranked and ranked[0].ok else None
    if best:
        console.print(f"[bold green]best[/] {metric}={best.metrics[metric]:.4f} (job {_job_number(best.folder)}) with "
                      + " ".join(f"{k}={_short(v)}" for k, v in best.params.items()))
    return best


def plot(jobs: list[Job], metric: str, out: str | Path) -> Path | None:
    """One panel per swept parameter: the metric of each finished job against the parameter's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = swept(jobs)
    done = [j for j in jobs if j.ok and metric in j.metrics]
    if not params or not done:
        return None
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    best = max(j.metrics[metric] for j in done)
    for ax, name in zip(axes.flat, params):
        raw = [j.params.get(name, "") for j in done]
        try:
            xs = [float(v) for v in raw]
            numeric = True
        except ValueError:
            numeric = False
            labels = sorted(set(raw))
            xs = [labels.index(v) for v in raw]
            ax.set_xticks(range(len(labels)), labels)
        ys = [j.metrics[metric] for j in done]
        ax.scatter(xs, ys, c=["tab:green" if y == best else "tab:blue" for y in ys], alpha=0.8)
        if numeric and min(xs) > 0 and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(params):]:
        ax.axis("off")
    fig.suptitle(f"{metric} per swept parameter ({len(done)} finished jobs, best in green)")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rank a Hydra multirun's jobs and plot metric vs parameters.")
    parser.add_argument("sweep_dir", nargs="?", help="a multirun folder (default: the newest in outputs/multirun)")
    parser.add_argument("--metric", default="mrr@10")
    args = parser.parse_args(argv)
    folder = Path(args.sweep_dir) if args.sweep_dir else latest_multirun()
    jobs = collect(folder)
    report(jobs, args.metric)
    optuna = folder / "optimization_results.yaml"
    if optuna.exists():
        Console().print(f"Optuna's best: {yaml.safe_load(optuna.read_text())}")
    png = plot(jobs, args.metric, folder / "sweep.png")
    if png:
        print(f"plot: {png}")


if __name__ == "__main__":
    main()
