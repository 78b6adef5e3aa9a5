"""`evaluate(...)`: score checkpoints and baselines on the same queries and corpus; used by `evaluate.py`."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from twotower.data.msmarco import DataFormatError, Split, passage_split, read_collection, read_qrels, read_queries
from twotower.evaluation.baselines import Baseline, load_baseline
from twotower.evaluation.retrieval import EvalResult, evaluate_encoder
from twotower.evaluation.run_files import save_evaluation, slug
from twotower.evaluation.significance import Comparison, Settings, compare
from twotower.io.atomic import write_json
from twotower.io.console import console as make_console
from twotower.io.paths import data_dir
from twotower.models.checkpoint import load_encoder

log = logging.getLogger(__name__)

TABLE_METRICS = ("mrr@10", "mrr", "map", "recall@1", "recall@10", "recall@100", "ndcg@10", "precision@1")


def load_eval_split(
    dir: str | None = None,
    split: str = "dev",
    collection: str | None = None,
    queries: str | None = None,
    qrels: str | None = None,
) -> Split:
    """The dev split of the passage TSVs, with any of collection/queries/qrels replaced by the files given."""
    root = Path(dir) if dir else data_dir()
    base = root / "msmarco-passage"
    files = {
        "queries": Path(queries or base / f"queries.{split}.tsv"),
        "qrels": Path(qrels or base / f"qrels.{split}.tsv"),
        "collection": Path(collection or base / "collection.tsv"),
    }
    if not (collection or queries or qrels):
        loaded = passage_split(split, base)
    else:
        skipped: Counter = Counter()
        loaded = Split(
            queries=read_queries(files["queries"], skipped),
            qrels=read_qrels(files["qrels"]),
            collection=read_collection(files["collection"], skipped),
            skipped=skipped,
        )
    check_judgements(loaded, **files)
    return loaded


def check_judgements(split: Split, queries: Path, qrels: Path, collection: Path) -> None:
    """Judgements that cannot count would score zero in silence: warn with counts, refuse when none can count.

    A judged passage missing from the collection can never be retrieved (the query's recall is capped below
    1); a judged query missing from the queries file is not evaluated at all.
    """
    relevant = [(q, p) for q, judged in split.qrels.items() for p, rel in judged.items() if rel > 0]
    if not relevant:
        raise DataFormatError(f"{qrels}: no row has a positive relevance; nothing can be scored")
    missing = [(q, p) for q, p in relevant if p not in split.collection]
    if len(missing) == len(relevant):
        raise DataFormatError(
            f"{qrels}: none of its {len(relevant):,} relevant passages is in {collection} (e.g. passage "
            f"{missing[0][1]!r}); are the qrels and the collection from the same dataset?"
        )
    if missing:
        queries_hit = len({q for q, _ in missing})
        log.warning(
            "%s: %d of %d relevant passages (in %d queries) are not in %s; they count as not retrieved",
            qrels,
            len(missing),
            len(relevant),
            queries_hit,
            collection,
        )
    judged = [q for q in split.qrels if q in split.queries]
    if not judged:
        raise DataFormatError(
            f"{qrels}: none of its {len(split.qrels):,} judged queries is in {queries}; "
            "are the qrels and the queries from the same split?"
        )
    if len(judged) < len(split.qrels):
        log.warning(
            "%s: %d of %d judged queries are not in %s; they are not evaluated",
            qrels,
            len(split.qrels) - len(judged),
            len(split.qrels),
            queries,
        )


def checkpoint_list(ckpt: str | Sequence[str] | None, overrides: Sequence[str] = ()) -> list[str]:
    """The checkpoints to evaluate: `ckpt=A`, `ckpt=[A,B]`, or `ckpt=A ckpt=B` (Hydra keeps only the last of
    repeated overrides, so they are read from its override list); a path given twice is refused."""
    repeated = [o.split("=", 1)[1] for o in overrides if o.startswith("ckpt=")]
    if len(repeated) > 1:
        paths = [p.strip() for value in repeated for p in value.strip("[]").split(",") if p.strip()]
    elif ckpt is None or isinstance(ckpt, str):
        paths = [ckpt] if ckpt else []
    else:
        paths = [str(p) for p in ckpt]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise ValueError(f"ckpt lists {', '.join(twice)} more than once; give each checkpoint once")
    return paths


def check_settings(
    ckpt: str | Sequence[str] | None, baselines: Sequence[str] | Mapping, max_queries: int | None, k: int
) -> None:
    """Refuse settings that would score the wrong thing, before any data is read; each error names the setting."""
    if not ckpt and not baselines:
        raise ValueError("nothing to evaluate: give ckpt=PATH (or ckpt=[A,B]) and/or baselines=[bm25,minilm]")
    if max_queries is not None and (
        isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1
    ):
        raise ValueError(
            f"max_queries must be a whole number >= 1, or null for every judged query; got {max_queries!r}"
        )
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (passages retrieved per query) must be a whole number >= 1, got {k!r}")


def evaluate(
    split: Split,
    ckpt: str | Sequence[str] | None = None,
    baselines: Sequence[str] | Mapping[str, Baseline] = (),
    max_queries: int | None = None,
    k: int = 100,
    device: str = "auto",
) -> dict[str, EvalResult]:
    """{name: EvalResult} for each checkpoint (named by its path; `ckpt` is one path or a list) and each
    baseline, on one split. `baselines` names shipped baselines (`["bm25", "minilm"]`) or maps names to built
    ones (`build_baselines`)."""
    check_settings(ckpt, baselines, max_queries, k)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    results: dict[str, EvalResult] = {}
    for path in checkpoint_list(ckpt):
        results[str(path)] = evaluate_encoder(load_encoder(path, device), split, max_queries, k, progress=True)
    built = baselines if isinstance(baselines, Mapping) else {name: load_baseline(name) for name in baselines}
    clash = sorted(set(built) & set(results))
    if clash:
        raise ValueError(f"{clash[0]!r} names both a checkpoint and a baseline; rename the checkpoint file")
    for name, baseline in built.items():
        results[name] = baseline.evaluate(split, max_queries=max_queries, k=k, progress=True)
    return results


def print_table(results: dict[str, EvalResult], console: Console | None = None) -> None:
    # Off a terminal (logs, CI) Rich would squeeze the table to 80 columns.
    console = console or make_console()
    any_result = next(iter(results.values()))
    table = Table(
        title=f"Full-corpus retrieval: {any_result.num_queries} queries, {any_result.num_passages:,} passages"
    )
    table.add_column("model", style="bold cyan")
    for name in TABLE_METRICS:
        table.add_column(name, justify="right")
    best = {m: max(r.metrics[m] for r in results.values()) for m in TABLE_METRICS}
    for name, result in results.items():
        cells = [
            f"[bold green]{result.metrics[m]:.4f}[/]"
            if result.metrics[m] == best[m] and len(results) > 1
            else f"{result.metrics[m]:.4f}"
            for m in TABLE_METRICS
        ]
        table.add_row(display_name(name), *cells)
    console.print(table)


def display_name(name: str) -> str:
    """A checkpoint path shown as `run-folder/file`, a baseline by its name."""
    path = Path(name)
    if path.suffix != ".pt":
        return name
    run = path.parent.parent.name if path.parent.name == "checkpoints" else path.parent.name
    return f"{run}/{path.name}"


def write_metrics(path: str | Path, results: dict[str, EvalResult]) -> Path:
    data = {
        name: {"metrics": r.metrics, "num_queries": r.num_queries, "num_passages": r.num_passages, "timings": r.timings}
        for name, r in results.items()
    }
    return write_json(path, data)


def save_systems(out_dir: str | Path, results: Mapping[str, EvalResult], split: Split) -> dict[str, dict[str, list]]:
    """`<out_dir>/systems/<name>/run.trec` and `per_query.json` for every system; {name: per-query values}."""
    return {
        name: save_evaluation(
            Path(out_dir) / "systems" / slug(display_name(name)), r.ranking, r.scores, split.qrels, slug(name)
        )
        for name, r in results.items()
    }


def compare_systems(
    per_query: Mapping[str, dict[str, list]], compare_to: str | None, settings: Settings
) -> list[Comparison]:
    """Every system against `compare_to` (a baseline's name, a checkpoint path, or its shown `run/file` name;
    None: the first system). Nothing to compare with a single system."""
    names = list(per_query)
    if len(names) < 2:
        return []
    shown = {display_name(n): n for n in names}
    baseline = names[0] if compare_to is None else shown.get(str(compare_to), str(compare_to))
    if baseline not in per_query:
        raise ValueError(
            f"compare_to={compare_to!r} is not one of the systems evaluated: {', '.join(map(display_name, names))}"
        )
    return compare(per_query, baseline, settings)
