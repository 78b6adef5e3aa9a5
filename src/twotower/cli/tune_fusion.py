"""`twotower tune-fusion`: choose an index's hybrid fusion (method and BM25 weight) on training queries and
store it in the index's manifest, where `twotower search --mode hybrid` and `Searcher` read it.

    twotower tune-fusion --index outputs/index/msmarco \\
        --queries ../shared/data/msmarco-passage/queries.train.tsv \\
        --qrels ../shared/data/msmarco-passage/qrels.train.tsv --max-queries 2000
"""

from __future__ import annotations

import argparse
from pathlib import Path

from twotower.io.console import console as make_console


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="index folder built by `twotower index` (with BM25)")
    parser.add_argument("--queries", required=True, help="TRAINING queries (qid<TAB>query); never the dev set")
    parser.add_argument("--qrels", required=True, help="their TREC qrels")
    parser.add_argument("--max-queries", type=int, default=2000, help="judged queries to tune on (default 2000)")
    parser.add_argument("--metric", default="mrr@10", help="what to maximise (default mrr@10)")
    parser.add_argument("--depth", type=int, default=100, help="candidates from each retriever (default 100)")
    parser.add_argument("--ckpt", help="checkpoint (default: the one recorded in the index)")
    parser.add_argument("--device", help="torch device for the query tower")
    parser.add_argument("--milvus-uri", help="the Milvus URI with its credentials, if the index needs them")
    parser.add_argument("--dry-run", action="store_true", help="print the grid, do not write the manifest")


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from twotower.data.msmarco import read_qrels, read_queries
    from twotower.evaluation.metrics import METRIC_NAMES
    from twotower.search import Searcher
    from twotower.search.fusion_tuning import save_fusion, tune_fusion

    if args.metric not in METRIC_NAMES:
        raise ValueError(f"--metric must be one of {', '.join(METRIC_NAMES)}, got {args.metric!r}")
    if args.max_queries < 1 or args.depth < 1:
        raise ValueError("--max-queries and --depth must be at least 1")
    console = make_console()
    if any("dev" in Path(p).name.lower() for p in (args.queries, args.qrels)):
        console.print(
            "[bold yellow]warning:[/] these look like dev queries: a weight tuned on the queries it is "
            "reported on overstates the result; tune on training queries"
        )
    queries, qrels = read_queries(args.queries), read_qrels(args.qrels)
    with Searcher.load(args.index, checkpoint=args.ckpt, device=args.device, milvus_uri=args.milvus_uri) as searcher:
        source = {"queries_file": str(Path(args.queries).resolve()), "qrels_file": str(Path(args.qrels).resolve())}
        record = tune_fusion(searcher, queries, qrels, args.metric, args.depth, args.max_queries, True, source)
        build_id = searcher.manifest.build_id
    tuned = record["tuned_on"]
    table = Table(title=f"{args.metric} on {tuned['queries']:,} judged queries of {args.queries}", header_style="bold")
    for column in ("fusion", "weight", args.metric):
        table.add_column(column, justify="right")
    table.add_row("dense alone", "", f"{tuned['dense']:.4f}")
    table.add_row("BM25 alone", "", f"{tuned['bm25']:.4f}")
    for row in tuned["grid"]:
        best = row["method"] == record["method"] and row["weight"] == record["weight"]
        style = "bold green" if best else None
        table.add_row(row["method"], f"{row['weight']:g}", f"{row[args.metric]:.4f}", style=style)
    console.print(table)
    if args.dry_run:
        console.print("dry run: the manifest is unchanged")
        return 0
    save_fusion(args.index, record, build_id)
    console.print(
        f"{args.index}: hybrid search now fuses by [bold]{record['method']}[/] with weight "
        f"[bold]{record['weight']:g}[/] (saved in manifest.json; override with --fusion/--weight)"
    )
    return 0
