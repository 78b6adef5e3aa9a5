"""Issue-4 GPU figures: training throughput of the GRU experiment with bf16, the share of time the GPU waits
on data, and full-corpus evaluation time with faiss on the GPU. Runs on CPU too (then it says so).

    python bench/bench_gpu.py                      # on a GPU machine: trainer=gpu (bf16-mixed)
    python bench/bench_gpu.py --steps 30 --cpu     # a CPU dry run of the same measurement
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from hydra.utils import instantiate
from rich.table import Table

from twotower import api
from twotower.evaluation.retrieval import evaluate_encoder
from twotower.io.console import console
from twotower.models.module import TwoTowerModule
from twotower.retrieval.exact import gpu_available
from twotower.training.run import build_model
from twotower.training.throughput import Throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--num-workers", type=int, default=4)
    parser.add_argument("--cpu", action="store_true", help="measure on the CPU (no bf16)")
    args = parser.parse_args()
    on_gpu = torch.cuda.is_available() and not args.cpu
    trainer_cfg = "gpu" if on_gpu else "cpu"
    cfg = api.compose_config(
        [
            f"trainer={trainer_cfg}",
            "experiment=gru_contrastive",
            "logger=csv",
            f"data.num_workers={args.num_workers if on_gpu else 0}",
        ],
        run_dir="outputs/bench/gpu",
    )
    dm = instantiate(cfg.data)
    dm.setup("fit")
    model, model_config = build_model(cfg, dm)
    dm.model = model
    module = TwoTowerModule(model, instantiate(cfg.loss), instantiate(cfg.optim), None, model_config)
    meter = Throughput(warmup=10)
    trainer = instantiate(
        cfg.trainer,
        max_steps=args.steps,
        max_epochs=-1,
        callbacks=[meter],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    trainer.fit(module, datamodule=dm)

    encoder = module.to("cuda" if on_gpu else "cpu").encoder()
    start = time.perf_counter()
    result = evaluate_encoder(encoder, dm.eval_split)
    eval_s = time.perf_counter() - start

    device = torch.cuda.get_device_name() if on_gpu else "CPU"
    table = Table(
        title=f"GRU experiment on {device} ({cfg.trainer.precision}), batch {cfg.data.batch_size}, "
        f"{cfg.data.prepare.num_negatives} negatives, {args.steps} steps"
    )
    for col in ("measure", "value"):
        table.add_column(col)
    s = meter.summary
    table.add_row("training throughput, triplets/s", f"{s['triplets_per_s']:,.0f}")
    table.add_row("share of step time waiting on data", f"{s['data_wait_fraction']:.1%}")
    table.add_row(f"full-corpus eval ({result.num_queries} q, {result.num_passages:,} p), s", f"{eval_s:.1f}")
    table.add_row(
        "  of which passage encoding / faiss search, s",
        f"{result.timings['encode_passages_s']:.1f} / {result.timings['search_s']:.3f}"
        f" (faiss on {'GPU' if gpu_available() else 'CPU'})",
    )
    console().print(table)


if __name__ == "__main__":
    main()
