"""Synthetic MS MARCO: official formats, real-looking text, a findable relevant passage per query, deterministic."""

import re

import numpy as np
import pytest

from twotower.cli import main
from twotower.data.corpus import DONE
from twotower.data.msmarco import passage_split, read_collection, read_qrels, read_queries
from twotower.data.synth import SynthConfig, parse_count, synthesize


@pytest.mark.parametrize(
    "text, expected",
    [
        ("8.8M", 8_800_000),
        ("100k", 100_000),
        ("1M", 1_000_000),
        ("24372", 24_372),
        ("1_000", 1_000),
        (300, 300),
        ("2.5K", 2_500),
    ],
)
def test_parse_count(text, expected):
    assert parse_count(text) == expected


@pytest.mark.parametrize("text", ["lots", "1q", "-5", ""])
def test_parse_count_refuses_what_is_not_a_count(text):
    with pytest.raises(ValueError):
        parse_count(text)


@pytest.fixture(scope="module")
def synthetic(msmarco_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synthesize(
        out, SynthConfig(passages=30_000, queries=600, dev_queries=80, seed=3), source=msmarco_dir / "msmarco-passage"
    )
    return out / "msmarco-passage"


def words(text):
    return set(re.findall(r"\w+", text.lower()))


def test_writes_the_official_layout_that_the_readers_take(synthetic):
    collection = read_collection(synthetic / "collection.tsv")
    assert list(collection) == [str(i) for i in range(30_000)]  # pids 0..N-1, in order, unique
    train, dev = passage_split("train", synthetic.parent / "msmarco-passage"), passage_split("dev", synthetic)
    assert len(train.queries) == 600 and len(dev.queries) == 80 and not set(train.queries) & set(dev.queries)
    relevant = [p for qrels in (train.qrels, dev.qrels) for judged in qrels.values() for p in judged]
    assert len(relevant) == len(set(relevant)) == 680 and all(p in collection for p in relevant)
    assert (synthetic / DONE).exists()


def test_every_query_shares_words_with_its_relevant_passage(synthetic):
    collection = read_collection(synthetic / "collection.tsv")
    for split in ("train", "dev"):
        queries, qrels = read_queries(synthetic / f"queries.{split}.tsv"), read_qrels(synthetic / f"qrels.{split}.tsv")
        for qid, text in queries.items():
            (pid,) = qrels[qid]
            assert words(text) & words(collection[pid]), (qid, text)


def test_text_looks_like_ms_marco(synthetic, msmarco_dir):
    real = list(read_collection(msmarco_dir / "msmarco-passage" / "collection.tsv").values())
    fake = list(read_collection(synthetic / "collection.tsv").values())
    real_len, fake_len = np.mean([len(t.split()) for t in real]), np.mean([len(t.split()) for t in fake])
    assert abs(fake_len - real_len) / real_len < 0.15
    vocabulary = set().union(*(words(t) for t in fake[:24_000]))
    real_vocabulary = set().union(*(words(t) for t in real))
    assert len(vocabulary & real_vocabulary) > 0.5 * len(real_vocabulary)  # the real words, reused
    assert len(vocabulary - real_vocabulary) > 1_000  # and new ones: vocabulary grows with size


def test_deterministic_by_seed_and_reused_when_finished(msmarco_dir, tmp_path):
    source = msmarco_dir / "msmarco-passage"
    config = SynthConfig(passages=2_000, queries=100, dev_queries=20, seed=1)
    a = synthesize(tmp_path / "a", config, source)
    b = synthesize(tmp_path / "b", config, source)
    c = synthesize(tmp_path / "c", SynthConfig(passages=2_000, queries=100, dev_queries=20, seed=2), source)
    for name in ("collection.tsv", "queries.train.tsv", "qrels.dev.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "collection.tsv").read_bytes() != (c / "collection.tsv").read_bytes()

    stamp = (a / "collection.tsv").stat().st_mtime_ns
    synthesize(tmp_path / "a", config, source)
    assert (a / "collection.tsv").stat().st_mtime_ns == stamp

    bigger = SynthConfig(passages=3_000, queries=100, dev_queries=20, seed=1)  # other settings: rewritten
    assert len(read_collection(synthesize(tmp_path / "a", bigger, source) / "collection.tsv")) == 3_000


def test_more_queries_than_passages_is_refused(tmp_path):
    with pytest.raises(ValueError, match="100 train \\+ 20 dev queries need as many relevant passages.*50"):
        synthesize(tmp_path, SynthConfig(passages=50, queries=100, dev_queries=20))


def test_the_cli_writes_a_corpus(msmarco_dir, tmp_path, capsys):
    status = main(
        [
            "synth",
            "--passages",
            "3k",
            "--queries",
            "200",
            "--dev-queries",
            "50",
            "--out",
            str(tmp_path),
            "--source",
            str(msmarco_dir / "msmarco-passage"),
        ]
    )
    assert status == 0 and "3,000 passages" in capsys.readouterr().out
    assert len(read_collection(tmp_path / "msmarco-passage" / "collection.tsv")) == 3_000
    assert main(["synth", "--passages", "lots", "--queries", "1", "--out", str(tmp_path)]) == 1
