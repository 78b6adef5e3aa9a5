"""After a sweep: rank its jobs, list failures, and plot what Optuna says about the swept parameters.

    python -m twotower.reporting.sweep                      # the newest folder under outputs/multirun
    python -m twotower.reporting.sweep outputs/multirun/2026-11-23_16-10-00 --metric recall@10

The jobs are runs, ranked and shown by `twotower.reporting.leaderboard` (with a column per swept parameter), and
`leaderboard.png` holds their per-epoch curves. The parameter plots are Optuna's own (slice and importance,
`optuna.visualization.matplotlib`), over the sweep's study in `<sweep>/optuna.db` (see twotower/conf/hparams_search)
or, for a sweep without one (Hydra's basic sweeper, another metric), over a study made from the jobs.
"""

from __future__ import annotations

import argparse
import functools
import re
import warnings
from pathlib import Path

import yaml
from rich.console import Console

from twotower.io.console import console as make_console
from twotower.reporting.leaderboard import RunEntry, leaderboard_table, mark_ties, overrides_of, rank_runs, read_run
from twotower.reporting.leaderboard_plot import plot_leaderboard


def latest_multirun(root: str | Path = "outputs/multirun") -> Path:
    folders = sorted(p for p in Path(root).glob("*") if p.is_dir())
    if not folders:
        raise FileNotFoundError(f"no sweep folders under {root}; run `make sweep` first")
    return folders[-1]


def collect(sweep_dir: str | Path) -> list[RunEntry]:
    """One run per job folder (those holding `.hydra/overrides.yaml`), in job order; failed jobs carry `error`."""
    sweep_dir = Path(sweep_dir)
    jobs = []
    for overrides in sorted(sweep_dir.glob("*/.hydra/overrides.yaml"), key=lambda p: _job_order(p.parents[1])):
        folder = overrides.parents[1]
        run = None if (folder / "error.txt").exists() else read_run(folder, sweep_dir)
        if run is None:
            error = (
                _headline((folder / "error.txt").read_text())
                if (folder / "error.txt").exists()
                else "no metrics.json (killed, or still running)"
            )
            run = RunEntry(name=folder.name, path=folder, metrics={}, params=overrides_of(folder), error=error)
        jobs.append(run)
    if not jobs:
        raise FileNotFoundError(f"{sweep_dir} holds no Hydra job folders")
    return jobs


def _headline(traceback_text: str) -> str:
    """The most telling line of a traceback: the innermost `SomeError: message`, not Hydra's wrapper lines."""
    lines = [line.strip() for line in traceback_text.strip().splitlines()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    raised = [line for line in errors if not line.startswith("hydra.")]
    return (raised or errors or lines or ["unknown error"])[0 if raised else -1]


def _job_order(folder: Path) -> tuple[str, int]:
    """(launch, job number) of `<num>_<overrides>` (Hydra's default) or `<launch time>_<num>` (hparams_search)."""
    head = folder.name.partition("_")[0]
    if head.isdigit():
        return "", int(head)
    launch, _, tail = folder.name.rpartition("_")
    return (launch, int(tail)) if tail.isdigit() else (folder.name, 0)


def swept(jobs: list[RunEntry]) -> list[str]:
    """Parameters that took more than one value across the jobs."""
    names = sorted({k for j in jobs for k in j.params})
    return [n for n in names if len({j.params.get(n) for j in jobs}) > 1]


def report(jobs: list[RunEntry], metric: str, console: Console | None = None) -> RunEntry | None:
    """Print the jobs ranked by `metric` (failed ones last) and the failures; return the best job."""
    console = console or make_console()
    finished = [j for j in jobs if j.ok]
    # rank_runs refuses a metric no finished job has (a typo, `MRR@10`), naming the ones there are.
    ranked = mark_ties(rank_runs(finished, metric), metric) + [j for j in jobs if not j.ok]
    table = leaderboard_table(ranked, metric, width=console.width, params=swept(jobs))
    table.title = f"{len(jobs)} jobs of {jobs[0].path.parent.name}, ranked by {metric}"
    console.print(table)
    for job in jobs:
        if not job.ok:
            console.print(f"[red]failed[/] {job.path}: {job.error}")
    metric = metric.lower()
    best = ranked[0] if finished and metric in ranked[0].metrics else None
    if best:
        console.print(
            f"[bold green]best[/] {metric}={best.metrics[metric]:.4f} ({best.path.name}) with "
            + " ".join(f"{k}={v}" for k, v in best.params.items())
        )
        tied = [j.path.name for j in ranked if j.vs_best == "tie"]
        unknown = sum(j.vs_best == "n/a" for j in ranked)
        console.print(
            f"statistically tied with the best (paired t-test, Holm, p >= 0.05): {', '.join(tied) or 'none'}"
            + (f"; {unknown} job(s) saved no per-query values (n/a)" if unknown else "")
        )
    return best or None


def study_of(sweep_dir: str | Path, jobs: list[RunEntry], metric: str):
    """The Optuna study behind the sweep when it optimised `metric`, else one made from the finished jobs."""
    import optuna

    sweep_dir = Path(sweep_dir)
    hydra = jobs[0].path / ".hydra"
    monitor = _yaml(hydra / "config.yaml").get("monitor")
    study_name = ((_yaml(hydra / "hydra.yaml").get("hydra") or {}).get("sweeper") or {}).get("study_name")
    if (sweep_dir / "optuna.db").is_file() and monitor == metric and study_name:
        return optuna.load_study(study_name=study_name, storage=sqlite_storage(sweep_dir / "optuna.db"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    params = swept(jobs)
    values = {
        p: sorted({_value(j.params.get(p, "")) for j in jobs}, key=lambda v: (isinstance(v, str), v)) for p in params
    }
    for job in jobs:
        if job.ok and metric in job.metrics:
            study.add_trial(
                optuna.trial.create_trial(
                    params={p: _value(job.params.get(p, "")) for p in params},
                    distributions={p: optuna.distributions.CategoricalDistribution(values[p]) for p in params},
                    value=job.metrics[metric],
                )
            )
    return study


def _yaml(path: Path) -> dict:
    try:
        return (yaml.safe_load(path.read_text()) if path.is_file() else None) or {}
    except yaml.YAMLError:
        return {}


def _value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def plot(jobs: list[RunEntry], metric: str, sweep_dir: str | Path) -> list[Path]:
    """`leaderboard.png` (per-epoch curves, bars), and Optuna's `slice.png` and `importance.png` in `sweep_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.cm
    import matplotlib.pyplot as plt
    import numpy as np
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    if not hasattr(
        matplotlib.cm, "get_cmap"
    ):  # Optuna 2 (hydra-optuna-sweeper pins it) calls what matplotlib 3.9 removed
        matplotlib.cm.get_cmap = matplotlib.colormaps.get_cmap

    from twotower.io.atomic import atomic_path

    sweep_dir = Path(sweep_dir)
    done = [j for j in jobs if j.ok and metric.lower() in j.metrics]
    if not done:
        return []
    written = [plot_leaderboard(rank_runs(done, metric), metric, sweep_dir / "leaderboard.png")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = study_of(sweep_dir, jobs, metric)
    # Importance by a random forest's mean decrease in impurity: Optuna 2's default (fANOVA) fails on numpy 2.
    importance = functools.partial(
        optuna_plots.plot_param_importances, evaluator=optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0)
    )
    for name, draw in (("slice", optuna_plots.plot_slice), ("importance", importance)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots and create_trial experimental
            try:
                axes = draw(study, target_name=metric)
            except (ValueError, RuntimeError) as exc:  # e.g. importance needs two finished trials
                print(f"no {name} plot: {exc}")
                continue
        figure = np.atleast_1d(axes).flat[0].figure
        with atomic_path(sweep_dir / f"{name}.png") as tmp:
            figure.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
        plt.close(figure)
        written.append(sweep_dir / f"{name}.png")
    return written


def sqlite_storage(path: str | Path) -> str:
    """`sqlite:///<path>` for the Optuna sweeper's `storage`, creating the folder first: the sweeper opens its
    study before Hydra creates the sweep folder (twotower/conf/hparams_search/optuna.yaml)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(path).resolve()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rank a Hydra multirun's jobs and plot what its parameters did.")
    parser.add_argument("sweep_dir", nargs="?", help="a multirun folder (default: the newest in outputs/multirun)")
    parser.add_argument("--metric", default="mrr@10")
    args = parser.parse_args(argv)
    folder = Path(args.sweep_dir) if args.sweep_dir else latest_multirun()
    jobs = collect(folder)
    try:
        report(jobs, args.metric)
    except KeyError as exc:  # no job has --metric: one line, not a table of dashes and no plots
        parser.error(f"--metric {args.metric}: {exc.args[0]}")
    optuna = folder / "optimization_results.yaml"
    if optuna.exists():
        Console().print(f"Optuna's best: {yaml.safe_load(optuna.read_text())}")
    for png in plot(jobs, args.metric, folder):
        print(f"plot: {png}")


if __name__ == "__main__":
    main()
