"""Run an embedding-optimisation search from the Hydra config in twotower/conf/emb_opt/.

    python -m twotower.emb_opt.cli                       # synthetic problem, beam strategy
    python -m twotower.emb_opt.cli strategy=rl iterations=60 max_calls=null
    python -m twotower.emb_opt.cli vector_db=faiss_file vector_db.path=idx.faiss \
        score=python score.fn.path=mypkg.scores.toxicity

Writes into the run folder: log/ (SearchLog.save), results.parquet (every item seen, best first),
trajectories.png and best_so_far.png. A step that raises still leaves the log and plots of the
iterations before it, then the command fails. A run folder (`hydra.run.dir=...`) emb-opt did not write is
refused unless `overwrite=true`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from twotower.conf import CONF_DIR as PACKAGE_CONF
from twotower.emb_opt.log import SearchLog
from twotower.emb_opt.plots import plot_best_so_far, plot_trajectories
from twotower.emb_opt.runner import Runner, SearchInterrupted, check_max_calls
from twotower.emb_opt.score import as_score
from twotower.emb_opt.vector_db import sample_queries
from twotower.errors import user_errors
from twotower.io.atomic import atomic_path
from twotower.io.npy import load_npy
from twotower.io.output import check_run_dir_argument, claim_run_folder

CONF_DIR = PACKAGE_CONF / "emb_opt"
OUTPUTS = ("log", "results.parquet", "trajectories.png", "best_so_far.png", "error.txt")
"""What a search writes into its run folder (one an earlier run wrote may be written again)."""


def build_runner(cfg: DictConfig) -> Runner:
    """The runner the config describes (vector_db, score, query_update, filter, prune, k)."""
    from hydra.utils import instantiate

    return Runner(
        vector_db=instantiate(cfg.vector_db),
        score=as_score(instantiate(cfg.score)),
        query_update=instantiate(cfg.query_update),
        filter=instantiate(cfg.filter) if cfg.get("filter") else None,
        prune=instantiate(cfg.prune) if cfg.get("prune") else None,
        k=cfg.k,
    )


def starting_queries(cfg: DictConfig, runner: Runner) -> np.ndarray:
    if cfg.start.get("path"):
        return np.asarray(load_npy(cfg.start.path, "starting query vectors (start.path)"))
    return sample_queries(runner.vector_db, cfg.start.n, seed=cfg.start.seed)


def run_search(cfg: DictConfig, out_dir: str | Path) -> SearchLog:
    """Search as configured and write log, results and plots to `out_dir`; returns the log.
    Re-raises a failing step's `SearchInterrupted` after writing what was done before it."""
    from rich.console import Console

    console = Console()
    out_dir = Path(out_dir)
    check_max_calls(cfg.max_calls)  # before the index is built or loaded
    runner = build_runner(cfg)
    start = starting_queries(cfg, runner)
    t0 = time.perf_counter()
    error: SearchInterrupted | None = None
    try:
        log = runner.search(start, cfg.iterations, max_calls=cfg.max_calls, progress=cfg.progress)
    except SearchInterrupted as err:
        log, error = err.log, err
    seconds = time.perf_counter() - t0
    write_outputs(log, out_dir, n_items=len(runner.vector_db))
    _report(console, log, runner, seconds, out_dir, cfg.top)
    if error is not None:
        raise error
    return log


def write_outputs(log: SearchLog, out_dir: Path, n_items: int | None = None) -> None:
    log.save(out_dir / "log")
    with atomic_path(out_dir / "results.parquet") as tmp:
        log.compile_results(format="arrow").to_pandas().to_parquet(tmp, index=False)
    if log.iterations:
        plot_trajectories(log, out_dir / "trajectories.png")
        plot_best_so_far(log, out_dir / "best_so_far.png", n_items=n_items)


def _report(console: Any, log: SearchLog, runner: Runner, seconds: float, out_dir: Path, top: int) -> None:
    from rich.table import Table

    results = log.compile_results()
    table = Table(title=f"Top {min(top, len(results))} of {len(results):,} items scored")
    for column in ("item_id", "score", "iteration", "hits"):
        table.add_column(column, justify="right")
    for row in results.head(top).itertuples():
        table.add_row(str(row.item_id), f"{row.score:.4f}", str(row.iteration), str(row.hits))
    console.print(table)
    calls = runner.score.calls
    console.print(
        f"{log.iterations} iterations in {seconds:.2f}s ({1000 * seconds / max(log.iterations, 1):.1f} ms each); "
        f"{calls:,} score calls = {100 * calls / len(runner.vector_db):.2f}% of {len(runner.vector_db):,} items; "
        f"stopped: {log.stop_reason}\nwrote {out_dir}/log, results.parquet, trajectories.png, best_so_far.png"
    )


def main() -> None:
    """`python -m twotower.emb_opt.cli [overrides]` (and `twotower emb-opt`): a `hydra.run.dir=` that is not
    ours is refused before Hydra writes into it."""
    import sys

    with user_errors():
        check_run_dir_argument(sys.argv[1:], "emb-opt", own=OUTPUTS)
    _hydra_main()


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    out_dir = HydraConfig.get().runtime.output_dir
    with user_errors():  # a folder of the user's (hydra.run.dir=...) is refused before anything is written to it
        claim_run_folder(out_dir, "emb-opt", cfg.get("overwrite", False), own=OUTPUTS)
    with user_errors(trace_dir=out_dir):  # a bad setting or file: one line, exit 1 (HYDRA_FULL_ERROR=1: traceback)
        run_search(cfg, out_dir)


if __name__ == "__main__":
    main()
