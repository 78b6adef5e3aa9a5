"""Readers for the two real MS MARCO layouts.

* passage ranking TSVs: `collection.tsv` (pid, passage), `queries.*.tsv` (qid, query), TREC qrels
  (`qid 0 pid rel`), `triples.*.tsv` (query, positive, negative) and runs (`qid pid rank` or TREC 6-column);
* the Hugging Face `ms_marco` v1.1/v2.1 parquet (`query_id`, `query`, `passages.{is_selected, passage_text}`).

Ids are kept as strings, as TREC tools (pytrec_eval, ranx) expect. Blank texts are skipped and counted, so a
caller can report them instead of training on empty strings.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from twotower.paths import data_dir, require

log = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


class DataFormatError(ValueError):
    """A data file is readable but not in the layout this reader expects."""


def _read_tsv(path: str | Path, names: list[str], what: str) -> pa.Table:
    path = require(path, what)
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
            # MS MARCO text holds stray quotes: quoting must be off or rows merge.
            parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}),
        )
    except pa.ArrowInvalid as exc:
        raise DataFormatError(f"{path}: not a {len(names)}-column TSV ({', '.join(names)}): {_first_bad_line(path, len(names)) or exc}") from None
    return table


def _first_bad_line(path: Path, columns: int) -> str | None:
    # Arrow's own message has no line number; one slow pass over the file finds it for the user.
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            found = line.rstrip("\n").count("\t") + 1
            if found != columns:
                return f"line {lineno} has {found} columns: {line[:120]!r}"
    return None


def _drop_blank(table: pa.Table, text_col: str, path: str | Path, skipped: Counter | None) -> pa.Table:
    text = pc.utf8_trim_whitespace(pc.fill_null(table[text_col], ""))
    keep = pc.greater(pc.utf8_length(text), 0)
    n_blank = len(table) - pc.sum(keep).as_py() if len(table) else 0
    if n_blank:
        log.warning("%s: skipped %d rows with a blank %s", path, n_blank, text_col)
        if skipped is not None:
            skipped[f"{Path(path).name}:blank_{text_col}"] += n_blank
    return table.filter(keep)


def read_collection(path: str | Path, skipped: Counter | None = None) -> dict[str, str]:
    """`pid \\t passage` -> {pid: passage}. Duplicate pids raise: which text is right cannot be guessed."""
    table = _drop_blank(_read_tsv(path, ["pid", "text"], "collection"), "text", path, skipped)
    pids = table["pid"].to_pylist()
    docs = dict(zip(pids, table["text"].to_pylist()))
    if len(docs) != len(pids):
        dup = next(p for p, c in Counter(pids).items() if c > 1)
        raise DataFormatError(f"{path}: duplicate passage id {dup!r} ({len(pids) - len(docs)} duplicates in all)")
    return docs


def read_queries(path: str | Path, skipped: Counter | None = None) -> dict[str, str]:
    """`qid \\t query` -> {qid: query}."""
    table = _drop_blank(_read_tsv(path, ["qid", "text"], "queries"), "text", path, skipped)
    return dict(zip(table["qid"].to_pylist(), table["text"].to_pylist()))


def read_qrels(path: str | Path) -> Qrels:
    """TREC qrels `qid 0 pid rel` (tab- or space-separated) -> {qid: {pid: rel}}."""
    path = require(path, "qrels")
    qrels: Qrels = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise DataFormatError(f"{path}, line {lineno}: a qrels row has 4 fields (qid 0 pid rel), got {line!r}")
            qid, _, pid, rel = parts
            try:
                qrels.setdefault(qid, {})[pid] = int(rel)
            except ValueError:
                raise DataFormatError(f"{path}, line {lineno}: relevance {rel!r} is not an integer") from None
    return qrels


def read_run(path: str | Path) -> Run:
    """A run as `qid pid rank` (MS MARCO) or `qid Q0 pid rank score tag` (TREC) -> {qid: {pid: score}}."""
    path = require(path, "run")
    run: Run = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) == 3:
                qid, pid, rank = parts
                score = -float(rank)
            elif len(parts) == 6:
                qid, _, pid, _, score, _ = parts
                score = float(score)
            else:
                raise DataFormatError(f"{path}, line {lineno}: a run row has 3 or 6 fields, got {len(parts)}")
            run.setdefault(qid, {})[pid] = score
    return run


def read_triples(path: str | Path) -> pa.Table:
    """`query \\t positive \\t negative` -> table(query, positive, negative); rows with a blank field dropped."""
    table = _read_tsv(path, ["query", "positive", "negative"], "triples")
    for col in ("query", "positive", "negative"):
        table = _drop_blank(table, col, path, None)
    return table


@dataclass
class Split:
    """Queries, their judgements, and the corpus they are retrieved from."""

    queries: dict[str, str]
    qrels: Qrels
    collection: dict[str, str]
    candidates: dict[str, list[str]] = field(default_factory=dict)  # per query: judged-or-not candidates
    skipped: Counter = field(default_factory=Counter)


def read_v11_parquet(path: str | Path) -> Split:
    """The HF `ms_marco` v1.1/v2.1 parquet -> a Split.

    Each row holds a query and ~10 candidate passages with `is_selected`; passages have no ids in that
    layout, so a passage's id is a hash of its text (the same text in two rows is one passage).
    """
    path = require(path, "ms_marco parquet")
    schema = pq.read_schema(path)
    for col in ("query", "passages"):
        if col not in schema.names:
            raise DataFormatError(f"{path}: column {col!r} is missing (columns: {', '.join(schema.names)})")
    passages_type = schema.field("passages").type
    sub = {passages_type.field(i).name for i in range(passages_type.num_fields)} if pa.types.is_struct(passages_type) else set()
    for col in ("is_selected", "passage_text"):
        if col not in sub:
            raise DataFormatError(f"{path}: column 'passages.{col}' is missing (passages has: {sorted(sub)})")
    columns = ["query", "passages"] + (["query_id"] if "query_id" in schema.names else [])
    split = Split({}, {}, {})
    for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=4096):
        rows = batch.to_pylist()
        for i, row in enumerate(rows):
            query = (row["query"] or "").strip()
            if not query:
                split.skipped["blank_query"] += 1
                continue
            qid = str(row.get("query_id", len(split.queries)))
            split.queries[qid] = query
            judged: dict[str, int] = {}
            cands: list[str] = []
            for selected, text in zip(row["passages"]["is_selected"], row["passages"]["passage_text"]):
                text = (text or "").strip()
                if not text:
                    split.skipped["blank_passage"] += 1
                    continue
                pid = "h" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
                split.collection[pid] = text
                cands.append(pid)
                if selected:
                    judged[pid] = 1
            split.candidates[qid] = cands
            if judged:
                split.qrels[qid] = judged
    return split


def passage_split(name: str, root: str | Path | None = None, collection: dict[str, str] | None = None) -> Split:
    """`train` or `dev` of the passage-ranking TSVs under `root` (default: $TWOTOWER_DATA/msmarco-passage).

    Both splits share `collection.tsv`: pass the one already read so the corpus is not parsed and held twice.
    """
    root = Path(root) if root else data_dir() / "msmarco-passage"
    skipped: Counter = Counter()
    split = Split(
        queries=read_queries(root / f"queries.{name}.tsv", skipped),
        qrels=read_qrels(root / f"qrels.{name}.tsv"),
        collection=collection if collection is not None else read_collection(root / "collection.tsv", skipped),
        skipped=skipped,
    )
    run_path = root / f"run.{name}.bm25top20.tsv"
    if run_path.exists():
        split.candidates = {q: list(d) for q, d in read_run(run_path).items()}
    return split
