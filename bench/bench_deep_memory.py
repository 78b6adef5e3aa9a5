"""Deep-memory benchmark on the shared MS MARCO subset (issue 5's protocol).

One store holds the whole collection. The adapter is trained through the public API (a background job)
on the first 10,000 `queries.train` with their qrels, then scored with `deep_memory.evaluate` on the
remaining train queries (held-out, same distribution: the Deep Lake setting) and on `queries.dev`.
Bases: all-MiniLM-L6-v2 and GloVe 6B-50d mean-pooled. Also timed: the training job (documents are
already embedded in the store), and `search()` latency with and without deep memory.

    python bench/bench_deep_memory.py [--only minilm|glove] [--epochs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from twotower.data.msmarco import read_collection, read_qrels, read_queries  # noqa: E402
from twotower.deep_memory import GloveMeanEmbedding, MiniLMEmbedding, VectorStore  # noqa: E402
from twotower.deep_memory.embeddings import cached_collection_embeddings  # noqa: E402
from twotower.io.paths import cache_dir, data_dir  # noqa: E402

N_TRAIN = 10_000
REPORTED = ("recall@1", "recall@10", "recall@100", "mrr@10", "hit_rate@10")
console = Console(width=150)


def relevance_of(qids: list[str], qrels: dict) -> list[list[tuple[str, float]]]:
    return [[(pid, 1.0) for pid, rel in qrels[q].items() if rel > 0] for q in qids]


def build_store(name: str, function, docs: dict[str, str], collection: Path) -> VectorStore:
    """The collection in a store under the cache folder; vectors come from the shared .npy cache."""
    path = cache_dir() / "bench_deep_memory" / name
    db = VectorStore(path, embedding_function=function)
    if len(db) == len(docs):
        return db
    shutil.rmtree(path, ignore_errors=True)
    db = VectorStore(path, embedding_function=function)
    vectors = cached_collection_embeddings(function, list(docs.values()), collection, name)
    db.add(list(docs.values()), ids=list(docs), embeddings=vectors)
    return db


def wait_for(db: VectorStore, job_id: str) -> dict:
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("training (background job)", total=None)
        while True:
            row = db.deep_memory.status(job_id, print_table=False)
            job = row["job"]
            p = job.get("progress") or {}
            if p.get("epoch"):
                progress.update(
                    task, total=p["epochs"], completed=p["epoch"], description=f"training: {p.get('stage')}"
                )
            elif p.get("stage"):
                progress.update(task, description=f"training: {p['stage']}")
            if job["status"] not in ("pending", "training"):
                return job
            time.sleep(1.0)


def latency(db: VectorStore, queries: list[str], repeats: int = 3) -> tuple[float, float]:
    """Median seconds per single-query search() call (plain, deep memory).

    Calls alternate between the two modes query by query (the order flipping each pass), so load from
    other processes on a shared machine hits both modes alike instead of biasing one block of timings.
    """
    times: dict[bool, list[float]] = {False: [], True: []}
    for rep in range(repeats):
        for i, q in enumerate(queries):
            order = (False, True) if (i + rep) % 2 == 0 else (True, False)
            for deep in order:
                t = time.perf_counter()
                db.search(embedding_data=[q], k=10, deep_memory=deep)
                times[deep].append(time.perf_counter() - t)
    return statistics.median(times[False]), statistics.median(times[True])


def run_base(name: str, function, args, data) -> dict:
    docs, collection, train_q, train_qrels, dev_q, dev_qrels = data
    db = build_store(name, function, docs, collection)
    qids = list(train_q)
    fit_ids, held_ids = qids[:N_TRAIN], qids[N_TRAIN:]
    overrides = {"epochs": args.epochs} if args.epochs else {}
    console.print(f"[bold]{name}[/]: store {db.path} ({len(db)} documents); training on {len(fit_ids)} queries")
    t0 = time.monotonic()
    job_id = db.deep_memory.train(
        queries=[train_q[q] for q in fit_ids], relevance=relevance_of(fit_ids, train_qrels), **overrides
    )
    submit_s = time.monotonic() - t0
    job = wait_for(db, job_id)
    wall_s = time.monotonic() - t0
    db.deep_memory.status(job_id)
    if job["status"] != "completed":
        raise SystemExit(f"{name}: job {job_id} {job['status']}: {job.get('reason')}")
    res = job["results"]
    out = {
        "job_id": job_id,
        "accepted": job["accepted"],
        "reason": job["reason"],
        "submit_seconds": submit_s,
        "job_wall_seconds": wall_s,
        "fit_seconds": res["train_seconds"],
        "job_seconds": res["job_seconds"],
        "best_epoch": res["best_epoch"],
        "epochs_run": res["epochs_run"],
        "val_gain_z": res["val_gain_z"],
        "splits": {},
    }
    top_k = [1, 3, 5, 10, 50, 100]
    for split, ids, queries, qrels in (
        ("held-out train", held_ids, train_q, train_qrels),
        ("dev", list(dev_q), dev_q, dev_qrels),
    ):
        ids = [q for q in ids if q in qrels]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dev qrels name passages outside the collection: counted as misses
            out["splits"][split] = db.deep_memory.evaluate(
                [queries[q] for q in ids], relevance_of(ids, qrels), top_k=top_k, job_id=job_id
            )
    # Latency: the same model either way (forced if the guard rejected it) to time the adapter itself.
    db.deep_memory.set_model(job_id, force=True)
    sample = [dev_q[q] for q in list(dev_q)[:100]]
    db.search(embedding_data=[sample[0]], k=10, deep_memory=True)  # warm-up: model load, caches
    out["latency_plain_s"], out["latency_deep_s"] = latency(db, sample)
    db.deep_memory.set_model(None)
    return out


def render(results: dict) -> None:
    table = Table(title="Deep memory on MS MARCO subset (24,372 passages; trained on first 10,000 train queries)")
    table.add_column("base")
    table.add_column("split")
    table.add_column("search")
    for m in REPORTED:
        table.add_column(m, justify="right")
    for name, r in results.items():
        for split, ev in r["splits"].items():
            base, dm = ev["without model"], ev["with model"]
            table.add_row(name, split, "plain", *[f"{base[m]:.4f}" for m in REPORTED])
            # A rejected model is still scored (so its effect is visible), but search serves plain results.
            served = "deep memory" if r["accepted"] else "model, rejected (served: plain)"
            table.add_row(
                "",
                "",
                served,
                *[f"{dm[m]:.4f} ({(dm[m] - base[m]) / base[m] * 100 if base[m] else 0:+.1f}%)" for m in REPORTED],
                end_section=split == "dev",
            )
    console.print(table)
    timing = Table(title="Cost")
    for col in (
        "base",
        "accepted",
        "val z",
        "epochs (best/run)",
        "fit s",
        "job s",
        "search ms plain",
        "search ms deep",
        "overhead",
    ):
        timing.add_column(col, justify="right")
    for name, r in results.items():
        timing.add_row(
            name,
            str(r["accepted"]),
            f"{r['val_gain_z']:.2f}",
            f"{r['best_epoch']}/{r['epochs_run']}",
            f"{r['fit_seconds']:.1f}",
            f"{r['job_seconds']:.1f}",
            f"{r['latency_plain_s'] * 1e3:.2f}",
            f"{r['latency_deep_s'] * 1e3:.2f}",
            f"{(r['latency_deep_s'] / r['latency_plain_s'] - 1) * 100:+.1f}%",
        )
    console.print(timing)
    for name, r in results.items():
        console.print(f"{name}: {r['reason']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["minilm", "glove"], action="append")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--json", type=Path, default=Path("outputs/bench/deep_memory.json"))
    args = parser.parse_args()
    root = data_dir() / "msmarco-passage"
    collection = root / "collection.tsv"
    data = (
        read_collection(collection),
        collection,
        read_queries(root / "queries.train.tsv"),
        read_qrels(root / "qrels.train.tsv"),
        read_queries(root / "queries.dev.tsv"),
        read_qrels(root / "qrels.dev.tsv"),
    )
    bases = {"minilm": MiniLMEmbedding(), "glove": GloveMeanEmbedding()}
    results = {}
    for name in args.only or ["minilm", "glove"]:
        results[name] = run_base(name, bases[name], args, data)
    render(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"threads": os.environ.get("OMP_NUM_THREADS"), "results": results}, indent=2, default=float)
    )
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
