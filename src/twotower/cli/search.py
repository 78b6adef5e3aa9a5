"""`twotower search`: query an index (one query, interactive, a TREC run) in `--mode dense|bm25|hybrid`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from twotower.cli.index import open_index
from twotower.io.console import console as make_console


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
        help="skip the checksum check of the index files on load (huge indexes; sizes are still checked)",
    )
    parser.add_argument(
        "--milvus-uri",
        help="the Milvus URI again, with its credentials, when the index was built with "
        "some (they are not stored in the manifest); or set $MILVUS_TOKEN",
    )
    parser.add_argument("--redis-url", help="the Redis URL again, with its password (not stored); or set $REDIS_URL")


def run_search(args: argparse.Namespace) -> int:

    console = make_console()
    if args.queries and not args.run_out:
        raise ValueError("--queries writes a TREC run: give the output file with --run-out")
    if args.run_out:
        from twotower.io.output import check_output

        check_output(args.run_out, "search", overwrite=args.overwrite, folder=False, recognise=_trec_run)
    if args.k is not None and args.k < 1:
        raise ValueError(f"-k/--k (results per query) must be at least 1, got {args.k}")
    if (args.fusion or args.weight is not None) and args.mode != "hybrid":
        raise ValueError("--fusion and --weight set how --mode hybrid fuses; add --mode hybrid")
    modes = {"mode": args.mode, "fusion": args.fusion, "weight": args.weight}
    with open_index(args, args.index) as searcher:
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


def _trec_run(path: Path) -> bool:
    """A file `--run-out` may replace: empty, or a TREC run (`qid Q0 docid rank score tag` lines)."""
    with open(path, errors="replace") as f:
        first = f.readline().split()
    return not first or (len(first) == 6 and first[1] == "Q0")


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
