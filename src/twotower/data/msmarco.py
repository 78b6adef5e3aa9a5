"""Readers for the two real MS MARCO layouts.

* passage ranking TSVs: `collection.tsv` (pid, passage), `queries.*.tsv` (qid, query), TREC qrels
  (`qid 0 pid rel`) and runs (`qid pid rank` or TREC 6-column);
* the Hugging Face `ms_marco` v1.1/v2.1 parquet (`query_id`, `query`, `passages.{is_selected, passage_text}`).

Ids are kept as strings, as TREC tools (pytrec_eval, ranx) expect. Blank texts are skipped and counted, so a
caller can report them instead of training on empty strings.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from twotower.io.fingerprint import hashed_open, hashed_text
from twotower.io.paths import data_dir, require

log = logging.getLogger(__name__)

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


class DataFormatError(ValueError):
    """A data file is readable but not in the layout this reader expects."""


def _read_tsv(path: str | Path, names: list[str], what: str) -> pa.Table:
    path = require(path, what)
    try:
        with hashed_open(path) as fh:  # its fingerprint comes with the read (twotower.io.fingerprint)
            table = pacsv.read_csv(
                fh,
                read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
                # MS MARCO text holds stray quotes: quoting must be off or rows merge.
                parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
                convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}),
            )
    except pa.ArrowInvalid as exc:
        raise DataFormatError(
            f"{path}: not a {len(names)}-column TSV ({', '.join(names)}): {_first_bad_line(path, len(names)) or exc}"
        ) from None
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


def _check_unique_ids(table: pa.Table, column: str, path: str | Path, what: str) -> None:
    """A repeated id in a TSV is an error naming the file, the line and the id: which row is right cannot be guessed."""
    ids = table[column]
    if len(ids) == 0 or pc.count_distinct(ids).as_py() == len(ids):
        return
    counts = Counter(ids.to_pylist())
    dup = next(i for i, c in counts.items() if c > 1)
    extra = sum(c - 1 for c in counts.values() if c > 1)
    lines = _lines_with_first_field(Path(path), dup, limit=2)
    where = f", line {lines[1]}" if len(lines) > 1 else ""
    first = f" (first on line {lines[0]})" if len(lines) > 1 else ""
    raise DataFormatError(f"{path}{where}: duplicate {what} id {dup!r}{first}; {extra} duplicate(s) in all")


def _lines_with_first_field(path: Path, value: str, limit: int) -> list[int]:
    # Only on the error path: one pass over the file for the line numbers the user needs.
    found = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.split("\t", 1)[0] == value:
                found.append(lineno)
                if len(found) == limit:
                    break
    return found


def _check_not_empty(rows: dict, total: int, path: str | Path, what: str) -> None:
    if rows:
        return
    if total:
        raise DataFormatError(f"{path}: all {total} {what} rows have a blank text; nothing to read")
    raise DataFormatError(f"{path}: the {what} file is empty (no rows)")


def read_collection(path: str | Path, skipped: Counter | None = None) -> dict[str, str]:
    """`pid \\t passage` -> {pid: passage}. Duplicate pids raise: which text is right cannot be guessed."""
    raw = _read_tsv(path, ["pid", "text"], "collection")
    _check_unique_ids(raw, "pid", path, "passage")
    table = _drop_blank(raw, "text", path, skipped)
    docs = dict(zip(table["pid"].to_pylist(), table["text"].to_pylist()))
    _check_not_empty(docs, len(raw), path, "collection")
    return docs


def read_queries(path: str | Path, skipped: Counter | None = None) -> dict[str, str]:
    """`qid \\t query` -> {qid: query}. A repeated qid is an error naming the file and line."""
    raw = _read_tsv(path, ["qid", "text"], "queries")
    _check_unique_ids(raw, "qid", path, "query")
    table = _drop_blank(raw, "text", path, skipped)
    queries = dict(zip(table["qid"].to_pylist(), table["text"].to_pylist()))
    _check_not_empty(queries, len(raw), path, "queries")
    return queries


def read_qrels(path: str | Path) -> Qrels:
    """TREC qrels `qid 0 pid rel` (tab- or space-separated) -> {qid: {pid: rel}}."""
    path = require(path, "qrels")
    qrels: Qrels = {}
    # The lines are hashed as they are read: the file's fingerprint comes free (twotower.io.fingerprint).
    for lineno, line in enumerate(hashed_text(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4:
            raise DataFormatError(f"{path}, line {lineno}: a qrels row has 4 fields (qid 0 pid rel), got {line!r}")
        qid, _, pid, rel = parts
        judged = qrels.setdefault(qid, {})
        if pid in judged:
            raise DataFormatError(
                f"{path}, line {lineno}: query {qid!r} judges passage {pid!r} a second time "
                f"(first on line {_qrels_line(path, qid, pid)}); keep one row per (qid, pid)"
            )
        try:
            judged[pid] = int(rel)
        except ValueError:
            raise DataFormatError(f"{path}, line {lineno}: relevance {rel!r} is not an integer") from None
    if not qrels:
        raise DataFormatError(f"{path}: the qrels file is empty (no `qid 0 pid rel` rows); nothing can be scored")
    return qrels


def _qrels_line(path: Path, qid: str, pid: str) -> int:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if len(parts) == 4 and parts[0] == qid and parts[2] == pid:
                return lineno
    return 0


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


@dataclass
class Split:
    """Queries, their judgements, and the corpus they are retrieved from."""

    queries: dict[str, str]
    qrels: Qrels
    collection: Mapping[str, str]  # a {pid: text} dict, or a memory-mapped `data.corpus.Corpus`
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
    sub = (
        {passages_type.field(i).name for i in range(passages_type.num_fields)}
        if pa.types.is_struct(passages_type)
        else set()
    )
    for col in ("is_selected", "passage_text"):
        if col not in sub:
            raise DataFormatError(f"{path}: column 'passages.{col}' is missing (passages has: {sorted(sub)})")
    columns = ["query", "passages"] + (["query_id"] if "query_id" in schema.names else [])
    split = Split({}, {}, {})
    for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=4096):
        rows = batch.to_pylist()
        for row in rows:
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


def passage_split(name: str, root: str | Path | None = None, collection=None) -> Split:
    """`train` or `dev` of the passage-ranking TSVs under `root` (default: $TWOTOWER_DATA/msmarco-passage).

    The collection is an id-addressed, memory-mapped `data.corpus.Corpus` built once from `collection.tsv`
    (cached, reused while the file is unchanged), never a dict of the whole collection; it reads like a
    read-only {pid: text} mapping. Both splits share it: pass the one already opened.
    """
    from twotower.data.corpus import Corpus

    # The root is a data folder wherever it lies (a configured `data.dir`): a missing one names the setting.
    root = require(Path(root) if root else data_dir() / "msmarco-passage", "MS MARCO passage folder", True)
    skipped: Counter = Counter()
    if collection is None:
        collection = Corpus.build(root / "collection.tsv")
        if collection.info.get("skipped_blank"):
            skipped["collection.tsv"] += collection.info["skipped_blank"]
    split = Split(
        queries=read_queries(root / f"queries.{name}.tsv", skipped),
        qrels=read_qrels(root / f"qrels.{name}.tsv"),
        collection=collection,
        skipped=skipped,
    )
    run_path = root / f"run.{name}.bm25top20.tsv"
    if run_path.exists():
        split.candidates = {q: list(d) for q, d in read_run(run_path).items()}
    return split
