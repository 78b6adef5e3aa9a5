"""Read the documents to index from a collection file: MS MARCO `collection.tsv`, a v1.1 parquet, or JSON lines.

* `.tsv`: `pid \\t passage` (`msmarco.read_collection`; duplicate ids are an error);
* `.parquet`: the Hugging Face `ms_marco` v1.1/v2.1 layout (`msmarco.read_v11_parquet`); each passage keeps
  its `url` as metadata;
* `.jsonl`: one `{"id": ..., "text": ..., <any other field>: ...}` a line; the other fields become metadata.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from twotower.data.msmarco import DataFormatError, read_collection, read_v11_parquet
from twotower.io.paths import require
from twotower.search.store import Document


def read_documents(path: str | Path) -> list[Document]:
    path = require(path, "collection")
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix in (".tsv", ".txt"):
        return [Document(pid, text) for pid, text in read_collection(path).items()]
    if suffix == ".parquet":
        return _parquet_documents(path)
    if suffix in (".jsonl", ".json"):
        return _jsonl_documents(path)
    raise DataFormatError(
        f"{path}: unknown collection format {suffix!r}; use .tsv (pid\\tpassage), .parquet (ms_marco) or .jsonl"
    )


def documents_from_mapping(collection: Mapping[str, str]) -> list[Document]:
    return [Document(str(pid), text) for pid, text in collection.items()]


def _parquet_documents(path: Path) -> list[Document]:
    import pyarrow.parquet as pq

    split = read_v11_parquet(path)
    # The reader keys passages by a hash of their text; look the URL up by the same text.
    urls: dict[str, str] = {}
    if "url" in str(pq.read_schema(path).field("passages").type):
        for batch in pq.ParquetFile(path).iter_batches(columns=["passages"], batch_size=4096):
            for passages in batch.column(0).to_pylist():
                for text, url in zip(passages["passage_text"], passages["url"]):
                    if text and url:
                        urls.setdefault(text.strip(), url)
    return [Document(pid, text, {"url": urls[text]} if text in urls else {}) for pid, text in split.collection.items()]


def _jsonl_documents(path: Path) -> list[Document]:
    documents: list[Document] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}, line {lineno}: not JSON ({exc})") from None
            if not isinstance(row, dict) or "id" not in row or "text" not in row:
                raise DataFormatError(f'{path}, line {lineno}: each line needs an "id" and a "text" field')
            doc_id, text = str(row.pop("id")), str(row.pop("text"))
            if not text.strip():
                continue
            if doc_id in seen:
                raise DataFormatError(f"{path}, line {lineno}: duplicate document id {doc_id!r}")
            seen.add(doc_id)
            documents.append(Document(doc_id, text, row))
    return documents
