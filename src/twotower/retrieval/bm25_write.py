"""Building a `twotower.retrieval.bm25` index in two bounded-memory passes.

Pass 1 tokenises the corpus a chunk at a time with one persistent vocabulary and appends each chunk's
(term, doc, tf) triples to scratch files; pass 2 reads them back a chunk at a time, scores them (Lucene BM25,
bm25s' float order: the arrays equal `bm25s.BM25.index`'s bit for bit) and scatters them into the CSC arrays
on disk, remapped every few chunks so written pages leave this process' RSS. Memory: one chunk plus the
vocabulary, never the tokenised corpus (which `bm25s.BM25.index` holds whole: tens of GB at 8.8M passages).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from twotower.retrieval.corpus_like import CorpusLike
from twotower.retrieval.text import bm25_tokenize


def write_index(
    corpus: CorpusLike, out: Path, settings: dict, stop: frozenset[str], chunk_size: int, progress: bool
) -> dict:
    """Pass 1: tokenise chunk by chunk into (term, doc, tf) scratch files; pass 2: score them into CSC arrays."""
    from rich.progress import Progress

    vocab: dict[str, int] = {}
    df = np.zeros(0, dtype=np.int64)
    doc_len = np.zeros(len(corpus), dtype=np.int32)
    nnz = n_docs = 0
    with (
        open(out / "terms.tmp", "wb") as terms_f,
        open(out / "docs.tmp", "wb") as docs_f,
        open(out / "tfs.tmp", "wb") as tfs_f,
        Progress(transient=True, disable=not progress) as bar,
    ):
        task = bar.add_task("BM25 index: tokenising", total=len(corpus))
        for _, texts in corpus.iter_batches(chunk_size):
            ids = bm25_tokenize(texts, vocab, stop, grow=True)
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            flat = np.fromiter((t for doc in ids for t in doc), dtype=np.int64, count=int(lengths.sum()))
            local = np.repeat(np.arange(len(ids), dtype=np.int64), lengths)
            # One sort of (doc, term) keys gives each document's term frequencies, docs ascending.
            pairs, tf = np.unique((local << 32) | flat, return_counts=True)
            term = (pairs & 0xFFFFFFFF).astype(np.int32)
            ((pairs >> 32) + n_docs).astype(np.int32).tofile(docs_f)
            term.tofile(terms_f)
            tf.astype(np.int32).tofile(tfs_f)
            df = np.pad(df, (0, len(vocab) - len(df)))
            df += np.bincount(term, minlength=len(vocab))
            doc_len[n_docs : n_docs + len(ids)] = lengths
            n_docs += len(ids)
            nnz += len(pairs)
            bar.advance(task, len(ids))
    vocab[""] = len(vocab)  # bm25s' empty token: an empty column, so bm25s.BM25.load sees its usual vocabulary
    df = np.append(df, 0)
    _score_csc(out, settings, df, doc_len, nnz, chunk=1 << 20)
    with open(out / "vocab.index.json", "w", encoding="utf-8") as fh:
        json.dump(vocab, fh, ensure_ascii=False)
    import bm25s

    params = {
        "k1": settings["k1"],
        "b": settings["b"],
        "delta": 0.5,
        "method": settings["method"],
        "idf_method": settings["method"],
        "dtype": "float32",
        "int_dtype": "int32",
        "num_docs": n_docs,
        "version": bm25s.__version__,
        "backend": "numpy",
    }
    (out / "params.index.json").write_text(json.dumps(params, indent=4))
    return {"passages": n_docs, "vocabulary": len(vocab), "postings": nnz}


def _score_csc(out: Path, settings: dict, df: np.ndarray, doc_len: np.ndarray, nnz: int, chunk: int) -> None:
    """Score the scratch triples (Lucene BM25, bm25s' float order) into the CSC arrays on disk, columns = terms."""
    n_docs, k1, b = len(doc_len), settings["k1"], settings["b"]
    avg_len = doc_len.mean(dtype=np.float64) if n_docs else 1.0
    # bm25s computes idf in float64, keeps it float32, and multiplies by a float64 tf part: so do we, bit for bit.
    idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5)).astype(np.float32).astype(np.float64)
    indptr = np.zeros(len(df) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    np.save(out / "indptr.csc.index.npy", indptr)
    for name, dtype in (("data", np.float32), ("indices", np.int32)):  # headers and sizes; filled below
        np.lib.format.open_memmap(out / f"{name}.csc.index.npy", mode="w+", dtype=dtype, shape=(nnz,)).flush()
    heads = indptr[:-1].copy()  # next free slot of each term's column
    scratch = {name: open(out / f"{name}.tmp", "rb") for name in ("terms", "docs", "tfs")}
    window = max(1, (16 << 20) // chunk)  # chunks written through one mapping: remapping drops written pages from RSS
    try:
        for first_chunk in range(0, nnz, chunk * window):
            data = np.load(out / "data.csc.index.npy", mmap_mode="r+")
            indices = np.load(out / "indices.csc.index.npy", mmap_mode="r+")
            for start in range(first_chunk, min(nnz, first_chunk + chunk * window), chunk):
                count = min(chunk, nnz - start)
                term, doc, tf = (np.fromfile(scratch[n], dtype=np.int32, count=count) for n in ("terms", "docs", "tfs"))
                norm = k1 * ((1 - b) + b * doc_len[doc] / avg_len)
                tf = tf.astype(np.float64)
                score = (idf[term] * (tf / (norm + tf))).astype(np.float32)
                # Stable by term: within a column, docs stay ascending (chunks arrive in doc order), as CSC wants.
                order = np.argsort(term, kind="stable")
                sorted_term = term[order]
                rank = np.arange(count) - np.searchsorted(sorted_term, sorted_term, side="left")
                slot = heads[sorted_term] + rank
                data[slot] = score[order]
                indices[slot] = doc[order]
                heads += np.bincount(term, minlength=len(heads))
            data.flush()
            indices.flush()
            del data, indices
    finally:
        for fh in scratch.values():
            fh.close()
    for name in ("terms", "docs", "tfs"):
        (out / f"{name}.tmp").unlink()
