"""Issue 20: fine-tuning all-MiniLM-L6-v2 with our recipe against sentence-transformers on the same triplets.

Both sides start from the shipped all-MiniLM-L6-v2 and see the same (query, positive, negatives) rows, the ones
our prepare step wrote to its parquet shards, in the order our loader streams them in epoch 0, with the same
batch size, number of steps, learning rate, warm-up, weight decay and gradient clipping:

* ours: `train.py experiment=minilm_finetune` (through `twotower.api.train`), its start row and its best.pt;
* sentence-transformers: `SentenceTransformer(minilm)` + `MultipleNegativesRankingLoss(scale=1/temperature)`
  trained by its own `fit` loop (`old_fit`: the one that needs no `datasets` package; WarmupLinear schedule,
  AdamW with weight decay off for biases and LayerNorm, `max_grad_norm`).

Every model is scored by our evaluation (`evaluate_encoder`, full corpus, the dev queries): the trained
sentence-transformers backbone is loaded into our transformer tower, so tokenisation, truncation and metrics are
one code path. Sized for a 2-core CPU with `--subsample` (fraction of training queries = one epoch of triplets):

    python bench/bench_finetune.py --subsample 0.1
    python bench/bench_finetune.py --subsample 0.1 --only ours -o model.doc_max_length=256   # an ablation
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from hydra.utils import instantiate
from rich.console import Console
from rich.table import Table

from twotower import api
from twotower.data.datamodule import TripletStream
from twotower.data.dict_corpus import as_corpus
from twotower.evaluation.retrieval import evaluate_encoder
from twotower.models.encoder import TwoTowerEncoder
from twotower.training.run import build_model

SHOWN = ("mrr@10", "recall@10", "ndcg@10")


def overrides(args) -> list[str]:
    return [
        "experiment=minilm_finetune",
        "logger=csv",
        f"data.prepare.subsample={args.subsample}",
        *args.override,
    ]


# Our schedules as sentence-transformers names them (both: linear warm-up, then linear or cosine decay to 0).
ST_SCHEDULES = {"warmup_linear": "WarmupLinear", "warmup_cosine": "WarmupCosine"}

# With --eval rerank our side trains exactly as train.py does; only its own evaluations are off, because the bench scores every
# model (start, ours, sentence-transformers) with one call below. With --eval full the training run's own
# evaluations (the same `evaluate_encoder`, full corpus) give the start row, the last epoch and best.pt.
NO_CALLBACK_EVAL = [
    "callbacks.retrieval_evaluation.at_start=false",
    "callbacks.retrieval_evaluation.every_n_epochs=1000000",
    "callbacks.early_stopping=null",
]


def epoch_rows(cfg, dm) -> list[dict]:
    """The triplet rows in the order our loader yields them in epoch 0 (same shards, seed, shuffle buffer)."""
    stream = TripletStream(dm._files, cfg.data.shuffle_buffer, cfg.data.seed)
    stream.epoch = 0
    return list(stream)


def train_sentence_transformers(cfg, dm, rows: list[dict], steps: int) -> torch.nn.Module:
    """MNRL through sentence-transformers' own fit loop on `rows`; returns its trained Hugging Face backbone."""
    from sentence_transformers import InputExample, SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from torch.utils.data import DataLoader

    from twotower.models.pretrained import minilm_path

    torch.manual_seed(cfg.seed)
    model = SentenceTransformer(str(minilm_path()), device="cpu")
    model.max_seq_length = cfg.model.doc_max_length
    split = dm.train_split_data
    corpus = as_corpus(split.collection)
    examples = [InputExample(texts=[split.queries[r["qid"]], *corpus.texts([r["pid"], *r["neg_pids"]])]) for r in rows]
    loader = DataLoader(examples, batch_size=cfg.data.batch_size, shuffle=False)
    loss = MultipleNegativesRankingLoss(model, scale=1.0 / cfg.loss.temperature)
    model.old_fit(
        train_objectives=[(loader, loss)],
        epochs=1,
        steps_per_epoch=steps,
        scheduler=ST_SCHEDULES[cfg.scheduler._target_.rsplit(".", 1)[-1]] if cfg.scheduler else "ConstantLR",
        warmup_steps=round(steps * cfg.scheduler.warmup_ratio) if cfg.scheduler else 0,
        optimizer_params={"lr": cfg.optim.lr},
        weight_decay=cfg.optim.weight_decay,
        max_grad_norm=cfg.trainer.gradient_clip_val,
        show_progress_bar=False,
    )
    return model[0].auto_model


def evaluate(model, dm, args) -> dict[str, float]:
    """Our evaluation (`evaluate_encoder`): the whole collection (`--eval full`, what training reports) or each
    dev query's BM25 top-20 candidates (`--eval rerank`, 9.5k passages instead of 24k: for a busy CPU)."""
    split = dm.eval_split
    candidates = split.candidates if args.eval == "rerank" else None
    return evaluate_encoder(TwoTowerEncoder(model), split, args.max_queries or None, 100, candidates=candidates).metrics


def with_backbone(cfg, dm, backbone):
    """Our two-tower model around `backbone` (a sentence-transformers model's trained transformer)."""
    model, _ = build_model(cfg, dm)
    model.query_tower.backbone.load_state_dict(backbone.state_dict())
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subsample", type=float, default=0.1, help="fraction of training queries (one epoch)")
    parser.add_argument("--eval", choices=("full", "rerank"), default="full", help="full corpus or BM25 top-20")
    parser.add_argument("--max-queries", type=int, default=0, help="dev queries evaluated (0: all 480)")
    parser.add_argument("--skip", action="append", default=[], choices=("start", "ours", "st"))
    parser.add_argument("-o", "--override", action="append", default=[], help="Hydra override for both sides")
    parser.add_argument("--out", default="outputs/bench/finetune", help="run folders and results JSON land here")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict[str, dict] = {}
    seconds: dict[str, float] = {}

    cfg = api.compose_config(overrides(args), run_dir=out / f"{stamp}-ours")
    dm = instantiate(cfg.data)
    dm.setup("fit")
    rows = epoch_rows(cfg, dm)
    steps = math.ceil(len(rows) / cfg.data.batch_size)
    warmup = cfg.scheduler.warmup_ratio if cfg.scheduler else 0
    setting = f"lr {cfg.optim.lr}, warm-up {warmup}, batch {cfg.data.batch_size}"
    print(f"{len(rows)} triplets: {steps} steps; {setting}; {' '.join(args.override)}", flush=True)

    def record(name: str, model, started: float) -> None:
        results[name] = evaluate(model, dm, args)
        seconds[name] = time.perf_counter() - started
        print(f"{name}: mrr@10 {results[name]['mrr@10']:.4f} ({seconds[name]:.0f}s)", flush=True)

    if args.eval == "full" and "ours" not in args.skip:
        started = time.perf_counter()
        extra = [] if "start" not in args.skip else ["callbacks.retrieval_evaluation.at_start=false"]
        result = api.train(overrides(args) + extra, run_dir=out / f"{stamp}-ours")
        epochs = {e["epoch"]: e for e in result.metrics["epochs"]}  # metrics.json; epoch -1 is the start
        for name, metrics in (
            ("start: all-MiniLM-L6-v2", epochs.get(-1)),
            ("ours: last step", epochs[max(epochs)]),
            (f"ours: best.pt (epoch {result.metrics['best_epoch']})", result.metrics["best"]),
        ):
            if metrics is not None:
                results[name], seconds[name] = metrics, time.perf_counter() - started
    else:
        if "start" not in args.skip:
            record("start: all-MiniLM-L6-v2", build_model(cfg, dm)[0], time.perf_counter())
        if "ours" not in args.skip:
            started = time.perf_counter()
            result = api.train(overrides(args) + NO_CALLBACK_EVAL, run_dir=out / f"{stamp}-ours")
            record("ours: last step", result.module.model, started)
    if "st" not in args.skip:
        started = time.perf_counter()
        record(
            "sentence-transformers MNRL",
            with_backbone(cfg, dm, train_sentence_transformers(cfg, dm, rows, steps)),
            started,
        )

    where = "full corpus" if args.eval == "full" else "BM25 top-20 re-ranked"
    table = Table(title=f"dev ({where}), {len(rows)} triplets = {steps} steps; {setting}")
    table.add_column("model")
    for name in SHOWN:
        table.add_column(name, justify="right")
    table.add_column("seconds", justify="right")
    for name, metrics in results.items():
        table.add_row(name, *(f"{metrics[m]:.4f}" for m in SHOWN), f"{seconds[name]:.0f}")
    Console().print(table)
    summary = {"args": vars(args), "triplets": len(rows), "steps": steps, "results": results, "seconds": seconds}
    (out / f"{stamp}-results.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
