"""Training targets of issues 2, 9 and 10 on this machine, as tables.

* data pipeline: tokenised triplets per second on one core (num_workers=0, one torch thread);
* full-corpus evaluation of the dev set with a GRU tower (24k passages, 480 queries) on CPU;
* the ladder: each experiment trained from scratch (`python train.py experiment=...`) with its wall time, its
  teacher's time (teacher vectors are cached: the first experiment that needs them pays; `--fresh-cache`
  makes every run start cold) and its best dev metrics, beside BM25 and zero-shot MiniLM;
* encoding speed side by side in one run: passages/s of each trained tower against all-MiniLM-L6-v2.

    python bench/bench_train.py                                   # pipeline, GRU eval, default experiment
    python bench/bench_train.py --ladder default distill_static distill_gru minilm_finetune
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from rich.console import Console
from rich.table import Table

from twotower import api
from twotower.evaluation.retrieval import evaluate_encoder
from twotower.models.encoder import TwoTowerEncoder
from twotower.training.run import build_model
from twotower.training.throughput import batch_size

ENCODE_SAMPLE = 4096  # passages encoded by each model for the side-by-side speed


def pipeline_throughput() -> dict:
    from hydra.utils import instantiate

    cfg = api.compose_config(["logger=csv"], run_dir="outputs/bench/pipeline")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    model, _ = build_model(cfg, dm)
    dm.model = model
    torch.set_num_threads(1)
    loader = dm.train_dataloader()
    start = time.perf_counter()
    n = sum(batch_size(b) for b in loader)
    cold = time.perf_counter() - start
    # Second epoch: the tokenizer's cache of recurring passages is warm, as in real training.
    start = time.perf_counter()
    n2 = sum(batch_size(b) for b in loader)
    warm = time.perf_counter() - start
    torch.set_num_threads(os.cpu_count() or 1)
    return {"triplets": n, "cold_per_s": n / cold, "warm_per_s": n2 / warm, "dm": dm, "cfg": cfg}


def gru_evaluation(dm) -> dict:
    cfg = api.compose_config(["model=gru", "logger=csv"], run_dir="outputs/bench/gru")
    model, _ = build_model(cfg, dm)
    start = time.perf_counter()
    result = evaluate_encoder(TwoTowerEncoder(model), dm.eval_split)
    return {
        "seconds": time.perf_counter() - start,
        **result.timings,
        "queries": result.num_queries,
        "passages": result.num_passages,
    }


def teacher_seconds(experiment: str) -> float:
    """Time to have the experiment's teacher vectors (0 when cached, or when it has no teacher)."""
    from hydra.utils import instantiate

    cfg = api.compose_config([f"experiment={experiment}", "logger=csv"], run_dir="outputs/bench/teacher")
    if not cfg.data.prepare.get("teacher"):
        return 0.0
    from twotower.data.scoring import TeacherScores

    dm = instantiate(cfg.data)
    train = dm._read(dm.train_split, dm.source)
    start = time.perf_counter()
    TeacherScores.load(cfg.data.prepare.teacher, train, [q for q in train.queries if train.qrels.get(q)])
    return time.perf_counter() - start


def run_experiment(experiment: str) -> dict:
    teacher_s = teacher_seconds(experiment)
    overrides = ["logger=csv"] + ([] if experiment == "default" else [f"experiment={experiment}"])
    start = time.perf_counter()
    result = api.train(overrides, run_dir=Path("outputs/bench") / experiment / time.strftime("%Y%m%d-%H%M%S"))
    return {
        "experiment": experiment,
        "train_s": time.perf_counter() - start,
        "teacher_s": teacher_s,
        "best": result.best,
        "epochs": len(result.metrics["epochs"]),
        "checkpoint": str(result.best_checkpoint),
    }


def encoding_speed(checkpoints: dict[str, str], texts: list[str]) -> dict[str, float]:
    """Passages/s of each checkpoint and of all-MiniLM-L6-v2 on the same texts, in this one process."""
    from twotower.models.checkpoint import load_encoder
    from twotower.models.pretrained import load_minilm

    speeds = {}
    for name, path in checkpoints.items():
        encoder = load_encoder(path)
        encoder.encode_documents(texts[:256])  # warm-up, on texts not timed: tokenizers remember what they saw
        start = time.perf_counter()
        encoder.encode_documents(texts[256:])
        speeds[name] = len(texts[256:]) / (time.perf_counter() - start)
    minilm = load_minilm("cpu")
    minilm.encode(texts[:64], batch_size=64)
    start = time.perf_counter()
    minilm.encode(texts[256:], batch_size=64, normalize_embeddings=True)
    speeds["all-MiniLM-L6-v2"] = len(texts[256:]) / (time.perf_counter() - start)
    return speeds


def table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    out = Table(title=title)
    for col in columns:
        out.add_column(col)
    for row in rows:
        out.add_row(*row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ladder", nargs="*", default=["default"], help="experiments to train (default: default)")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--fresh-cache", action="store_true", help="every cache cold (teacher cost included)")
    args = parser.parse_args()
    if args.fresh_cache:
        os.environ["TWOTOWER_CACHE"] = tempfile.mkdtemp(prefix="twotower-bench-cache-")
    console = Console(width=None if sys.stdout.isatty() else 160)
    report: dict = {}
    if not args.skip_pipeline:
        pipe = pipeline_throughput()
        ev = gru_evaluation(pipe["dm"])
        report.update(pipeline={k: v for k, v in pipe.items() if k not in ("dm", "cfg")}, gru_eval=ev)
        console.print(
            table(
                f"data pipeline and evaluation — {platform.machine()}, {os.cpu_count()} cores",
                ["measure", "target", "measured"],
                [
                    ["tokenised triplets/s (1 core, warm)", ">= 20,000", f"{pipe['warm_per_s']:,.0f}"],
                    ["tokenised triplets/s (1 core, first epoch)", "", f"{pipe['cold_per_s']:,.0f}"],
                    [
                        f"GRU full-corpus eval ({ev['queries']} q, {ev['passages']:,} p), s",
                        "<= 60",
                        f"{ev['seconds']:.1f}",
                    ],
                ],
            )
        )
    runs = [run_experiment(e) for e in args.ladder]
    report["ladder"] = runs
    from twotower.data.msmarco import passage_split

    split = passage_split("dev")
    texts = list(split.collection.values())[:ENCODE_SAMPLE]
    speeds = encoding_speed({r["experiment"]: r["checkpoint"] for r in runs}, texts)
    report["passages_per_s"] = speeds
    rows = [
        [
            r["experiment"],
            f"{r['best']['mrr@10']:.4f}",
            f"{r['best']['recall@10']:.4f}",
            f"{r['best']['ndcg@10']:.4f}",
            f"{r['train_s'] / 60:.1f}",
            f"{r['teacher_s'] / 60:.1f}",
            f"{speeds[r['experiment']]:,.0f}",
            f"{speeds[r['experiment']] / speeds['all-MiniLM-L6-v2']:.0f}x",
        ]
        for r in runs
    ]
    rows.append(
        [
            "all-MiniLM-L6-v2 zero-shot (README)",
            "0.5314",
            "0.852",
            "0.609",
            "",
            "",
            f"{speeds['all-MiniLM-L6-v2']:,.0f}",
            "1x",
        ]
    )
    rows.append(["BM25 (README)", "0.3214", "0.679", "0.407", "", "", "", ""])
    console.print(
        table(
            f"the ladder — dev MRR@10 over {len(split.collection):,} passages, torch {torch.__version__}",
            ["experiment", "MRR@10", "R@10", "nDCG@10", "train min", "teacher min (cold)", "passages/s", "vs MiniLM"],
            rows,
        )
    )
    out = Path("outputs/bench/train.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
