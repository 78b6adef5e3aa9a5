"""Input fingerprints cover the whole file (issue 18, section 4).

Before: a fingerprint hashed the first and last MiB of a file with its size and mtime, so a same-size edit in
the middle of a large collection, with its mtime put back (a restore, `rsync -t`, `touch -r`), reused the
corpus and every cache built from the old text.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

N_PASSAGES = 100_000  # ~6 MiB: past the old 4 MiB "hash it all" limit


def _collection(path: Path) -> Path:
    path.write_text(
        "".join(f"{i}\tpassage number {i:07d} about the topic {i % 97:03d} and more words\n" for i in range(N_PASSAGES))
    )
    return path


def _edit_middle_keeping_size_and_mtime(path: Path, old: bytes, new: bytes) -> None:
    assert len(old) == len(new)
    stat = path.stat()
    data = path.read_bytes()
    at = data.index(old, len(data) // 3)
    assert 1 << 20 < at < len(data) - (1 << 20)  # outside the head and tail the old fingerprint hashed
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(new)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_a_same_size_edit_in_the_middle_with_mtime_kept_builds_the_corpus_again(tmp_path):
    from twotower.data.corpus import Corpus

    tsv = _collection(tmp_path / "collection.tsv")
    before = Corpus.build(tsv)
    assert before["50000"] == "passage number 0050000 about the topic 045 and more words"

    _edit_middle_keeping_size_and_mtime(tsv, b"passage number 0050000", b"PASSAGE NUMBER 0050000")
    after = Corpus.build(tsv)
    assert after.path != before.path
    assert after["50000"] == "PASSAGE NUMBER 0050000 about the topic 045 and more words"


def test_a_same_size_qrels_edit_in_the_middle_gives_new_training_inputs(tmp_path):
    from twotower.io.fingerprint import files_fingerprint

    qrels = tmp_path / "qrels.train.tsv"
    qrels.write_text("".join(f"{q}\t0\t{q * 7}\t1\n" for q in range(300_000)))  # ~5 MiB
    before = files_fingerprint([qrels])
    _edit_middle_keeping_size_and_mtime(qrels, b"150000\t0\t1050000\t1", b"150000\t0\t1050001\t1")
    assert files_fingerprint([qrels]) != before


def test_a_file_read_by_a_reader_is_fingerprinted_without_a_second_pass(tmp_path, monkeypatch):
    import builtins

    from twotower.data.msmarco import read_collection, read_qrels
    from twotower.io.fingerprint import file_fingerprint

    tsv = _collection(tmp_path / "collection.tsv")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("".join(f"{q}\t0\t{q}\t1\n" for q in range(1000)))
    read_collection(tsv), read_qrels(qrels)

    real_open = builtins.open

    def no_second_read(file, *args, **kwargs):
        if str(file) in (str(tsv), str(qrels)):
            raise AssertionError(f"{file} was read a second time to fingerprint it")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_second_read)
    assert file_fingerprint(tsv).startswith(f"{tsv.stat().st_size}:")
    assert file_fingerprint(qrels).startswith(f"{qrels.stat().st_size}:")
    os.utime(qrels)  # touched: the remembered fingerprint may be stale, so the file is hashed again
    with pytest.raises(AssertionError, match="a second time"):
        file_fingerprint(qrels)


def test_a_collection_edited_while_its_corpus_is_built_is_not_published(tmp_path, monkeypatch):
    import twotower.data.corpus as corpus_module

    tsv = _collection(tmp_path / "collection.tsv")
    write = corpus_module.write_corpus

    def write_then_someone_edits(collection_tsv, *args, **kwargs):
        info = write(collection_tsv, *args, **kwargs)
        _edit_middle_keeping_size_and_mtime(tsv, b"passage number 0050000", b"PASSAGE NUMBER 0050000")
        return info

    monkeypatch.setattr(corpus_module, "write_corpus", write_then_someone_edits)
    with pytest.raises(ValueError, match="changed while the corpus was built"):
        corpus_module.Corpus.build(tsv, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()
