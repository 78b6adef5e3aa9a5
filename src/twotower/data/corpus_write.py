"""Writing a corpus folder (see `twotower.data.corpus`): the TSV streamed into Arrow, then the sorted id index."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from twotower.io.fingerprint import hashed_open

log = logging.getLogger(__name__)

SCHEMA = pa.schema([("pid", pa.string()), ("text", pa.string())])
"""The columns of `corpus.arrow`, in this order."""


def write_corpus(collection_tsv: Path, out: Path, block_bytes: int, progress: bool) -> dict:
    """Stream the TSV into `out/corpus.arrow` and write the sorted id index; returns counts."""
    with hashed_open(collection_tsv) as fh:  # hashed as it streams by: the fingerprint of what was read
        return _write_corpus(fh, collection_tsv, out, block_bytes, progress)


def _write_corpus(source, collection_tsv: Path, out: Path, block_bytes: int, progress: bool) -> dict:
    from rich.progress import Progress

    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(column_names=["pid", "text"], block_size=block_bytes),
        # MS MARCO text holds stray quotes: quoting must be off or rows merge.
        parse_options=pacsv.ParseOptions(delimiter="\t", quote_char=False),
        convert_options=pacsv.ConvertOptions(column_types={"pid": pa.string(), "text": pa.string()}),
    )
    pid_chunks: list[pa.Array] = []  # ~12 bytes a passage: 100 MB at 8.8M, the one thing kept whole
    rows = skipped = 0
    size = collection_tsv.stat().st_size
    with (
        pa.OSFile(str(out / "corpus.arrow"), "wb") as sink,
        pa.ipc.new_file(sink, SCHEMA) as writer,
        Progress(transient=True, disable=not progress) as bar,
    ):
        task = bar.add_task(f"corpus {collection_tsv.name}", total=size)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise ValueError(
                    f"{collection_tsv}: not a 2-column TSV (pid, text) near passage {rows + skipped + 1}: {exc}"
                ) from None
            text = pc.fill_null(batch.column(1), "")
            keep = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0)
            kept = pa.RecordBatch.from_arrays([batch.column(0), text], schema=SCHEMA).filter(keep)
            skipped += len(batch) - len(kept)
            if len(kept):
                writer.write_batch(kept)
                pid_chunks.append(kept.column(0))
                rows += len(kept)
            bar.advance(task, batch.nbytes)  # about the bytes read: the bar is a guide, not a count
    if skipped:
        log.warning("%s: skipped %d passages with a blank text", collection_tsv, skipped)
    _write_index(pa.chunked_array(pid_chunks, pa.string()), out, collection_tsv)
    return {"rows": rows, "skipped_blank": skipped}


def _write_index(pids: pa.ChunkedArray, out: Path, source: Path) -> None:
    """`keys.npy`: the pids sorted, as fixed-width bytes; `rows.npy`: the row each one came from."""
    order = pc.sort_indices(pids).to_numpy() if len(pids) else np.zeros(0, np.int64)
    ordered = pa.concat_arrays(pids.take(order).chunks) if len(pids) else pa.array([], pa.string())
    offsets = np.frombuffer(ordered.buffers()[1], dtype=np.int32, count=len(ordered) + 1, offset=ordered.offset * 4)
    data = np.frombuffer(ordered.buffers()[2], dtype=np.uint8) if len(ordered) else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    width = max(int(lengths.max(initial=0)), 1)
    keys = np.zeros((len(ordered), width), dtype=np.uint8)
    for j in range(width):  # one vectorised pass per byte position: no Python object per pid
        has = lengths > j
        keys[has, j] = data[offsets[:-1][has] + j]
    keys = keys.view(f"S{width}").reshape(-1)
    if len(keys) > 1:
        same = np.flatnonzero(keys[1:] == keys[:-1])
        if len(same):
            raise ValueError(
                f"{source}: duplicate passage id {ordered[int(same[0])].as_py()!r} ({len(same)} duplicates in all)"
            )
    if len(keys) and lengths.min() == 0:
        raise ValueError(f"{source}: a passage has an empty id (kept passage {int(order[np.argmin(lengths)]) + 1})")
    if np.any(data[offsets[1:][lengths > 0] - 1] == 0):  # numpy's bytes type drops trailing NULs
        raise ValueError(f"{source}: a passage id ends in a NUL byte, which the id index cannot store")
    np.save(out / "keys.npy", keys)
    np.save(out / "rows.npy", order.astype(np.int64))
