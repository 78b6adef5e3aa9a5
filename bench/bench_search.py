"""Search benchmarks, printed as one Rich table with the issue's targets beside the measurements.

    python bench/bench_search.py            # full: 24k-passage corpus, 1M random vectors, both baselines
    python bench/bench_search.py --quick    # 100k random vectors, fewer queries, MiniLM only if cached

1. The shared corpus (24,372 passages, 480 dev queries): build throughput of flat and HNSW indexes from a
   checkpoint, and end-to-end query latency (encode + search + fetch the passages) one query at a time.
2. Random unit vectors (1,000,000 x 128-d; queries from the same distribution): the approximate index against
   exact search: recall@10, p50/p95 latency a query, build time, memory.
3. BM25 and MiniLM through `twotower.evaluation.baselines` (what `evaluate.py baselines=[...]` runs) against the data
   README's MRR@10. MiniLM's corpus vectors come from the cache (outputs/cache); without it, ~10 minutes.

Latencies are measured on one thread (torch and faiss), so they do not depend on what else the machine runs.
Results are also written to outputs/bench/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README_MRR10 = {"bm25": 0.321, "minilm": 0.531}


def find_checkpoint(explicit: str | None, console) -> Path:
    if explicit:
        return Path(explicit)
    from twotower.models.checkpoint import load_checkpoint, model_from_checkpoint

    found = sorted((ROOT / "outputs").glob("runs/*/checkpoints/best.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in found:
        try:
            model_from_checkpoint(load_checkpoint(path))  # older code's checkpoints may not rebuild any more
            return path
        except Exception as exc:
            console.print(f"[dim]skipping {path}: {exc}[/]")
    console.print("[yellow]no checkpoint under outputs/runs: training a quick one (experiment=quick)[/]")
    from twotower import api

    result = api.train(["experiment=quick", "logger=csv"], run_dir=ROOT / "outputs" / "bench" / "quick-run")
    return result.best_checkpoint


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def bench_corpus(ckpt: Path, quick: bool, milvus: bool, console) -> list[tuple]:
    from twotower.data.msmarco import passage_split
    from twotower.evaluation.metrics import retrieval_metrics
    from twotower.evaluation.retrieval import judged_queries
    from twotower.search import Searcher, build_index

    split = passage_split("dev")
    qids = judged_queries(split)
    out = ROOT / "outputs" / "bench" / "index"
    rows = []
    kinds = [("faiss", "flat"), ("faiss", "hnsw")] + ([("milvus", "hnsw")] if milvus else [])
    for backend, kind in kinds:
        console.print(f"[dim]building {backend} {kind} over {len(split.collection):,} passages with {ckpt}[/]")
        manifest = build_index(ckpt, split.collection, out / f"{backend}-{kind}", kind=kind, backend=backend)
        with Searcher.load(out / f"{backend}-{kind}", device="cpu") as searcher:
            for q in qids[:20]:  # warm caches and lazy initialisation
                searcher.search(split.queries[q], k=10)
            encode, search, total, ranking = [], [], [], {}
            for q in qids[: 100 if quick or backend == "milvus" else None]:
                found = searcher.search(split.queries[q], k=10)
                encode.append(found.encode_ms)
                search.append(found.search_ms)
                total.append(found.total_ms)
                ranking[q] = found.ids
            mrr = retrieval_metrics(ranking, {q: split.qrels[q] for q in ranking})["mrr@10"]
        p50, p95 = percentiles(total)
        label = f"{backend} {kind}"
        rows += [
            (
                "24k corpus",
                f"{label}: build",
                f"{manifest.build['seconds']:.1f} s, {manifest.build['passages_per_second']:,.0f} passages/s",
                "reported",
                None,
            ),
            (
                "24k corpus",
                f"{label}: query p50 / p95 (encode+search+fetch)",
                f"{p50:.2f} / {p95:.2f} ms",
                "p50 <= 5 ms",
                p50 <= 5.0 if backend == "faiss" else None,
            ),
            (
                "24k corpus",
                f"{label}: encode / search p50",
                f"{percentiles(encode)[0]:.2f} / {percentiles(search)[0]:.2f} ms",
                "",
                None,
            ),
            (
                "24k corpus",
                f"{label}: MRR@10 ({len(ranking)} dev queries)",
                f"{mrr:.4f}",
                "exact" if kind == "flat" else "≈ flat" if len(ranking) == len(qids) else "",
                None,
            ),
        ]
    return rows


def random_unit_vectors(n: int, n_queries: int, d: int = 128, seed: int = 0) -> tuple:
    """`n` random unit vectors, `n_queries` more as queries, and each query's exact top 10 (faiss, inner product):
    the synthetic set the ANN rows of bench_search and bench_redis measure recall against."""
    import faiss

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = rng.standard_normal((n_queries, d), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(d)
    exact.add(x)
    _, truth = exact.search(q, 10)
    return x, q, truth


def bench_random(n: int, n_queries: int, console) -> list[tuple]:
    import faiss

    from twotower.search.faiss_backend import FaissBackend
    from twotower.search.kinds import IVFIndex

    d = 128
    console.print(f"[dim]{n:,} random unit vectors, {d}-d; exact ground truth for {n_queries} queries[/]")
    x, q, truth = random_unit_vectors(n, n_queries, d)

    # On i.i.d. random data nothing is "near": a graph or a few lists miss most true neighbours. What meets the
    # target is scanning most lists with 4-bit fast-scan PQ codes and re-ranking 64x10 candidates exactly.
    spec = IVFIndex(nlist=256, nprobe=192, encoding="pq", pq_bytes=32, k_factor=64)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    index = FaissBackend.create(spec, d, n)
    index.train(x)
    index.add(x)
    build_s = time.perf_counter() - started
    index_bytes = faiss.serialize_index(index.index).nbytes
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    del rss_before
    index.configure(spec)
    _, found = index.search(q, 10)
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
    faiss.omp_set_num_threads(1)
    times = []
    for i in range(len(q)):
        t = time.perf_counter()
        index.search(q[i : i + 1], 10)
        times.append((time.perf_counter() - t) * 1e3)
    p50, p95 = percentiles(times)
    name = f"{n / 1e6:g}M x {d}-d" if n >= 1_000_000 else f"{n // 1000}k x {d}-d"
    factory = spec.faiss_factory(n)
    return [
        (
            name,
            f"{factory} nprobe={spec.nprobe} k_factor={spec.k_factor}: recall@10 vs exact",
            f"{recall:.4f}",
            ">= 0.95",
            recall >= 0.95,
        ),
        (name, "search p50 / p95 a query (1 thread)", f"{p50:.2f} / {p95:.2f} ms", "p50 <= 5 ms", p50 <= 5.0),
        (name, "build (train + add)", f"{build_s:.1f} s", "reported", None),
        (
            name,
            "memory: index / process peak RSS",
            f"{index_bytes / 2**20:,.0f} MB / {peak_gb:.2f} GB",
            "reported",
            None,
        ),
    ]


def bench_baselines(quick: bool, console) -> list[tuple]:
    from twotower.data.msmarco import passage_split
    from twotower.evaluation.baselines import DenseBaseline, load_baseline

    split = passage_split("dev")
    rows = []
    for name in ("bm25", "minilm"):
        baseline = load_baseline(name)  # conf/baselines/<name>.yaml, as `evaluate.py baselines=[...]` builds it
        if isinstance(baseline, DenseBaseline) and quick and not baseline.cache_path(split.collection).exists():
            rows.append(("baselines", "minilm MRR@10", "skipped (--quick, corpus not cached)", "0.531 ± 0.005", None))
            continue
        started = time.perf_counter()
        result = baseline.evaluate(split)
        seconds = time.perf_counter() - started
        mrr = result.metrics["mrr@10"]
        rows.append(
            (
                "baselines",
                f"{name} MRR@10 ({result.num_queries} queries, {seconds:.0f} s)",
                f"{mrr:.4f}",
                f"{README_MRR10[name]} ± 0.005",
                abs(mrr - README_MRR10[name]) <= 0.005,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k random vectors, 100 queries, cached MiniLM only")
    parser.add_argument(
        "--ckpt", help="checkpoint for the corpus benchmark (default: newest outputs/runs/*/checkpoints/best.pt)"
    )
    parser.add_argument(
        "--vectors", type=int, help="random vectors for the ANN benchmark (default 1,000,000; 100,000 with --quick)"
    )
    parser.add_argument("--no-milvus", action="store_true", help="leave Milvus Lite out of the corpus benchmark")
    parser.add_argument("--skip", nargs="*", default=[], choices=["corpus", "random", "baselines"])
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import faiss
    import torch
    from rich.console import Console
    from rich.table import Table

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    console = Console(width=max(Console().width, 132))  # a bench log is read later, often from a pipe
    rows: list[tuple] = []
    if "corpus" not in args.skip:
        try:
            import pymilvus  # noqa: F401

            milvus = not args.no_milvus and not args.quick
        except ImportError:
            milvus = False
        rows += bench_corpus(find_checkpoint(args.ckpt, console), args.quick, milvus, console)
    if "random" not in args.skip:
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # building and ground truth may use every core
        rows += bench_random(
            args.vectors or (100_000 if args.quick else 1_000_000), 200 if args.quick else 1000, console
        )
        faiss.omp_set_num_threads(1)
    if "baselines" not in args.skip:
        torch.set_num_threads(os.cpu_count() or 1)
        rows += bench_baselines(args.quick, console)

    table = Table(title="twotower search benchmarks" + (" (--quick)" if args.quick else ""), header_style="bold")
    for column, justify in (
        ("section", "left"),
        ("measure", "left"),
        ("value", "right"),
        ("target", "left"),
        ("", "center"),
    ):
        table.add_column(column, justify=justify, no_wrap=column != "measure")
    previous = None
    for section, measure, value, target, ok in rows:
        mark = "" if ok is None else "[green]✓[/]" if ok else "[red]✗[/]"
        table.add_row(section if section != previous else "", measure, value, target, mark)
        previous = section
    console.print(table)
    out = ROOT / "outputs" / "bench" / "search.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps([dict(zip(("section", "measure", "value", "target", "ok"), r)) for r in rows], indent=2) + "\n"
    )
    console.print(f"[dim]wrote {out}[/]")
    return 0 if all(r[4] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
