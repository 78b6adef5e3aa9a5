"""The id-addressed corpus: streamed build, memory-mapped lookups, crash-safe cache, and its dict twin."""

import logging

import numpy as np
import pyarrow as pa
import pytest

from twotower.data import corpus_write as corpus_module
from twotower.data.corpus import DONE, Corpus
from twotower.data.dict_corpus import DictCorpus, as_corpus
from twotower.data.msmarco import read_collection
from twotower.io.paths import cache_dir

ROWS = [
    ("7", 'He said "hello and left'),  # a stray quote: quoting must be off
    ("3", "Passage three, with ünïcode and a tab-free body."),
    ("12", "   "),  # blank: skipped and counted
    ("doc-x", "String ids work too."),
    ("100", "The last passage."),
]


@pytest.fixture
def tsv(tmp_path):
    path = tmp_path / "collection.tsv"
    path.write_text("".join(f"{p}\t{t}\n" for p, t in ROWS), encoding="utf-8")
    return path


def test_build_streams_the_tsv_and_answers_every_lookup(tsv, tmp_path):
    corpus = Corpus.build(tsv, tmp_path / "corpus", block_bytes=64)  # tiny blocks: many record batches

    kept = [(p, t) for p, t in ROWS if t.strip()]
    assert len(corpus) == 4 and corpus.info["skipped_blank"] == 1
    assert [corpus.pid(i) for i in range(4)] == [p for p, _ in kept]
    assert corpus.row("doc-x") == 2 and corpus.rows(["100", "7"]).tolist() == [3, 0]
    assert corpus.texts(["100", "7", "3"]) == [kept[3][1], kept[0][1], kept[1][1]]  # any order
    assert corpus.text_at([2, 0]) == [kept[2][1], kept[0][1]]
    assert corpus.pids_at(np.array([3, 1])) == ["100", "3"]
    assert "7" in corpus and "12" not in corpus and "1" not in corpus and 7 not in corpus
    assert "1000" not in corpus  # longer than any stored id: must not match a truncated "100"
    assert corpus.find(["3", "nope", "100"]).tolist() == [1, -1, 3]
    assert isinstance(corpus.pids, pa.ChunkedArray) and corpus.pids.to_pylist() == [p for p, _ in kept]
    batches = list(corpus.iter_batches(3))
    assert [len(p) for p, _ in batches] == [3, 1] and sum((t for _, t in batches), []) == [t for _, t in kept]
    assert corpus.fingerprint.count(":") == 2


def test_a_missing_pid_raises_key_error_naming_it(tsv, tmp_path):
    corpus = Corpus.build(tsv, tmp_path / "corpus")
    with pytest.raises(KeyError, match="'nope'"):
        corpus.row("nope")
    with pytest.raises(KeyError, match="'gone'.*2 missing"):
        corpus.texts(["7", "gone", "away"])
    with pytest.raises(IndexError, match="row 9 out of range"):
        corpus.pid(9)


def test_duplicate_pids_are_refused_naming_the_pid(tmp_path):
    path = tmp_path / "dup.tsv"
    path.write_text("1\ta\n2\tb\n1\tc\n")
    with pytest.raises(ValueError, match=r"dup.tsv: duplicate passage id '1'"):
        Corpus.build(path, tmp_path / "corpus")
    assert not (tmp_path / "corpus").exists()


def test_default_location_is_the_cache_keyed_by_fingerprint_and_reuse_is_logged(tsv, caplog):
    first = Corpus.build(tsv)
    assert first.path.parent == cache_dir() / "corpus" and (first.path / DONE).exists()
    with caplog.at_level(logging.INFO, logger="twotower.data.corpus"):
        again = Corpus.build(tsv)
    assert again.path == first.path and "reusing the corpus" in caplog.text

    tsv.write_text(tsv.read_text() + "200\tA new passage.\n")  # another version of the file: another key
    assert Corpus.build(tsv).path != first.path


def test_a_killed_build_never_looks_complete(tsv, tmp_path, monkeypatch):
    out = tmp_path / "corpus"

    def die(*args):
        raise KeyboardInterrupt  # as if killed mid-write

    monkeypatch.setattr(corpus_module, "_write_index", die)
    with pytest.raises(KeyboardInterrupt):
        Corpus.build(tsv, out)
    assert not out.exists() and not list(tmp_path.glob(".corpus.*"))
    with pytest.raises(FileNotFoundError, match="no finished corpus"):
        Corpus.open(out)
    monkeypatch.undo()
    assert len(Corpus.build(tsv, out)) == 4


def test_a_dead_builders_leftovers_are_cleaned(tsv, tmp_path):
    stale = tmp_path / ".corpus.999999999.tmp"  # no such process
    stale.mkdir()
    Corpus.build(tsv, tmp_path / "corpus")
    assert not stale.exists()


def test_the_real_collection_matches_the_dict_reader(msmarco_dir, tmp_path):
    path = msmarco_dir / "msmarco-passage" / "collection.tsv"
    corpus = Corpus.build(path, tmp_path / "corpus", block_bytes=1 << 20)
    expected = read_collection(path)

    assert len(corpus) == len(expected) == 24_372
    assert corpus.pids.to_pylist() == list(expected)
    sample = list(expected)[::997]
    assert corpus.texts(sample[::-1]) == [expected[p] for p in sample[::-1]]
    reopened = Corpus.open(corpus.path)
    assert reopened.texts(sample) == [expected[p] for p in sample] and reopened.fingerprint == corpus.fingerprint


def test_dict_corpus_offers_the_same_api():
    mapping = {p: t for p, t in ROWS if t.strip()}
    corpus = as_corpus(mapping)

    assert isinstance(corpus, DictCorpus) and as_corpus(corpus) is corpus
    assert len(corpus) == 4 and corpus.pid(2) == "doc-x" and corpus.row("100") == 3
    assert corpus.texts(["100", "7"]) == [mapping["100"], mapping["7"]]
    assert corpus.text_at([1]) == [mapping["3"]] and corpus.pids_at([0, 3]) == ["7", "100"]
    assert corpus.rows(["3"]).tolist() == [1] and corpus.find(["x", "7"]).tolist() == [-1, 0]
    assert "7" in corpus and "nope" not in corpus and corpus.pids.to_pylist() == list(mapping)
    assert [p for p, _ in corpus.iter_batches(3)] == [["7", "3", "doc-x"], ["100"]]
    with pytest.raises(KeyError, match="'nope'"):
        corpus.row("nope")
    assert DictCorpus(dict(reversed(list(mapping.items())))).fingerprint != corpus.fingerprint  # rows differ
    with pytest.raises(TypeError, match="got list"):
        as_corpus([1, 2])
