"""Scale benchmark (issue 12): synthetic MS MARCO at 100k, 300k and 1M passages, one Rich table per stage.

    python bench/bench_scale.py                       # 100k, 300k, 1M (about 30 minutes on 2 cores)
    python bench/bench_scale.py --sizes 100k --quick  # a smoke run

Stages, each one function `stage_<name>(size, args) -> dict`, each run in its own subprocess so its peak
RSS (`ru_maxrss`) is its own:

* synth: `twotower.data.synth` writes the corpus (30k train queries, 500 dev queries by default);
* corpus: `Corpus.build` streams collection.tsv into the Arrow corpus and its id index;
* bm25_index: `BM25Index.build`, chunked, in bounded memory;
* bm25_mine_1t / bm25_mine_2t: hard-negative mining (top-50 for every train query) with 1 and 2 threads;
* bm25_backends: search alone with bm25s' numpy and numba backends, 1 and 2 threads (the choice: numba);
* bm25_old: today's path (`bm25s.tokenize` + `BM25.index` in memory, numpy per-query retrieve on one thread)
  on a sample of queries, at sizes up to --old-max (beyond that the README's 43 q/s at 300k stands);
* train_epoch: one epoch of the default experiment end to end (prepare, BM25 mining, training, evaluation);
* eval: `evaluate_encoder` over the whole corpus (largest size) with a small static encoder (GloVe mean
  tower, 128-d): peak RSS above the model, against the 1.5 GB target.

Add a stage: write `stage_<name>`, add it to STAGES and to a table in `report`. Results: outputs/bench/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_QPS = 43.0  # the first BM25 mining (`prepare._bm25_pools`, before twotower.retrieval.bm25): 30k queries in 705 s at 300k passages, one thread
TARGET_SPEEDUP = 20
EVAL_TARGET_GB = 1.5


def rss_mb() -> float:
    """Current resident set size (MB), from /proc."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def data_dir(size: int, args) -> Path:
    return Path(args.out) / f"{size}"


def stage_synth(size: int, args) -> dict:
    from twotower.data.synth import SynthConfig, synthesize

    started = time.perf_counter()
    target = synthesize(
        data_dir(size, args), SynthConfig(passages=size, queries=args.queries, dev_queries=args.dev_queries)
    )
    return {"seconds": time.perf_counter() - started, "mb": (target / "collection.tsv").stat().st_size / 2**20}


def stage_corpus(size: int, args) -> dict:
    from twotower.data.corpus import Corpus

    out = data_dir(size, args) / "corpus"
    shutil.rmtree(out, ignore_errors=True)  # timed from scratch, never a cache hit
    started = time.perf_counter()
    corpus = Corpus.build(data_dir(size, args) / "msmarco-passage" / "collection.tsv", out)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "passages_per_s": len(corpus) / seconds,
        "disk_mb": sum(f.stat().st_size for f in out.iterdir()) / 2**20,
    }


def stage_bm25_index(size: int, args) -> dict:
    from twotower.data.corpus import Corpus
    from twotower.retrieval.bm25 import BM25Index

    corpus = Corpus.open(data_dir(size, args) / "corpus")
    out = data_dir(size, args) / "bm25"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    index = BM25Index.build(corpus, out)
    return {
        "seconds": time.perf_counter() - started,
        "postings": index.info["postings"],
        "vocabulary": index.info["vocabulary"],
        "disk_mb": sum(f.stat().st_size for f in out.iterdir()) / 2**20,
    }


def _mine(size: int, args, threads: int) -> dict:
    from twotower.data.corpus import Corpus
    from twotower.data.msmarco import read_queries
    from twotower.retrieval.bm25 import BM25Index, mine

    index = BM25Index(data_dir(size, args) / "bm25", Corpus.open(data_dir(size, args) / "corpus"))
    queries = read_queries(data_dir(size, args) / "msmarco-passage" / "queries.train.tsv")
    warm = dict(list(queries.items())[:64])
    mine(index, warm, 50, n_threads=threads)  # numba compiles on first use (~5 s): not mining throughput
    started = time.perf_counter()
    pools = mine(index, queries, 50, n_threads=threads)
    seconds = time.perf_counter() - started
    return {
        "queries": len(pools),
        "seconds": seconds,
        "qps": len(pools) / seconds,
        "mean_pool": sum(map(len, pools.values())) / len(pools),
    }


def stage_bm25_mine_1t(size: int, args) -> dict:
    return _mine(size, args, 1)


def stage_bm25_mine_2t(size: int, args) -> dict:
    return _mine(size, args, 2)


def stage_bm25_backends(size: int, args) -> dict:
    """Search alone (tokenised queries, top-50) on the same index with bm25s' numpy and numba backends."""
    import bm25s

    from twotower.data.msmarco import read_queries
    from twotower.retrieval.text import bm25_stopwords, bm25_tokenize

    path = data_dir(size, args) / "bm25"
    queries = list(read_queries(data_dir(size, args) / "msmarco-passage" / "queries.train.tsv").values())
    out = {}
    for backend, n in (("numpy", args.old_queries // 2), ("numba", args.old_queries * 2)):
        retriever = bm25s.BM25.load(path, mmap=True, backend=backend)
        ids = [q for q in bm25_tokenize(queries[: n + 8], retriever.vocab_dict, bm25_stopwords("en"), False) if q]
        for threads in (1, 2):
            retriever.retrieve(ids[:8], k=50, show_progress=False, n_threads=threads)  # compile / warm up
            started = time.perf_counter()
            retriever.retrieve(ids[8:], k=50, show_progress=False, n_threads=threads)
            out[f"{backend}_{threads}t"] = (len(ids) - 8) / (time.perf_counter() - started)
    return out


def stage_bm25_old(size: int, args) -> dict:
    """The first BM25 mining (`prepare._bm25_pools` before twotower.retrieval.bm25), verbatim in substance: everything tokenised and indexed in memory, one thread."""
    import bm25s

    from twotower.data.msmarco import read_collection, read_queries

    root = data_dir(size, args) / "msmarco-passage"
    collection = read_collection(root / "collection.tsv")
    queries = list(read_queries(root / "queries.train.tsv").values())[: args.old_queries]
    started = time.perf_counter()
    pids = list(collection)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize([collection[p] for p in pids], stopwords="en", show_progress=False), show_progress=False
    )
    index_s = time.perf_counter() - started
    started = time.perf_counter()
    retriever.retrieve(bm25s.tokenize(queries, stopwords="en", show_progress=False), k=50, show_progress=False)
    seconds = time.perf_counter() - started
    return {"index_seconds": index_s, "queries": len(queries), "qps": len(queries) / seconds}


def stage_eval(size: int, args) -> dict:
    from twotower.data.corpus import Corpus
    from twotower.data.msmarco import Split, read_qrels, read_queries
    from twotower.evaluation.retrieval import evaluate_encoder

    root = data_dir(size, args) / "msmarco-passage"
    encoder = static_encoder()
    split = Split(
        read_queries(root / "queries.dev.tsv"),
        read_qrels(root / "qrels.dev.tsv"),
        Corpus.open(data_dir(size, args) / "corpus"),
    )
    base = rss_mb()  # the model, the libraries and the queries: what the evaluation adds is measured above this
    started = time.perf_counter()
    result = evaluate_encoder(encoder, split, k=100, chunk_size=args.chunk)
    return {
        "seconds": time.perf_counter() - started,
        "passages": result.num_passages,
        "queries": result.num_queries,
        "base_mb": base,
        "above_model_mb": peak_mb() - base,
        **result.timings,
        "mrr@10": result.metrics["mrr@10"],
        "recall@100": result.metrics["recall@100"],
    }


def stage_train_epoch(size: int, args) -> dict:
    """One epoch of the default experiment (WordPiece mean tower, InfoNCE, 3 BM25 negatives per query) on the
    synthetic corpus, prepare step and end-of-epoch full-corpus evaluation included: the process's peak RSS."""
    from twotower import api

    started = time.perf_counter()
    run_dir = Path(args.out) / "runs" / f"train-{size}"
    shutil.rmtree(run_dir, ignore_errors=True)
    result = api.train(
        ["logger=csv", "trainer.max_epochs=1", "~callbacks.progress_bar"],
        config={"data": {"dir": str(data_dir(size, args))}},
        run_dir=run_dir,
    )
    return {
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_mb(),
        "mrr@10": result.best.get("mrr@10", 0.0),
        "queries": args.queries,
    }


def static_encoder():
    """A small static encoder: GloVe-initialised mean tower (128-d) over a word vocabulary of the real sample."""
    import functools

    from twotower.data.msmarco import read_collection, read_queries
    from twotower.io.paths import data_dir as shared
    from twotower.models.build import build_two_tower
    from twotower.models.encoder import TwoTowerEncoder
    from twotower.models.static import MeanTower
    from twotower.models.tokenizers import WordTokenizer

    real = shared() / "msmarco-passage"
    texts = [*read_queries(real / "queries.train.tsv").values(), *read_collection(real / "collection.tsv").values()]
    model = build_two_tower(functools.partial(MeanTower, output_dim=128), WordTokenizer.build(texts, glove=True))
    return TwoTowerEncoder(model, "cpu")


STAGES = {name[len("stage_") :]: fn for name, fn in globals().items() if name.startswith("stage_")}


def run_stage(name: str, size: int, args) -> dict:
    """Run one stage in a fresh interpreter; its last stdout line is the JSON result (plus its peak RSS)."""
    cmd = [sys.executable, __file__, "--stage", name, "--size", str(size), *args.passthrough]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"stage {name} at {size:,} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict, console) -> None:
    from rich.table import Table

    def table(title, columns):
        t = Table(title=title, header_style="bold", title_justify="left")
        for c in columns:
            t.add_column(c, justify="right")
        return t

    sizes = sorted({int(s) for s in results})
    t = table(
        "corpus build (Corpus.build: streamed TSV -> Arrow + id index)",
        ["passages", "synth s", "TSV MB", "build s", "passages/s", "peak RSS MB", "disk MB"],
    )
    for s in sizes:
        r, y = results[str(s)].get("corpus", {}), results[str(s)].get("synth", {})
        t.add_row(
            f"{s:,}",
            f"{y.get('seconds', 0):.1f}",
            f"{y.get('mb', 0):,.0f}",
            f"{r.get('seconds', 0):.1f}",
            f"{r.get('passages_per_s', 0):,.0f}",
            f"{r.get('peak_mb', 0):,.0f}",
            f"{r.get('disk_mb', 0):,.0f}",
        )
    console.print(t)
    t = table(
        f"BM25 (twotower.retrieval.bm25): index build and mining top-50; today {BASELINE_QPS:.0f} q/s, target "
        f"{TARGET_SPEEDUP}x = {BASELINE_QPS * TARGET_SPEEDUP:.0f} q/s",
        [
            "passages",
            "index s",
            "index RSS MB",
            "postings",
            "old path q/s",
            "q/s 1 thread",
            "q/s 2 threads",
            f"x {BASELINE_QPS:.0f} q/s",
            "x old path",
            "mine RSS MB",
        ],
    )
    for s in sizes:
        r = results[str(s)]
        old = r.get("bm25_old", {}).get("qps")
        best = max(r.get("bm25_mine_1t", {}).get("qps", 0), r.get("bm25_mine_2t", {}).get("qps", 0))
        t.add_row(
            f"{s:,}",
            f"{r.get('bm25_index', {}).get('seconds', 0):.1f}",
            f"{r.get('bm25_index', {}).get('peak_mb', 0):,.0f}",
            f"{r.get('bm25_index', {}).get('postings', 0):,}",
            f"{old:,.0f}" if old else f"({BASELINE_QPS:.0f})",
            f"{r.get('bm25_mine_1t', {}).get('qps', 0):,.0f}",
            f"{r.get('bm25_mine_2t', {}).get('qps', 0):,.0f}",
            f"{best / BASELINE_QPS:.0f}x",
            f"{best / old:.0f}x" if old else "—",
            f"{r.get('bm25_mine_2t', {}).get('peak_mb', 0):,.0f}",
        )
    console.print(t)
    t = table(
        "BM25 search alone, queries/s (tokenised queries, top-50): which bm25s backend",
        ["passages"] + [f"{name} {n}t" for name in ("numpy", "numba") for n in (1, 2)],
    )
    for s in sizes:
        r = results[str(s)].get("bm25_backends")
        if r:
            t.add_row(f"{s:,}", *(f"{r[f'{key}_{n}t']:,.0f}" for key in ("numpy", "numba") for n in (1, 2)))
    console.print(t)
    t = table(
        f"full-corpus evaluation (evaluate_encoder, static 128-d encoder); target <= {EVAL_TARGET_GB} GB above the model",
        ["passages", "queries", "encode s", "search s", "total s", "model+libs MB", "above model MB", "MRR@10"],
    )
    for s in sizes:
        r = results[str(s)].get("eval")
        if r:
            t.add_row(
                f"{s:,}",
                f"{r['queries']:,}",
                f"{r['encode_passages_s']:.0f}",
                f"{r['search_s']:.1f}",
                f"{r['seconds']:.0f}",
                f"{r['base_mb']:,.0f}",
                f"{r['above_model_mb']:,.0f}",
                f"{r['mrr@10']:.3f}",
            )
    console.print(t)
    t = table(
        "one epoch of the default experiment (prepare, BM25 mining, training, full-corpus evaluation); "
        "target: peak RSS <= 3 GB at 1M passages / 100k queries, RSS(1M) / RSS(100k) <= 2",
        ["passages", "train queries", "wall s", "peak RSS MB", "x smallest", "dev MRR@10"],
    )
    first = None
    for s in sizes:
        r = results[str(s)].get("train_epoch")
        if r:
            first = first or r["peak_mb"]
            t.add_row(
                f"{s:,}",
                f"{r.get('queries', 0):,}",
                f"{r['seconds']:.0f}",
                f"{r['peak_mb']:,.0f}",
                f"{r['peak_mb'] / first:.2f}",
                f"{r['mrr@10']:.3f}",
            )
    console.print(t)


def main() -> None:
    from twotower.data.synth import parse_count

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100k,300k,1M")
    parser.add_argument("--queries", type=parse_count, default=30_000, help="train queries mined (default 30k)")
    parser.add_argument("--dev-queries", type=parse_count, default=500)
    parser.add_argument("--old-max", type=parse_count, default=300_000, help="largest size to run today's path at")
    parser.add_argument("--old-queries", type=int, default=1_000)
    parser.add_argument("--chunk", type=int, default=65_536, help="evaluation chunk (passages)")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "scale"))
    parser.add_argument("--quick", action="store_true", help="3k queries, 200 old-path queries")
    parser.add_argument("--only", help="comma-separated stages to run, e.g. synth,train_epoch")
    parser.add_argument("--stage", choices=sorted(STAGES), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.queries, args.old_queries = min(args.queries, 3_000), 200
    if args.stage:  # a child: run one stage, print its result as the last line
        result = STAGES[args.stage](args.size, args)
        print(json.dumps({**result, "peak_mb": peak_mb()}))
        return
    from twotower.io.console import console as make_console

    console = make_console()
    args.passthrough = [
        f"--queries={args.queries}",
        f"--dev-queries={args.dev_queries}",
        f"--chunk={args.chunk}",
        f"--old-queries={args.old_queries}",
        f"--out={args.out}",
    ]
    sizes = [parse_count(s) for s in args.sizes.split(",")]
    results: dict[str, dict] = {}
    for size in sizes:
        plan = ["synth", "corpus", "bm25_index", "bm25_mine_1t", "bm25_mine_2t", "bm25_backends"]
        plan += ["bm25_old"] if size <= args.old_max else []
        plan += ["eval"] if size == max(sizes) else []
        plan += ["train_epoch"]
        if args.only:
            plan = [name for name in plan if name in args.only.split(",")]
        for name in plan:
            console.print(f"[dim]{size:,} passages: {name}[/]")
            results.setdefault(str(size), {})[name] = run_stage(name, size, args)
    out = ROOT / "outputs" / "bench" / "scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.only and out.exists():  # a partial run updates the stages it ran, keeping the others
        previous = json.loads(out.read_text())
        for size, stages in results.items():
            previous.setdefault(size, {}).update(stages)
        results = previous
    out.write_text(json.dumps(results, indent=2))
    report(results, console)
    console.print(f"[dim]results: {out}[/]")


if __name__ == "__main__":
    main()
