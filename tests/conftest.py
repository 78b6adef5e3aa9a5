import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

from twotower.io.paths import data_dir  # noqa: E402


@pytest.fixture(scope="session")
def msmarco_dir() -> Path:
    """The shared MS MARCO folder ($TWOTOWER_DATA, else ../shared/data)."""
    root = data_dir()
    if not (root / "msmarco-passage" / "collection.tsv").exists():
        pytest.fail(f"MS MARCO data not found under {root}: set TWOTOWER_DATA to the shared data folder")
    return root


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Each test session prepares its own triplet shards; never the user's outputs/cache.
    monkeypatch.setenv("TWOTOWER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def small_msmarco(msmarco_dir, tmp_path_factory) -> Path:
    """A small real subset in the official layout: 300 train and 60 dev queries, ~2,500 passages
    (their relevant passages, the dev queries' BM25 candidates, and other passages as distractors)."""
    from twotower.data.msmarco import read_collection, read_qrels, read_queries, read_run

    src = msmarco_dir / "msmarco-passage"
    out = tmp_path_factory.mktemp("msmarco") / "msmarco-passage"
    out.mkdir()
    collection = read_collection(src / "collection.tsv")
    keep: set[str] = set()
    for split, n in (("train", 300), ("dev", 60)):
        queries, qrels = read_queries(src / f"queries.{split}.tsv"), read_qrels(src / f"qrels.{split}.tsv")
        qids = [q for q in queries if q in qrels][:n]
        (out / f"queries.{split}.tsv").write_text("".join(f"{q}\t{queries[q]}\n" for q in qids))
        (out / f"qrels.{split}.tsv").write_text(
            "".join(f"{q}\t0\t{p}\t{r}\n" for q in qids for p, r in qrels[q].items())
        )
        keep |= {p for q in qids for p in qrels[q]}
        if split == "dev":
            run = read_run(src / "run.dev.bm25top20.tsv")
            keep |= {p for q in qids for p in run.get(q, {})}
    keep |= set(list(collection)[:1000])
    (out / "collection.tsv").write_text("".join(f"{p}\t{collection[p]}\n" for p in collection if p in keep))
    return out.parent


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer, 32-wide BERT with MiniLM's WordPiece tokenizer: a real transformer
    folder (config.json, weights, tokenizer) that trains in seconds on a CPU."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    from twotower.models.pretrained import minilm_path

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    BertModel(config).save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(minilm_path() / name, folder / name)
    return folder
