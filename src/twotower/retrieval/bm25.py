"""The one BM25 home: an index per corpus built in bounded memory, cached, memory-mapped, searched in threads.

Settings are Lucene BM25 (k1=1.5, b=0.75) with bm25s' English stop-words and tokeniser (lower-cased
`\\b\\w\\w+\\b`, no stemming): the baseline the data README measured (MRR@10 0.321 on the dev set).

Why not `bm25s.BM25.index`: it needs every tokenised passage in memory at once (a list of lists of Python
ints: tens of GB at 8.8M passages). `bm25_write` writes the same arrays (bit for bit) a chunk at a time, in
bm25s' own file layout, so `bm25s.BM25.load(path, mmap=True)` reads them. Search is bm25s' numba backend:
~50x its numpy one (which the prepare step used before: 76 q/s at 300k passages), threads without the GIL; ~3,300
queries/s at 300k and ~1,100 at 1M passages on one thread (bench/bench_scale.py). A postings-only numba
kernel was tried and measured no faster (MS MARCO queries touch ~18% of the corpus), so bm25s' stays.
Without numba installed, the numpy backend is used.

    index = bm25_index(corpus)                  # built once under <cache>/bm25/<key>, then reused
    pids, scores = index.search(["cooking an egg"], k=10, n_threads=2)
    mine_shard(index, queries, k=50, shard=(0, 2), out_dir=d)   # process 0 of 2; process 1: shard=(1, 2)
    pools = merge_shards(d)                     # {qid: [pid, ...]}; or mine(...) in one process
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from twotower.io.atomic import DONE, building
from twotower.io.checksum import ChecksumError, folder_checksums, log_rebuild, verify_or_record
from twotower.io.paths import cache_dir
from twotower.retrieval.bm25_write import write_index
from twotower.retrieval.corpus_like import CorpusLike
from twotower.retrieval.text import bm25_stopwords, bm25_tokenize

log = logging.getLogger(__name__)

SETTINGS = {"method": "lucene", "k1": 1.5, "b": 0.75, "stopwords": "en"}
FORMAT = 1


class BM25Index:
    """A finished index folder plus the corpus whose rows it scores."""

    def __init__(self, path: str | Path, corpus: CorpusLike) -> None:
        import bm25s

        self.path = Path(path)
        if not (self.path / DONE).exists():
            raise FileNotFoundError(
                f"{self.path} holds no finished BM25 index (no {DONE}); build it with BM25Index.build"
            )
        # Every index file is checked against its checksum once per process (an older index gets them now).
        self.info = verify_or_record(self.path, DONE, json.loads((self.path / DONE).read_text()), "BM25 index file")
        if self.info["corpus"] != corpus.fingerprint:
            raise ValueError(f"{self.path} indexes corpus {self.info['corpus']}, not {corpus.fingerprint}: rebuild it")
        self.corpus = corpus
        self.backend = "numba" if _has_numba() else "numpy"
        self.retriever = bm25s.BM25.load(self.path, mmap=True, backend=self.backend)
        self._stop = bm25_stopwords(self.info["settings"]["stopwords"])

    @classmethod
    def build(
        cls, corpus: CorpusLike, out_dir: str | Path | None = None, chunk_size: int = 25_000, progress: bool = False
    ) -> BM25Index:
        """Index `corpus` (or reuse the index already built for it) under `out_dir`, default the cache."""
        out = Path(out_dir) if out_dir else default_path(corpus)
        if (out / DONE).exists():
            if json.loads((out / DONE).read_text()).get("corpus") == corpus.fingerprint:
                try:
                    index = cls(out, corpus)
                    log.info("reusing the BM25 index at %s (%d passages)", out, len(corpus))
                    return index
                except ChecksumError as exc:  # a cache: rebuilt, with one log line
                    log_rebuild(exc, "BM25 index")
            else:
                log.info("%s indexes another corpus: rebuilding", out)
            shutil.rmtree(out)
        started = time.perf_counter()
        with building(out) as tmp:
            stats = write_index(corpus, tmp, SETTINGS, bm25_stopwords(SETTINGS["stopwords"]), chunk_size, progress)
            stats["seconds"] = time.perf_counter() - started
            info = {"corpus": corpus.fingerprint, "settings": SETTINGS, "format": FORMAT, **stats}
            info["checksums"] = folder_checksums(tmp)
            (tmp / DONE).write_text(json.dumps(info, indent=2))
        log.info("built the BM25 index of %d passages at %s in %.1f s", len(corpus), out, time.perf_counter() - started)
        return cls(out, corpus)

    def __len__(self) -> int:
        return int(self.retriever.scores["num_docs"])

    def search_rows(self, queries: Sequence[str], k: int, n_threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(rows int64 (nq, k), scores float32 (nq, k)), best first. A query with no indexed word gets rows
        -1 and scores 0: BM25 has nothing to say about it, and a filler of random passages would look like hits."""
        k = min(k, len(self))
        token_ids = bm25_tokenize(queries, self.retriever.vocab_dict, self._stop, grow=False)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        nonempty = [i for i, ids in enumerate(token_ids) if ids]
        if not (nonempty and k):
            return rows, scores
        found, found_scores = self.retriever.retrieve(
            [token_ids[i] for i in nonempty], k=k, show_progress=False, n_threads=n_threads
        )
        # Best first, ties by lower row, so a ranking never depends on the backend's sort; passages scoring 0
        # (filler when fewer than k share a word) are no hits.
        order = np.lexsort((found, -found_scores))
        found = np.take_along_axis(found, order, axis=1)
        found_scores = np.take_along_axis(found_scores, order, axis=1)
        rows[nonempty] = np.where(found_scores > 0, found, -1)
        scores[nonempty] = np.where(found_scores > 0, found_scores, 0)
        return rows, scores

    def search(self, queries: Sequence[str], k: int, n_threads: int = 1) -> tuple[list[list[str]], list[list[float]]]:
        """Top-`k` pids and scores for each query, best first (passages scoring 0 share no word: left out)."""
        rows, scores = self.search_rows(queries, k, n_threads)
        keep = scores > 0
        flat = self.corpus.pids_at(rows[keep])
        out_pids: list[list[str]] = []
        out_scores: list[list[float]] = []
        at = 0
        for row_keep, row_scores in zip(keep, scores):
            n = int(row_keep.sum())
            out_pids.append(flat[at : at + n])
            out_scores.append(row_scores[row_keep].tolist())
            at += n
        return out_pids, out_scores


def _has_numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def default_path(corpus: CorpusLike) -> Path:
    """`<cache>/bm25/<hash of the corpus fingerprint and the settings>`."""
    key = hashlib.sha1(json.dumps([FORMAT, corpus.fingerprint, SETTINGS], sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "bm25" / key


def bm25_index(corpus: CorpusLike, progress: bool = False) -> BM25Index:
    """The cached index of `corpus`: built the first time, memory-mapped after."""
    return BM25Index.build(corpus, progress=progress)


# -- mining ------------------------------------------------------------------------------------------------


def shard_bounds(n_items: int, shard: tuple[int, int]) -> tuple[int, int]:
    """[start, stop) of shard i of n over `n_items`: contiguous, sizes differing by at most one."""
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    return n_items * i // n, n_items * (i + 1) // n


def mine_batches(
    index: BM25Index,
    queries: Mapping[str, str],
    k: int,
    shard: tuple[int, int] = (0, 1),
    n_threads: int = 1,
    batch_size: int = 8192,
    progress: bool = False,
) -> Iterator[tuple[list[str], list[list[str]]]]:
    """(qids, top-`k` pids of each) for shard i of n of `queries` (in their order), a batch at a time."""
    from rich.progress import Progress

    qids = list(queries)
    start, stop = shard_bounds(len(qids), shard)
    qids = qids[start:stop]
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"BM25 mining (shard {shard[0]} of {shard[1]})", total=len(qids))
        for at in range(0, len(qids), batch_size):
            part = qids[at : at + batch_size]
            yield part, index.search([queries[q] for q in part], k, n_threads)[0]
            bar.advance(task, len(part))


def mine(
    index: BM25Index,
    queries: Mapping[str, str],
    k: int,
    shard: tuple[int, int] = (0, 1),
    n_threads: int = 1,
    batch_size: int = 8192,
    progress: bool = False,
) -> dict[str, list[str]]:
    """{qid: top-`k` pids} for shard i of n of `queries`, in memory (for a few hundred thousand queries)."""
    out: dict[str, list[str]] = {}
    for qids, pids in mine_batches(index, queries, k, shard, n_threads, batch_size, progress):
        out.update(zip(qids, pids))
    return out


def mine_shard(
    index: BM25Index,
    queries: Mapping[str, str],
    k: int,
    shard: tuple[int, int],
    out_dir: str | Path,
    n_threads: int = 1,
    batch_size: int = 8192,
    progress: bool = False,
) -> Path:
    """Mine shard i of n into `out_dir/bm25-<i>-of-<n>.parquet` (qid, pids), a batch per row group, written
    atomically: memory is one batch whatever the shard's size. Returns the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from twotower.io.atomic import atomic_path

    schema = pa.schema([("qid", pa.string()), ("pids", pa.list_(pa.string()))])
    path = Path(out_dir) / f"bm25-{shard[0]:05d}-of-{shard[1]:05d}.parquet"
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for qids, pids in mine_batches(index, queries, k, shard, n_threads, batch_size, progress):
            writer.write_table(
                pa.table([pa.array(qids, pa.string()), pa.array(pids, pa.list_(pa.string()))], schema=schema)
            )
    return path


def merge_shards(out_dir: str | Path) -> dict[str, list[str]]:
    """{qid: pids} from every shard file in `out_dir`; raises naming the shards missing from the set."""
    import pyarrow.parquet as pq

    files = sorted(Path(out_dir).glob("bm25-*-of-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{out_dir}: no BM25 shard files (bm25-<i>-of-<n>.parquet)")
    n = int(files[0].stem.split("-of-")[1])
    found = {int(f.stem.split("-")[1]) for f in files if int(f.stem.split("-of-")[1]) == n}
    missing = sorted(set(range(n)) - found)
    if missing:
        raise FileNotFoundError(f"{out_dir}: BM25 shards {missing} of {n} are missing; mine them before merging")
    out: dict[str, list[str]] = {}
    for i in range(n):
        table = pq.read_table(Path(out_dir) / f"bm25-{i:05d}-of-{n:05d}.parquet")
        out.update(zip(table.column("qid").to_pylist(), table.column("pids").to_pylist()))
    return out
