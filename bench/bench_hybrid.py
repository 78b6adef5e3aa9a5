"""Dense, BM25 and hybrid search on the shared corpus: dev MRR@10 of each mode's TREC run, and per-query latency.

    python bench/zero_shot_checkpoints.py --out outputs/hybrid          # minilm.pt, static.pt (once)
    twotower index --ckpt outputs/hybrid/static.pt --collection $DATA/collection.tsv --out outputs/hybrid/static-index
    twotower tune-fusion --index outputs/hybrid/static-index --queries $DATA/queries.train.tsv \\
        --qrels $DATA/qrels.train.tsv --max-queries 2000
    python bench/bench_hybrid.py --index static=outputs/hybrid/static-index --index minilm=outputs/hybrid/minilm-index

For each index and mode, `twotower search --queries queries.dev.tsv --run-out RUN --mode M` writes the run (the
CLI itself, in this process) and pytrec_eval scores it against the dev qrels; the dev qrels are used for
nothing else (the fusion weight comes from the index's manifest, tuned on training queries). Latency is then
measured one query at a time after a warm-up, on one thread (torch, faiss and BM25), as a user of `twotower
search --query` sees it: encode + vector search + BM25 + fusion + fetching the passages; p50 and p99 of the
wall-clock time, and of the CPU time the process spent on each query (what a query costs on a core of its own:
on a machine shared by many processes, wall-clock time also holds the waits for a turn on a core).
Results are also written to outputs/bench/hybrid.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODES = ("dense", "bm25", "hybrid")


def score_run(path: Path, qrels: dict) -> dict[str, float]:
    """MRR@10 and Recall@10 of a TREC run file by pytrec_eval (MRR@10 from the top 10 lines of each query)."""
    import pytrec_eval

    run: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        qid, _, doc, rank, score, _ = line.split()
        if int(rank) <= 10:
            run.setdefault(qid, {})[doc] = float(score)
    judged = {q: r for q, r in qrels.items() if any(v > 0 for v in r.values())}
    per_query = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank", "recall_10"}).evaluate(run)
    n = len(judged)  # a judged query with no line in the run scores 0
    return {
        "mrr@10": sum(v["recip_rank"] for v in per_query.values()) / n,
        "recall@10": sum(v["recall_10"] for v in per_query.values()) / n,
    }


def latency(searcher, texts: list[str], mode: str, warmup: int = 20) -> dict[str, float]:
    """p50/p99 of each stage and of the total, one query at a time (ms)."""
    for text in texts[:warmup]:
        searcher.search(text, k=10, mode=mode)
    stages = {"encode": [], "dense": [], "bm25": [], "fusion": [], "fetch": [], "total": [], "cpu": []}
    for text in texts:
        cpu = time.process_time()
        found = searcher.search(text, k=10, mode=mode)
        stages["cpu"].append((time.process_time() - cpu) * 1e3)
        for name, value in (
            ("encode", found.encode_ms),
            ("dense", found.search_ms),
            ("bm25", found.bm25_ms),
            ("fusion", found.fusion_ms),
            ("fetch", found.fetch_ms),
            ("total", found.total_ms),
        ):
            stages[name].append(value)
    out = {}
    for name, values in stages.items():
        out[f"{name}_p50"] = float(np.percentile(values, 50))
        out[f"{name}_p99"] = float(np.percentile(values, 99))
    return out


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", action="append", required=True, metavar="NAME=DIR", help="an index to measure")
    parser.add_argument("--data", default=None, help="msmarco-passage folder (default: $TWOTOWER_DATA/msmarco-passage)")
    parser.add_argument("--latency-queries", type=int, default=200, help="dev queries timed one at a time")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 160)

    import faiss
    import torch

    from twotower.cli import main as twotower
    from twotower.data.msmarco import read_qrels, read_queries
    from twotower.io.paths import data_dir
    from twotower.search import Searcher

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    data = Path(args.data) if args.data else data_dir() / "msmarco-passage"
    queries, qrels = data / "queries.dev.tsv", read_qrels(data / "qrels.dev.tsv")
    texts = list(read_queries(queries).values())[: args.latency_queries]
    out_dir = ROOT / "outputs" / "bench" / "hybrid"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.index:
        name, _, folder = spec.partition("=")
        for mode in MODES:
            run = out_dir / f"{name}-{mode}.run"
            cli = ["search", "--index", folder, "--queries", str(queries), "--run-out", str(run), "--mode", mode]
            if twotower([*cli, "--tag", f"{name}-{mode}"]) != 0:
                raise SystemExit(f"twotower search failed for {name} {mode}")
            metrics = score_run(run, qrels)
            with Searcher.load(folder, device="cpu") as searcher:
                fusion = searcher.fusion() if mode == "hybrid" else {}
                tuned = searcher.manifest.fusion.get("tuned_on", {}) if mode == "hybrid" else {}
                timing = latency(searcher, texts, mode)
            rows.append({"index": name, "mode": mode, "fusion": fusion, "tuned_on": tuned, **metrics, **timing})
            console.print(f"[dim]{name} {mode}: MRR@10 {metrics['mrr@10']:.4f}, p50 {timing['total_p50']:.2f} ms[/]")

    table = Table(
        title=f"dense / BM25 / hybrid search: dev MRR@10 (pytrec_eval on `twotower search` runs, {len(qrels)} "
        f"queries); latency over {len(texts)} queries one at a time, one thread",
        header_style="bold",
    )
    for column in (
        "index",
        "mode",
        "fusion (tuned on)",
        "MRR@10",
        "R@10",
        "p50 ms",
        "p99 ms",
        "CPU p50 / p99 ms",
        "p50 encode/dense/bm25/fusion/fetch",
    ):
        table.add_column(column, justify="right" if column not in ("index", "mode", "fusion (tuned on)") else "left")
    for row in rows:
        fusion = (
            f"{row['fusion']['method']} {row['fusion']['weight']:g}"
            + (f" ({row['tuned_on'].get('queries', 0):,} train q)" if row["tuned_on"] else " (untuned default)")
            if row["fusion"]
            else ""
        )
        parts = "/".join(f"{row[f'{s}_p50']:.2f}" for s in ("encode", "dense", "bm25", "fusion", "fetch"))
        table.add_row(
            row["index"],
            row["mode"],
            fusion,
            f"{row['mrr@10']:.4f}",
            f"{row['recall@10']:.4f}",
            f"{row['total_p50']:.2f}",
            f"{row['total_p99']:.2f}",
            f"{row['cpu_p50']:.2f} / {row['cpu_p99']:.2f}",
            parts,
            style="bold" if row["mode"] == "hybrid" else None,
        )
    console.print(table)
    (ROOT / "outputs" / "bench" / "hybrid.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
