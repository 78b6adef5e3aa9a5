"""`twotower index` and `twotower search`: build an index, query it (one query, interactive, a TREC run)."""

from __future__ import annotations

import argparse
import json

from twotower.io.console import console as make_console


def _params(items: list[str] | None) -> dict:
    from twotower.search.kinds import parse_param

    return dict(parse_param(item) for item in items or [])


# -- index ------------------------------------------------------------------------------------------------


def configure_index(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", help="twotower .pt checkpoint whose document tower encodes the passages")
    parser.add_argument("--collection", help="collection.tsv (pid<TAB>text), an ms_marco .parquet, or .jsonl")
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
        "--backend", default="faiss", choices=["faiss", "milvus"], help="where vectors live (default: faiss)"
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
        "--skip-existing", action="store_true", help="with --add: skip ids already indexed instead of failing"
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="with --add: skip the SHA-256 check of the index files (sizes are still checked)",
    )
    parser.add_argument(
        "--no-bm25",
        dest="bm25",
        action="store_false",
        help="do not store a BM25 index of the documents (the index then serves --mode dense only)",
    )
    parser.add_argument(
        "--add-bm25",
        action="store_true",
        help="give the existing index at --out a BM25 index of its documents (or rebuild it); no re-encoding",
    )


def _index_kind(args: argparse.Namespace):
    from twotower.search.kinds import make_kind

    if args.config:
        from twotower.search.kinds import kind_from_config

        return kind_from_config(args.config, **_params(args.param))
    return make_kind(args.kind, **_params(args.param))


def run_index(args: argparse.Namespace) -> int:
    from rich.table import Table

    from twotower.search import Searcher, build_index

    console = make_console()
    if args.add_bm25:
        from twotower.search import add_bm25

        manifest = add_bm25(args.out, verify=args.verify)
        console.print(
            f"{args.out}: BM25 index of {manifest.bm25['count']:,} passages written in "
            f"{manifest.bm25['seconds']:.1f} s; it now serves --mode dense, bm25 and hybrid"
        )
        return 0
    if not args.collection:
        raise ValueError("--collection is required to build an index or --add to one")
    if args.add:
        with Searcher.load(
            args.out, checkpoint=args.ckpt, device=args.device, verify=args.verify, milvus_uri=args.milvus_uri
        ) as searcher:
            added = searcher.add(
                args.collection, skip_existing=args.skip_existing, batch_size=args.batch_size, progress=True
            )
            console.print(f"added [bold]{added:,}[/] documents to {args.out}: {searcher.describe()}")
        return 0
    if not args.ckpt:
        raise ValueError("--ckpt is required to build an index (only --add reuses the index's own checkpoint)")
    manifest = build_index(
        args.ckpt,
        args.collection,
        args.out,
        kind=_index_kind(args),
        backend=args.backend,
        milvus_uri=args.milvus_uri,
        batch_size=args.batch_size,
        device=args.device,
        bm25=args.bm25,
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
    table.add_row(
        "bm25",
        f"{manifest.bm25['count']:,} passages in {manifest.bm25['seconds']:.1f} s"
        if manifest.bm25
        else "— (dense only)",
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
    parser.add_argument("--qrels", help="batch mode: also score the run against these TREC qrels")
    parser.add_argument("--tag", default="twotower", help="run tag in the TREC file")
    parser.add_argument("-k", "--k", type=int, default=None, help="results per query (default 10; 100 in batch mode)")
    parser.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="search setting, e.g. ef_search=256, nprobe=64"
    )
    parser.add_argument(
        "--mode",
        default="dense",
        choices=["dense", "bm25", "hybrid"],
        help="dense (the model), bm25, or hybrid (both fused); default dense",
    )
    parser.add_argument(
        "--fusion",
        choices=["weighted", "rrf"],
        help="with --mode hybrid: override the index's fusion (tune-fusion's choice, else weighted)",
    )
    parser.add_argument(
        "--weight", type=float, help="with --mode hybrid: override the fusion weight of BM25 (a number >= 0)"
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


def run_search(args: argparse.Namespace) -> int:

    from twotower.search import Searcher

    console = make_console()
    if args.queries and not args.run_out:
        raise ValueError("--queries writes a TREC run: give the output file with --run-out")
    if args.k is not None and args.k < 1:
        raise ValueError(f"-k/--k (results per query) must be at least 1, got {args.k}")
    if (args.fusion or args.weight is not None) and args.mode != "hybrid":
        raise ValueError("--fusion and --weight set how --mode hybrid fuses; add --mode hybrid")
    modes = {"mode": args.mode, "fusion": args.fusion, "weight": args.weight}
    with Searcher.load(
        args.index,
        checkpoint=args.ckpt,
        device=args.device,
        verify=args.verify,
        milvus_uri=args.milvus_uri,
        **_params(args.param),
    ) as searcher:
        if args.mode not in searcher.modes:  # refused before any query is read
            from twotower.search.lexical import no_bm25

            raise no_bm25(searcher.folder, args.mode)
        if args.interactive:
            from twotower.search.interactive import interactive

            interactive(searcher, k=args.k or 10, console=console, **modes)
        elif args.queries:
            _batch(searcher, args, console)
        else:
            # One at a time, so each query's timings are its own.
            results = [searcher.search(query, args.k or 10, **modes) for query in args.query]
            if args.json:
                print(json.dumps([_results_dict(r) for r in results], indent=2))
            else:
                from twotower.search.render import render_results

                for found in results:
                    console.print(render_results(found, searcher.device, searcher.describe(short=True)))
    return 0


def _results_dict(results) -> dict:
    return {
        "query": results.query,
        "mode": results.mode,
        "truncated": results.truncated,
        "timings_ms": {
            "encode": results.encode_ms,
            "search": results.search_ms,
            "bm25": results.bm25_ms,
            "fusion": results.fusion_ms,
            "fetch": results.fetch_ms,
        },
        "hits": [
            {"rank": h.rank, "id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata} for h in results
        ],
    }


def _batch(searcher, args: argparse.Namespace, console) -> None:
    from twotower.search.batch import run_of, search_queries_file

    results = search_queries_file(
        searcher,
        args.queries,
        args.run_out,
        k=args.k or 100,
        tag=args.tag,
        mode=args.mode,
        fusion=args.fusion,
        weight=args.weight,
    )
    per_query = sum(r.total_ms for r in results.values()) / max(len(results), 1)
    console.print(
        f"wrote {sum(len(r) for r in results.values()):,} lines for {len(results):,} queries to "
        f"[bold]{args.run_out}[/] ({args.mode}; {per_query:.2f} ms a query, batched)"
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
