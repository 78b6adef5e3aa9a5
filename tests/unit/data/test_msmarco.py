"""Readers for the real MS MARCO layouts, and their errors on bad input."""

from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from twotower.data.msmarco import (
    DataFormatError,
    passage_split,
    read_collection,
    read_qrels,
    read_run,
    read_v11_parquet,
)


def test_passage_dev_split(msmarco_dir):
    dev = passage_split("dev", msmarco_dir / "msmarco-passage")
    assert len(dev.queries) == 480 and len(dev.collection) == 24_372
    assert sum(len(j) for j in dev.qrels.values()) == 480
    assert all(len(c) == 20 for c in dev.candidates.values())  # the BM25 top-20 run


def test_v11_parquet_reader_on_the_real_sample(msmarco_dir):
    split = read_v11_parquet(msmarco_dir / "msmarco-v1.1-sample" / "train-sample.parquet")
    assert len(split.queries) == 200
    table = pq.read_table(msmarco_dir / "msmarco-v1.1-sample" / "train-sample.parquet")
    first = table.slice(0, 1).to_pylist()[0]
    qid = str(first["query_id"])
    assert split.queries[qid] == first["query"].strip()
    selected = [t for s, t in zip(first["passages"]["is_selected"], first["passages"]["passage_text"]) if s]
    assert sorted(split.collection[p] for p in split.qrels.get(qid, {})) == sorted(t.strip() for t in selected)
    assert len(split.candidates[qid]) == len(first["passages"]["passage_text"])


def test_parquet_without_needed_column_names_it(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"query": ["q"], "answers": [["a"]]}), path)
    with pytest.raises(DataFormatError, match="'passages' is missing"):
        read_v11_parquet(path)


def test_blank_passages_are_skipped_and_counted(tmp_path):
    path = tmp_path / "collection.tsv"
    path.write_text('1\tfirst "quoted passage\n2\t   \n3\tthird\n')
    skipped = Counter()
    docs = read_collection(path, skipped)
    assert docs == {"1": 'first "quoted passage', "3": "third"}
    assert skipped == {"collection.tsv:blank_text": 1}


def test_duplicate_ids_and_bad_rows_are_named(tmp_path):
    dup = tmp_path / "dup.tsv"
    dup.write_text("1\ta\n1\tb\n")
    with pytest.raises(DataFormatError, match="duplicate passage id '1'"):
        read_collection(dup)
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("1\ta\n2\tb\textra\n")
    with pytest.raises(DataFormatError, match="line 2"):
        read_collection(ragged)
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("1 0 5 1\n2 0 6\n")
    with pytest.raises(DataFormatError, match="line 2"):
        read_qrels(qrels)


def test_missing_data_names_the_path_and_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="TWOTOWER_DATA"):
        passage_split("dev", tmp_path / "nowhere")


def test_run_files_in_both_layouts(tmp_path):
    msmarco, trec = tmp_path / "a.tsv", tmp_path / "b.trec"
    msmarco.write_text("q1\tp1\t1\nq1\tp2\t2\n")
    trec.write_text("q1 Q0 p1 1 9.5 bm25\nq1 Q0 p2 2 3.0 bm25\n")
    for path in (msmarco, trec):
        run = read_run(path)
        assert sorted(run["q1"], key=run["q1"].get, reverse=True) == ["p1", "p2"]
