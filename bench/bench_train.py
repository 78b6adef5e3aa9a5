"""Issue-2 targets, measured on this machine; prints a table.

* data pipeline: tokenised triplets per second on one core (num_workers=0, one torch thread);
* full-corpus evaluation of the dev set with a GRU tower (24k passages, 480 queries) on CPU;
* the default experiment (`python train.py` with no overrides): wall time and best MRR@10 on dev.

    python bench/bench_train.py                 # everything (the training run takes ~5 minutes)
    python bench/bench_train.py --skip-train    # pipeline and evaluation only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from rich.console import Console
from rich.table import Table

from twotower import api
from twotower.evaluation.retrieval import evaluate_encoder
from twotower.models.towers import build_two_tower


def pipeline_throughput(overrides: list[str]) -> dict:
    cfg = api.compose_config(overrides + ["logger=csv"], run_dir="outputs/bench/pipeline")
    from hydra.utils import instantiate

    dm = instantiate(cfg.data)
    dm.setup("fit")
    torch.set_num_threads(1)
    loader = dm.train_dataloader()
    start = time.perf_counter()
    n = sum(batch["query"].shape[0] for batch in loader)
    seconds = time.perf_counter() - start
    # Second epoch: the tokenizer's cache of recurring passages is warm, as in real training.
    start = time.perf_counter()
    n2 = sum(batch["query"].shape[0] for batch in loader)
    warm = time.perf_counter() - start
    torch.set_num_threads(os.cpu_count() or 1)
    return {"triplets": n, "cold_per_s": n / seconds, "warm_per_s": n2 / warm, "dm": dm, "cfg": cfg}


def gru_evaluation(dm, cfg) -> dict:
    from hydra.utils import instantiate

    gru = api.compose_config(["model=gru", "logger=csv"], run_dir="outputs/bench/gru")
    model = build_two_tower(instantiate(gru.model.tower), dm.tokenizer.embedding_matrix, idf=dm.tokenizer.idf)
    from twotower.models.encoder import TwoTowerEncoder

    encoder = TwoTowerEncoder(model, dm.tokenizer, cfg.data.query_max_length, cfg.data.doc_max_length)
    start = time.perf_counter()
    result = evaluate_encoder(encoder, dm.eval_split)
    return {"seconds": time.perf_counter() - start, **result.timings, "queries": result.num_queries,
            "passages": result.num_passages}


def default_training() -> dict:
    start = time.perf_counter()
    result = api.train(["logger=csv"], run_dir=Path("outputs/bench/default") / time.strftime("%Y%m%d-%H%M%S"))
    return {"seconds": time.perf_counter() - start, "best": result.best, "epochs": len(result.metrics["epochs"]),
            "run_dir": str(result.run_dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()

    rows = []
    pipe = pipeline_throughput([])
    rows.append(("data pipeline, tokenised triplets/s (1 core, warm)", ">= 20,000", f"{pipe['warm_per_s']:,.0f}",
                 pipe["warm_per_s"] >= 20_000))
    rows.append(("data pipeline, tokenised triplets/s (1 core, first epoch)", "", f"{pipe['cold_per_s']:,.0f}", None))
    ev = gru_evaluation(pipe["dm"], pipe["cfg"])
    rows.append((f"GRU full-corpus eval ({ev['queries']} q, {ev['passages']:,} p), s", "<= 60", f"{ev['seconds']:.1f}",
                 ev["seconds"] <= 60))
    train = None
    if not args.skip_train:
        train = default_training()
        rows.append(("default experiment: wall time, min", "<= 15", f"{train['seconds'] / 60:.1f}", train["seconds"] <= 900))
        rows.append(("default experiment: best dev MRR@10", ">= 0.20 (BM25 0.321)", f"{train['best']['mrr@10']:.4f}",
                     train["best"]["mrr@10"] >= 0.20))
        rows.append(("default experiment: best dev Recall@10 / nDCG@10", "(BM25 0.679 / 0.407)",
                     f"{train['best']['recall@10']:.4f} / {train['best']['ndcg@10']:.4f}", None))

    table = Table(title=f"twotower training bench — {platform.processor() or platform.machine()}, "
                        f"{os.cpu_count()} cores, torch {torch.__version__}")
    for col in ("measure", "target", "measured", "ok"):
        table.add_column(col)
    for name, target, value, ok in rows:
        table.add_row(name, target, value, "" if ok is None else ("[green]yes[/]" if ok else "[red]no[/]"))
    Console(width=None if sys.stdout.isatty() else 140).print(table)
    out = Path("outputs/bench/train.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"pipeline": {k: v for k, v in pipe.items() if k not in ("dm", "cfg")},
                               "gru_eval": ev, "train": train}, indent=2, default=str))


if __name__ == "__main__":
    main()
