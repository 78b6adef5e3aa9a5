"""Benchmark of twotower.emb_opt: top items found vs score calls, and per-iteration time against emb-opt 1.0.2.

    python bench/bench_emb_opt.py             # full run (about a minute on one core)
    python bench/bench_emb_opt.py --quick     # 20k vectors, smoke test
    python bench/bench_emb_opt.py --no-compare

Problem: `twotower.emb_opt.synthetic` (seeded clustered vectors, hidden score with several peaks). The top
100 by the hidden score is computed here by scoring everything, for evaluation only; the searches never
see it. "found" = items of that top 100 the search has scored.

Targets: (1) >= 90 of the top 100 found while scoring <= 10% of the index; (2) per-iteration wall time
>= 5x lower than emb-opt 1.0.2 on the same index, starting queries, score and update rule, with at least
as many top items found for the same number of score calls. emb-opt runs in its own virtualenv
(outputs/embopt-venv, created on first use) as a subprocess of this script (`--embopt-worker`).

This file imports only numpy and the standard library at module level: the worker runs inside the
emb-opt venv and loads synthetic.py by path.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # both sides single-threaded, before faiss loads

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "src" / "twotower" / "emb_opt" / "synthetic.py"
OUT = REPO / "outputs" / "bench_emb_opt"
EMBOPT_VENV = REPO / "outputs" / "embopt-venv"
EMBOPT_PIN = "emb-opt==1.0.2"

PROBLEM = {"n": 100_000, "dim": 32, "n_clusters": 100, "spread": 0.5}
N_BUMPS = 8
N_START, START_SEED = 256, 1
TOP = 100
BUDGET_SHARE = 0.10
IVF = {"nlist": 1024, "nprobe": 16}
MATCHED_ITERATIONS = 30
REPEATS = 2

# The algorithms run on both sides, in plain terms (same maths, see updates.py and emb-opt's update.py).
MATCHED = {
    "rl": {"k": 20, "update": "rl", "lr": 0.5, "distance_penalty": 0.1, "prune": 64},
    "discrete": {"k": 16, "update": "discrete", "top_k": 2, "prune": 32},
}
# Ours only (emb-opt has no "skip items already used as queries" nor a beam width).
BEAM = {"k": 16, "update": "beam", "top_k": 2, "beam": 32, "prune": None}


def load_synthetic():
    spec = importlib.util.spec_from_file_location("emb_opt_synthetic", SYNTHETIC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def open_index(path: Path):
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.read_index(str(path))
    if isinstance(index, faiss.IndexIVF):
        index.nprobe = IVF["nprobe"]
        index.make_direct_map()  # emb-opt's faiss plugin reconstructs result vectors; ours does the same
    return index


def time_searches(index) -> list[float]:
    """Wrap `index.search` so the seconds spent inside faiss add up in the returned one-item list."""
    total = [0.0]
    search = index.search

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return search(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - t0

    index.search = timed
    return total


# ---- the emb-opt side (runs inside outputs/embopt-venv) ----------------------------------------------------


def embopt_worker(spec_path: str) -> None:
    from emb_opt.log import Log
    from emb_opt.plugins.faiss import FaissDataPlugin
    from emb_opt.prune import TopKPrune
    from emb_opt.runner import Runner
    from emb_opt.schemas import ScoreResponse
    from emb_opt.update import RLUpdate, TopKDiscreteUpdate
    from emb_opt.utils import build_batch_from_embeddings

    spec = json.loads(Path(spec_path).read_text())
    syn = load_synthetic()
    hidden = syn.BumpScore.random(spec["dim"], spec["n_clusters"], spec["n_bumps"], spec["seed"])
    index = open_index(Path(spec["index"]))
    searching = time_searches(index)
    top = set(np.load(spec["top"]).tolist())
    cfg = spec["config"]
    scored: set[int] = set()
    calls = [0]

    def score(items):
        calls[0] += len(items)
        scored.update(int(item.id) for item in items)
        values = hidden(np.array([item.embedding for item in items]))
        return [ScoreResponse(valid=True, score=float(v), data=None) for v in values]

    if cfg["update"] == "rl":
        update = RLUpdate(lrs=[cfg["lr"]], distance_penalty=cfg["distance_penalty"])
    else:
        update = TopKDiscreteUpdate(k=cfg["top_k"])
    runner = Runner(FaissDataPlugin(cfg["k"], index), None, score, TopKPrune(cfg["prune"], "max", None), update)
    batch, log = build_batch_from_embeddings(np.load(spec["starts"]).tolist()), Log()
    steps = []
    for i in range(spec["iterations"]):
        t0, s0 = time.perf_counter(), searching[0]
        batch = runner.step(batch, log, i, verbose=False)
        steps.append(
            {
                "seconds": time.perf_counter() - t0,
                "search_seconds": searching[0] - s0,
                "calls": calls[0],
                "unique": len(scored),
                "found": len(scored & top),
            }
        )
        if batch is None:
            break
    Path(spec["out"]).write_text(json.dumps(steps))


def ensure_embopt_venv(console) -> Path | None:
    python = EMBOPT_VENV / "bin" / "python"
    check = [str(python), "-c", "import emb_opt, faiss, numpy"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    console.print(f"creating {EMBOPT_VENV} with {EMBOPT_PIN} (one-off)...")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(EMBOPT_VENV)], check=True, capture_output=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", EMBOPT_PIN, "faiss-cpu", "numpy"],
            check=True,
            capture_output=True,
            timeout=900,
        )
        subprocess.run(check, check=True, capture_output=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        detail = getattr(err, "stderr", b"") or b""
        console.print(
            f"[yellow]skipping the emb-opt comparison: could not install {EMBOPT_PIN}: {err} {detail.decode()[-300:]}"
        )
        return None
    return python


def run_embopt(python: Path, files: dict, cfg: dict, problem_seed: int, iterations: int, tag: str) -> list[dict]:
    spec = {
        **{k: v for k, v in PROBLEM.items() if k in ("dim", "n_clusters")},
        "n_bumps": N_BUMPS,
        "seed": problem_seed,
        "config": cfg,
        "iterations": iterations,
        "index": str(files["index"]),
        "top": str(files["top"]),
        "starts": str(files["starts"]),
        "out": str(OUT / f"embopt_{tag}.json"),
    }
    spec_path = OUT / f"embopt_{tag}_spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    proc = subprocess.run(
        [str(python), __file__, "--embopt-worker", str(spec_path)], capture_output=True, text=True, env=env
    )
    if proc.returncode:
        raise RuntimeError(f"emb-opt worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(Path(spec["out"]).read_text())


# ---- our side ------------------------------------------------------------------------------------------------


def our_update(cfg: dict):
    from twotower.emb_opt import RLUpdate, TopKDiscrete, TopKPrune

    prune = TopKPrune(cfg["prune"], agg="max") if cfg.get("prune") else None
    if cfg["update"] == "rl":
        return RLUpdate(lr=cfg["lr"], distance_penalty=cfg["distance_penalty"]), prune
    if cfg["update"] == "discrete":  # emb-opt's TopKDiscreteUpdate: no memory of items already used
        return TopKDiscrete(cfg["top_k"], fresh=False), prune
    return TopKDiscrete(cfg["top_k"], fresh=True, max_queries=cfg["beam"]), prune


def run_ours(index_path: Path, hidden, starts, top: set, cfg: dict, iterations: int, max_calls: int | None):
    """Steps timed from outside the runner, as for emb-opt: everything between two iterations counts."""
    from twotower.emb_opt import FaissVectorDB, Runner, Score, SearchLog

    db = FaissVectorDB(open_index(index_path))
    update, prune = our_update(cfg)
    score = Score(hidden)
    runner = Runner(db, score, update, prune=prune, k=cfg["k"])
    log = SearchLog(db.dim)
    searching = time_searches(db.index)
    queries = runner.start(starts, log)
    update.reset() if hasattr(update, "reset") else None
    steps = []
    for _ in range(iterations):
        if max_calls is not None and score.calls >= max_calls:
            break
        t0, s0 = time.perf_counter(), searching[0]
        queries = runner.step(queries, log)
        seconds = time.perf_counter() - t0
        found = sum(1 for item in top if item in score.cache)
        steps.append(
            {
                "seconds": seconds,
                "search_seconds": searching[0] - s0,
                "calls": score.calls,
                "unique": score.calls,
                "found": found,
            }
        )
        if queries is None:
            break
    return steps, log


def found_at(steps: list[dict], calls: float) -> int:
    """Top items found by the last iteration that ended within `calls` score calls (0 if none did)."""
    within = [s["found"] for s in steps if s["calls"] <= calls]
    return within[-1] if within else 0


def found_given(steps: list[dict], calls: float) -> int:
    """Top items found by the first iteration that used at least `calls` score calls (generous: the run
    gets as many calls as the other side, or more); its final count if it never used that many."""
    return next((s["found"] for s in steps if s["calls"] >= calls), steps[-1]["found"])


def calls_to_reach(steps: list[dict], found: int) -> int | None:
    return next((s["calls"] for s in steps if s["found"] >= found), None)


def per_iteration_ms(steps: list[dict]) -> tuple[float, float]:
    seconds = np.array([s["seconds"] for s in steps])
    return 1000 * seconds.mean(), 1000 * np.median(seconds)


def plot_curves(curves: dict[str, list[dict]], n: int, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for name, steps in curves.items():
        style = "--" if name.startswith("emb-opt") else "-"
        color = next(c for key, c in (("beam", "C0"), ("rl", "C1"), ("discrete", "C2")) if f" {key} " in f" {name} ")
        ax.plot(
            [s["calls"] for s in steps], [s["found"] for s in steps], style, color=color, marker="o", ms=2.5, label=name
        )
    ax.axvline(BUDGET_SHARE * n, color="grey", lw=1, ls=":")
    ax.text(BUDGET_SHARE * n, 3, f" {BUDGET_SHARE:.0%} of the index", color="grey")
    ax.axhline(0.9 * TOP, color="grey", lw=1, ls=":")
    ax.set_xscale("log")
    ax.set(
        xlabel="score calls (log scale; one point per iteration)",
        ylabel=f"found of the top {TOP}",
        title=f"Top-{TOP} items found vs score calls ({n:,} vectors, seed 0, flat index)",
        ylim=(0, TOP + 3),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20k vectors, fewer runs")
    parser.add_argument("--no-compare", action="store_true", help="skip the emb-opt comparison")
    parser.add_argument("--embopt-worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embopt_worker:
        embopt_worker(args.embopt_worker)
        return

    import faiss
    from rich.console import Console
    from rich.table import Table

    from twotower.emb_opt.plots import plot_best_so_far, plot_trajectories

    console = Console(width=max(Console().width, 170))
    OUT.mkdir(parents=True, exist_ok=True)
    problem = {**PROBLEM, "n": 20_000} if args.quick else PROBLEM
    seeds = [0] if args.quick else [0, 1, 2]
    n_start = N_START * problem["n"] // PROBLEM["n"]
    n = problem["n"]
    budget = int(BUDGET_SHARE * n)
    syn = load_synthetic()
    python = None if args.no_compare else ensure_embopt_venv(console)

    target_rows, timing_rows, curves = [], [], {}
    results: dict = {"problem": {**problem, "n_bumps": N_BUMPS}, "budget_calls": budget, "target": [], "timing": []}
    for seed in seeds:
        vectors = syn.clustered_vectors(seed=seed, **problem)
        hidden = syn.BumpScore.random(problem["dim"], problem["n_clusters"], N_BUMPS, seed)
        truth = hidden(vectors)  # evaluation only
        top_ids = np.argsort(-truth)[:TOP]
        top = set(top_ids.tolist())
        bumps = np.argmin(((vectors[top_ids, None, :] - hidden.centres[None]) ** 2).sum(-1), axis=1)
        rng = np.random.default_rng(START_SEED)
        starts = vectors[np.sort(rng.choice(n, n_start, replace=False))]
        files = {"top": OUT / f"top_s{seed}.npy", "starts": OUT / f"starts_s{seed}.npy"}
        np.save(files["top"], top_ids)
        np.save(files["starts"], starts)

        kinds = ["flat", "ivf"] if seed == 0 else ["flat"]
        for kind in kinds:
            if kind == "flat":
                index = faiss.IndexFlatL2(problem["dim"])
            else:
                quantizer = faiss.IndexFlatL2(problem["dim"])
                index = faiss.IndexIVFFlat(quantizer, problem["dim"], IVF["nlist"])
                index.train(vectors)
            index.add(vectors)
            files["index"] = OUT / f"{kind}_s{seed}.faiss"
            faiss.write_index(index, str(files["index"]))

            # Target 1: the budgeted search.
            for name, cfg in (("beam", BEAM), ("rl", MATCHED["rl"])):
                steps, log = run_ours(files["index"], hidden, starts, top, cfg, iterations=80, max_calls=budget)
                reached = calls_to_reach(steps, int(0.9 * TOP))
                row = {
                    "seed": seed,
                    "index": kind,
                    "strategy": name,
                    "iterations": len(steps),
                    "calls": steps[-1]["calls"],
                    "found": found_at(steps, budget),
                    "calls_to_90": reached,
                    "top100_bumps": int(len(set(bumps.tolist()))),
                }
                results["target"].append({**row, "curve": [(s["calls"], s["found"]) for s in steps]})
                target_rows.append(row)
                if seed == 0 and kind == "flat" and name == "beam":
                    curves[f"ours beam (budget {budget:,})"] = steps
                    log.save(OUT / "beam_log")
                    plot_trajectories(log, OUT / "beam_trajectories.png")
                    plot_best_so_far(log, OUT / "beam_best_so_far.png", n_items=n)

            # Target 2: the same algorithm on both sides, same iterations, no budget.
            if seed != 0:
                continue
            for name, cfg in MATCHED.items():
                # Best of REPEATS alternating runs per side: the machine is shared, noise only slows runs down.
                ours = min(
                    (
                        run_ours(files["index"], hidden, starts, top, cfg, MATCHED_ITERATIONS, None)[0]
                        for _ in range(REPEATS)
                    ),
                    key=lambda st: per_iteration_ms(st)[0],
                )
                theirs = None
                if python:
                    theirs = min(
                        (run_embopt(python, files, cfg, seed, len(ours), f"{kind}_{name}") for _ in range(REPEATS)),
                        key=lambda st: per_iteration_ms(st)[0],
                    )
                mean_ms, median_ms = per_iteration_ms(ours)
                row = {
                    "index": kind,
                    "strategy": name,
                    "iterations": len(ours),
                    "ours_ms": mean_ms,
                    "ours_median_ms": median_ms,
                    "ours_search_ms": 1000 * np.mean([s["search_seconds"] for s in ours]),
                    "ours_calls": ours[-1]["calls"],
                    "ours_found": ours[-1]["found"],
                }
                if theirs:
                    their_mean, their_median = per_iteration_ms(theirs)
                    row.update(
                        {
                            "embopt_ms": their_mean,
                            "embopt_median_ms": their_median,
                            "embopt_search_ms": 1000 * np.mean([s["search_seconds"] for s in theirs]),
                            "speedup": their_mean / mean_ms,
                            "embopt_calls": theirs[-1]["calls"],
                            "embopt_unique": theirs[-1]["unique"],
                            "embopt_found_given_our_calls": found_given(theirs, ours[-1]["calls"]),
                            "embopt_found": theirs[-1]["found"],
                            # Same algorithm, same items? (emb-opt's unique count vs our calls, per iteration)
                            "same_items_each_iteration": [(s["calls"], s["found"]) for s in ours]
                            == [(s["unique"], s["found"]) for s in theirs],
                        }
                    )
                    if kind == "flat":
                        curves[f"emb-opt {name} ({len(theirs)} it)"] = theirs
                if kind == "flat":
                    curves[f"ours {name} ({len(ours)} it)"] = ours
                timing_rows.append(row)
                results["timing"].append({**row, "ours_steps": ours, "embopt_steps": theirs})

    plot_curves(curves, n, OUT / "found_vs_calls.png")
    (OUT / "results.json").write_text(json.dumps(results, indent=1, default=float))

    table = Table(title=f"Target 1: top-{TOP} found, scoring <= {BUDGET_SHARE:.0%} of {n:,} vectors ({budget:,} calls)")
    for column in (
        "seed",
        "index",
        "strategy",
        "bumps in top 100",
        "iterations",
        "calls",
        "% of index",
        f"found / {TOP}",
        "calls to reach 90",
    ):
        table.add_column(column, justify="right")
    for r in target_rows:
        ok = "green" if r["found"] >= 0.9 * TOP else "red"
        table.add_row(
            str(r["seed"]),
            r["index"],
            r["strategy"],
            str(r["top100_bumps"]),
            str(r["iterations"]),
            f"{r['calls']:,}",
            f"{100 * r['calls'] / n:.1f}",
            f"[{ok}]{r['found']}",
            f"{r['calls_to_90']:,}" if r["calls_to_90"] else "-",
        )
    console.print(table)

    curve_table = Table(title=f"Found of the top {TOP} vs score calls (seed 0, flat index)")
    marks = [int(f * n) for f in (0.02, 0.04, 0.05, 0.06, 0.08, 0.10, 0.15, 0.20)]
    curve_table.add_column("run")
    for m in marks:
        curve_table.add_column(f"<= {m:,}", justify="right")
    for name, steps in curves.items():
        curve_table.add_row(name, *[str(found_at(steps, m)) for m in marks])
    console.print(curve_table)

    timing = Table(
        title=f"Per-iteration wall time: same index, starts, score, update; {MATCHED_ITERATIONS} iterations, 1 thread"
    )
    for column in (
        "index",
        "update",
        "ours ms/it (median)",
        "emb-opt ms/it (median)",
        "speed-up",
        "faiss search ms/it ours | emb-opt",
        "rest ms/it ours | emb-opt",
        "calls ours | emb-opt",
        "found ours | emb-opt given >= ours' calls",
        "emb-opt found at end",
        "same items each it.",
    ):
        timing.add_column(column, justify="right")
    for r in timing_rows:
        if "embopt_ms" in r:
            ok = "green" if r["speedup"] >= 5 else "red"
            timing.add_row(
                r["index"],
                r["strategy"],
                f"{r['ours_ms']:.1f} ({r['ours_median_ms']:.1f})",
                f"{r['embopt_ms']:.1f} ({r['embopt_median_ms']:.1f})",
                f"[{ok}]{r['speedup']:.1f}x",
                f"{r['ours_search_ms']:.1f} | {r['embopt_search_ms']:.1f}",
                f"{r['ours_ms'] - r['ours_search_ms']:.1f} | {r['embopt_ms'] - r['embopt_search_ms']:.1f}",
                f"{r['ours_calls']:,} | {r['embopt_calls']:,}",
                f"{r['ours_found']} | {r['embopt_found_given_our_calls']}",
                str(r["embopt_found"]),
                "yes" if r["same_items_each_iteration"] else "no",
            )
        else:
            timing.add_row(
                r["index"],
                r["strategy"],
                f"{r['ours_ms']:.1f} ({r['ours_median_ms']:.1f})",
                "skipped",
                "-",
                f"{r['ours_search_ms']:.1f} | -",
                f"{r['ours_ms'] - r['ours_search_ms']:.1f} | -",
                f"{r['ours_calls']:,} | -",
                f"{r['ours_found']} | -",
                "-",
                "-",
            )
    console.print(timing)
    console.print(
        f"wrote {OUT}/results.json, found_vs_calls.png, beam_trajectories.png, beam_best_so_far.png, beam_log/"
    )


if __name__ == "__main__":
    main()
