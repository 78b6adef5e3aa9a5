"""How much can a fine-tune of all-MiniLM-L6-v2 learn from this data? Printed as one Rich table.

    python bench/bench_headroom.py                  # 2,000 training queries, the 480 dev queries
    python bench/bench_headroom.py --train-queries 500
    python bench/bench_headroom.py --model DIR      # any sentence-transformers folder, e.g. `twotower export`ed

1. MiniLM zero-shot on training queries against dev queries. all-MiniLM-L6-v2 was trained on MS MARCO's
   training pairs (among its 1B): if it ranks the training queries far better than the dev ones, our training
   queries teach it little it has not seen.
2. BM25, and the MiniLM + BM25 hybrid (`twotower.evaluation.hybrid`) for several weights. The weight is picked
   on the training queries and only then read on dev; the fused ranking is the strongest teacher available
   offline, so its dev score bounds what distilling it could give.

MiniLM's corpus vectors come from the baseline cache (~10 minutes on a 2-core CPU the first time).
Results are also written to outputs/bench/headroom-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5)


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from twotower.data.msmarco import passage_split
    from twotower.evaluation.baselines import BM25Baseline, DenseBaseline
    from twotower.evaluation.hybrid import fused_rankings
    from twotower.evaluation.metrics import retrieval_metrics
    from twotower.evaluation.retrieval import judged_queries

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-queries", type=int, default=2000)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--model", default="minilm", help="`minilm` or a sentence-transformers model folder")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140)

    dev = passage_split("dev")
    train = passage_split("train", collection=dev.collection)
    minilm, bm25 = DenseBaseline(model=args.model), BM25Baseline()
    name = "MiniLM" if args.model == "minilm" else Path(args.model).name
    pids = sorted(dev.collection)
    results: dict[str, dict[str, float]] = {}
    for part, split, limit in (("train", train, args.train_queries), ("dev", dev, None)):
        qids = judged_queries(split, limit)
        qrels = {q: split.qrels[q] for q in qids}
        dense = minilm.retrieve(split, pids, qids, args.depth, progress=True)
        lexical = bm25.retrieve(split, pids, qids, args.depth, progress=False)
        results[f"bm25/{part}"] = retrieval_metrics(lexical[0], qrels)
        for weight in WEIGHTS:  # one retrieval, fused at every weight
            ranking, _ = fused_rankings(dense, lexical, weight, args.depth)
            results[f"hybrid {weight}/{part}"] = retrieval_metrics(ranking, qrels)
        results[f"n/{part}"] = {"queries": len(qids)}

    best = max(WEIGHTS[1:], key=lambda w: results[f"hybrid {w}/train"]["mrr@10"])
    table = Table(
        title=f"MRR@10 (R@10), {len(pids):,} passages; {results['n/train']['queries']:,} training "
        f"queries, {results['n/dev']['queries']} dev queries"
    )
    for column in ("ranking", "train queries", "dev queries"):
        table.add_column(column)

    def cell(key: str) -> str:
        return f"{results[key]['mrr@10']:.4f} ({results[key]['recall@10']:.3f})"

    table.add_row("BM25", cell("bm25/train"), cell("bm25/dev"))
    for weight in WEIGHTS:
        label = (
            f"{name} alone"
            if weight == 0
            else f"{name} + {weight} x BM25" + (" (picked on train)" if weight == best else "")
        )
        table.add_row(label, cell(f"hybrid {weight}/train"), cell(f"hybrid {weight}/dev"))
    console.print(table)
    out = ROOT / "outputs" / "bench" / f"headroom-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"picked_weight": best, "results": results}, indent=2))


if __name__ == "__main__":
    main()
