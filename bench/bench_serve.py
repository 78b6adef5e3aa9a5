"""Serving benchmark: `twotower serve` over HTTP on the loopback address against the same index in-process.

    python bench/bench_serve.py                     # 8 clients x 500 requests each way
    python bench/bench_serve.py --ckpt outputs/runs/<run>/checkpoints/best.pt --clients 8 --requests 500

The model is the default one (`model=mean`: the static MeanTower with token weights over all-MiniLM-L6-v2's
WordPiece vocabulary and 384-d input embeddings, 384-d output), untrained unless `--ckpt` names a trained
checkpoint: serving speed depends on the architecture, not on the weights. The index is a faiss flat index of
the shared collection (24,372 passages), built here into outputs/bench/serve/. Queries are the dev queries, k=10.

1. HTTP: `twotower serve --threads 1` in its own process; N client threads, each with its own keep-alive
   `httpx.Client`, send `GET /search?q=...&k=10` (latency measured at the client: request sent to JSON parsed),
   then `GET /healthz`, which searches nothing: the cost of HTTP alone.
2. In-process: the same index loaded once with `Searcher.load`, with the service's locks: one client with
   torch's and faiss's default thread counts, one client with one thread (what the server uses), then N threads
   calling `searcher.search(query, k=10)`.
Results are also written to outputs/bench/serve.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "bench" / "serve"


def default_model_checkpoint(texts: list[str], path: Path) -> Path:
    """The default training config's model (`model=mean`, `tokenizer=wordpiece`), untrained, as a checkpoint."""
    from hydra import compose, initialize_config_dir

    from twotower.conf import CONF_DIR
    from twotower.models.checkpoint import model_fields, save_checkpoint
    from twotower.training.run import build_model

    class Vocabulary:  # what build_model asks of a datamodule: the texts the tokenizer's IDF is counted over
        def vocabulary_texts(self):
            return texts

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = compose(config_name="train")
    model, model_config = build_model(cfg, Vocabulary())
    payload = {**model_fields(model, model_config), "training_stats": {}, "epoch": 0, "eval_results": {}}
    save_checkpoint(path, {**payload, "wandb_run_id": None})
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hammer(clients: int, requests: int, call: Callable[[int, int], bool]) -> dict:
    """`clients` threads each making `requests` calls `call(client, i) -> ok`; latencies in ms and errors."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)

    def worker(c: int) -> None:
        start.wait()
        for i in range(requests):
            t0 = time.perf_counter()
            try:
                ok = call(c, i)
            except Exception:
                ok = False
            latencies[c].append((time.perf_counter() - t0) * 1e3)
            errors[c] += not ok

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    flat = [ms for per in latencies for ms in per]
    return {
        "clients": clients,
        "requests": len(flat),
        "p50_ms": float(np.percentile(flat, 50)),
        "p99_ms": float(np.percentile(flat, 99)),
        "per_second": len(flat) / wall,
        "errors": sum(errors),
        "seconds": wall,
    }


@contextlib.contextmanager
def serving(index: Path, threads: int):
    """`twotower serve` in its own process (access log off); yields its URL once /healthz answers."""
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("TWOTOWER_API_KEY", None)
    command = [sys.executable, "-m", "twotower.cli", "serve", "--index", str(index), "--port", str(port)]
    server = subprocess.Popen([*command, "--threads", str(threads), "--log-level", "warning"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise SystemExit("twotower serve did not come up in 2 minutes")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def bench_http(url: str, path: str, queries: list[str], clients: int, requests: int) -> dict:
    """N keep-alive clients; `/search` requests check they got 10 hits, `/healthz` ones their status only."""
    import httpx

    sessions = [httpx.Client(base_url=url, timeout=30) for _ in range(clients)]

    def call(c: int, i: int) -> bool:
        if path == "/healthz":
            return sessions[c].get(path).status_code == 200
        answer = sessions[c].get(path, params={"q": queries[(c * requests + i) % len(queries)], "k": 10})
        return answer.status_code == 200 and len(answer.json()["hits"]) == 10

    hammer(clients, 20, call)  # warm up: connections, lazy initialisation
    result = hammer(clients, requests, call)
    for session in sessions:
        session.close()
    return result


def bench_in_process(searcher, queries: list[str], clients: int, requests: int) -> dict:
    def call(c: int, i: int) -> bool:
        return len(searcher.search(queries[(c * requests + i) % len(queries)], k=10)) == 10

    hammer(clients, 20, call)
    return hammer(clients, requests, call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", help="a trained checkpoint (default: the default model, untrained)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500, help="requests per client")
    parser.add_argument("--threads", type=int, default=1, help="torch/faiss threads per request (serve --threads)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from twotower.data.msmarco import passage_split
    from twotower.search import Searcher, build_index
    from twotower.serve import SearchService
    from twotower.serve.service import limit_compute_threads

    console = Console(width=150)
    split = passage_split("dev")
    queries = list(split.queries.values())
    OUT.mkdir(parents=True, exist_ok=True)
    if args.ckpt:
        ckpt, model = Path(args.ckpt), f"{args.ckpt}"
    else:
        ckpt = default_model_checkpoint(list(split.collection.values()), OUT / "default-mean-untrained.pt")
        model = "default model=mean (MeanTower, WordPiece/MiniLM 384-d embeddings), untrained"
    console.print(f"[dim]indexing {len(split.collection):,} passages with {ckpt}[/]")
    build_index(ckpt, dict(split.collection.items()), OUT / "index", kind="flat", progress=False)

    index, n, r = OUT / "index", args.clients, args.requests
    rows: dict[str, dict] = {}
    with serving(index, args.threads) as url:
        rows[f"HTTP GET /search · {n} clients"] = bench_http(url, "/search", queries, n, r)
        rows[f"HTTP GET /healthz · {n} clients (HTTP alone)"] = bench_http(url, "/healthz", queries, n, r)
    with Searcher.load(index) as searcher:
        SearchService(searcher)  # the service's locks on the searcher: both paths run the same code
        # One client, first with torch's and faiss's own thread counts, then with the server's (process-wide).
        default_threads = f"{torch.get_num_threads()} torch / {faiss.omp_get_max_threads()} faiss threads"
        rows[f"in-process Searcher · 1 client · {default_threads}"] = bench_in_process(searcher, queries, 1, r)
        limit_compute_threads(args.threads)
        rows[f"in-process Searcher · 1 client · {args.threads} thread"] = bench_in_process(searcher, queries, 1, r)
        rows[f"in-process Searcher · {n} threads"] = bench_in_process(searcher, queries, n, r)
    table = Table(
        title=f"serving {len(split.collection):,} passages (faiss flat, k=10) · {model} · "
        f"{args.threads} torch/faiss thread(s) a request · {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end",
        header_style="bold",
    )
    for name in ("path", "clients x requests", "p50 ms", "p99 ms", "requests/s", "errors"):
        table.add_column(name, justify="left" if name == "path" else "right")
    for name, row in rows.items():
        table.add_row(
            name,
            f"{row['clients']} x {row['requests'] // row['clients']}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['per_second']:,.0f}",
            str(row["errors"]),
        )
    console.print(table)
    summary = {"model": model, "threads": args.threads, "clients": args.clients, "load": os.getloadavg(), "rows": rows}
    (OUT.parent / "serve.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
