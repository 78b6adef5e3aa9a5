"""`twotower index` and `twotower search`: build an index, query it (one query, interactive, a TREC run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from twotower.io.console import console as make_console


def _params(items: list[str] | None) -> dict:
    from twotower.search.kinds import parse_param

    return dict(parse_param(item) for item in items or [])


# -- index ------------------------------------------------------------------------------------------------


def configure_index(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", help="twotower .pt checkpoint whose document tower encodes the passages")
    parser.add_argument(
        "--collection", required=True, help="collection.tsv (pid<TAB>text), an ms_marco .parquet, or .jsonl"
    )
    parser.add_argument(
        "--out", "--index", dest="out", required=True, help="index folder to create, replace, or add to"
    )
    parser.add_argument(
        "--kind", default="flat", choices=["flat", "ivf", "hnsw"], help="index kind (default: flat, exact)"
    )
    parser.add_argument(
        "--config", help="an index config (twotower/conf/index/*.yaml, with _target_) instead of --kind"
    )
    parser.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="override an index setting, e.g. ef_search=256"
    )
    parser.add_argument(
        "--backend", default=None, choices=["faiss", "milvus", "redis"], help="where vectors live (default: faiss)"
    )
    parser.add_argument(
        "--redis-config", help="redis backend: JSON/YAML with url, index_name, prefix, quantization, m, ef_*, dim"
    )
    parser.add_argument(
        "--redis-url", help="redis backend: redis://[:password@]host:port (default: $REDIS_URL, else localhost:6379)"
    )
    parser.add_argument(
        "--milvus-uri",
        help="Milvus server URI (http://host:19530); default: Milvus Lite in OUT/milvus.db. "
        "Credentials in it are used, never written to the manifest",
    )
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--device", help="torch device for encoding (default: cuda when available)")
    parser.add_argument(
        "--add", action="store_true", help="add the collection's documents to the existing index at --out"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out even if it is a folder twotower index did not write (redis: and an index name that exists)",
    )
    parser.add_argument(
        "--skip-existing", action="store_true", help="with --add: skip ids already indexed instead of failing"
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="with --add: skip the SHA-256 check of the index files (sizes are still checked)",
    )


def _index_kind(args: argparse.Namespace):
    from twotower.search.kinds import make_kind

    if args.config:
        from twotower.search.kinds import kind_from_config

        return kind_from_config(args.config, **_params(args.param))
    return make_kind(args.kind, **_params(args.param))


def _redis_settings(args: argparse.Namespace):
    """--backend redis: its config (file, then --redis-url / --overwrite) and kind; --config may be conf/index/redis.yaml."""
    from twotower.search.redis_config import load_redis_config

    given = args.redis_config or (args.config if args.config and _config_backend(args.config) == "redis" else None)
    config, kind = load_redis_config(given, url=args.redis_url, overwrite=args.overwrite or None)
    if kind and not args.config:  # the redis config's m / ef_* set the kind, as --param does
        from twotower.search.kinds import make_kind

        kind = make_kind(kind.pop("kind", "hnsw"), **{**kind, **_params(args.param)})
        return config, kind
    return config, _index_kind(args)


def _config_backend(path: str) -> str | None:
    from omegaconf import OmegaConf

    data = OmegaConf.load(path)
    return data.get("backend") if hasattr(data, "get") else None


def run_index(args: argparse.Namespace) -> int:
    from rich.table import Table

    from twotower.search import Searcher, build_index

    console = make_console()
    if args.add:
        with Searcher.load(
            args.out,
            checkpoint=args.ckpt,
            device=args.device,
            verify=args.verify,
            milvus_uri=args.milvus_uri,
            redis_url=args.redis_url,
        ) as searcher:
            added = searcher.add(
                args.collection, skip_existing=args.skip_existing, batch_size=args.batch_size, progress=True
            )
            console.print(f"added [bold]{added:,}[/] documents to {args.out}: {searcher.describe()}")
        return 0
    if not args.ckpt:
        raise ValueError("--ckpt is required to build an index (only --add reuses the index's own checkpoint)")
    backend = args.backend or (_config_backend(args.config) if args.config else None) or "faiss"
    redis, kind = _redis_settings(args) if backend == "redis" else (None, _index_kind(args))
    manifest = build_index(
        args.ckpt,
        args.collection,
        args.out,
        kind=kind,
        backend=backend,
        milvus_uri=args.milvus_uri,
        batch_size=args.batch_size,
        device=args.device,
        overwrite=args.overwrite,
        redis=redis,
    )
    table = Table(title=f"index built: {args.out}", show_header=False, title_style="bold green")
    table.add_column(style="dim")
    table.add_column()
    table.add_row("index", manifest.describe())
    table.add_row("settings", ", ".join(f"{k}={v}" for k, v in manifest.index.items() if k != "kind") or "—")
    table.add_row("checkpoint", f"{manifest.checkpoint['path']} (sha256 {manifest.checkpoint['sha256'][:12]})")
    table.add_row(
        "build",
        f"{manifest.build['seconds']:.1f} s, {manifest.build['passages_per_second']:,.0f} passages/s "
        f"(encoding {manifest.build['encode_seconds']:.1f} s on {manifest.build['device']})",
    )
    table.add_row("size", f"{sum(manifest.files.values()) / 2**20:,.1f} MB in {len(manifest.files)} files")
    console.print(table)
    return 0


# -- search -----------------------------------------------------------------------------------------------


def configure_search(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="index folder built by `twotower index`")
    parser.add_argument("--ckpt", help="checkpoint (default: the one recorded in the index; must be the same model)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--query", "-q", action="append", help="a query (repeat for several)")
    mode.add_argument("--interactive", "-i", action="store_true", help="type queries, see results, :q to quit")
    mode.add_argument("--queries", help="queries file (qid<TAB>query): batch mode, needs --run-out")
    parser.add_argument("--run-out", help="TREC run file to write in batch mode (qid Q0 docid rank score tag)")
    parser.add_argument("--overwrite", action="store_true", help="replace --run-out even if it is not a TREC run")
    parser.add_argument("--qrels", help="batch mode: also score the run against these TREC qrels")
    parser.add_argument("--tag", default="twotower", help="run tag in the TREC file")
    parser.add_argument("-k", "--k", type=int, default=None, help="results per query (default 10; 100 in batch mode)")
    parser.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="search setting, e.g. ef_search=256, nprobe=64"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON instead of a table")
    parser.add_argument("--device", help="torch device for the query tower (default: cuda when available)")
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the SHA-256 check of the index files on load (huge indexes; sizes are still checked)",
    )
    parser.add_argument(
        "--milvus-uri",
        help="the Milvus URI again, with its credentials, when the index was built with "
        "some (they are not stored in the manifest); or set $MILVUS_TOKEN",
    )
    parser.add_argument("--redis-url", help="the Redis URL again, with its password (not stored); or set $REDIS_URL")


def run_search(args: argparse.Namespace) -> int:

    from twotower.search import Searcher

    console = make_console()
    if args.queries and not args.run_out:
        raise ValueError("--queries writes a TREC run: give the output file with --run-out")
    if args.run_out:
        from twotower.io.output import check_output

        check_output(args.run_out, "search", overwrite=args.overwrite, folder=False, recognise=_trec_run)
    if args.k is not None and args.k < 1:
        raise ValueError(f"-k/--k (results per query) must be at least 1, got {args.k}")
    with Searcher.load(
        args.index,
        checkpoint=args.ckpt,
        device=args.device,
        verify=args.verify,
        milvus_uri=args.milvus_uri,
        redis_url=args.redis_url,
        **_params(args.param),
    ) as searcher:
        if args.interactive:
            from twotower.search.interactive import interactive

            interactive(searcher, k=args.k or 10, console=console)
        elif args.queries:
            _batch(searcher, args, console)
        else:
            # One at a time, so each query's timings are its own.
            results = [searcher.search(query, k=args.k or 10) for query in args.query]
            if args.json:
                print(json.dumps([_results_dict(r) for r in results], indent=2))
            else:
                from twotower.search.render import render_results

                for found in results:
                    console.print(render_results(found, searcher.device, searcher.describe(short=True)))
    return 0


def _trec_run(path: Path) -> bool:
    """A file `--run-out` may replace: empty, or a TREC run (`qid Q0 docid rank score tag` lines)."""
    with open(path, errors="replace") as f:
        first = f.readline().split()
    return not first or (len(first) == 6 and first[1] == "Q0")


def _results_dict(results) -> dict:
    return {
        "query": results.query,
        "truncated": results.truncated,
        "timings_ms": {"encode": results.encode_ms, "search": results.search_ms, "fetch": results.fetch_ms},
        "hits": [
            {"rank": h.rank, "id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata} for h in results
        ],
    }


def _batch(searcher, args: argparse.Namespace, console) -> None:
    from twotower.search.batch import run_of, search_queries_file

    results = search_queries_file(searcher, args.queries, args.run_out, k=args.k or 100, tag=args.tag)
    per_query = sum(r.total_ms for r in results.values()) / max(len(results), 1)
    console.print(
        f"wrote {sum(len(r) for r in results.values()):,} lines for {len(results):,} queries to "
        f"[bold]{args.run_out}[/] ({per_query:.2f} ms a query, batched)"
    )
    if args.qrels:
        from rich.table import Table

        from twotower.data.msmarco import read_qrels
        from twotower.evaluation.metrics import retrieval_metrics

        qrels = read_qrels(args.qrels)
        judged = {q: r for q, r in run_of(results).items() if q in qrels}
        metrics = retrieval_metrics(judged, {q: qrels[q] for q in judged})
        shown = ("mrr@10", "mrr", "recall@1", "recall@10", "recall@100", "ndcg@10", "map")
        table = Table(title=f"{args.run_out} on {len(judged):,} judged queries", header_style="bold")
        for name in shown:
            table.add_column(name, justify="right")
        table.add_row(*(f"{metrics[name]:.4f}" for name in shown))
        console.print(table)
