"""A small real index for the serving tests: 300 MS MARCO passages, a tiny untrained mean tower, faiss flat."""

from pathlib import Path

import pytest
from tiny_models import first_passages, make_checkpoint

from twotower.search import Searcher, build_index

N_DOCS = 300


@pytest.fixture(scope="session")
def corpus(msmarco_dir) -> dict[str, str]:
    return first_passages(msmarco_dir, N_DOCS)


@pytest.fixture(scope="session")
def index_dir(corpus, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    checkpoint = make_checkpoint(root / "best.pt", list(corpus.values()))
    # Without a BM25 part: the dense-only index these tests describe (test_modes.py also serves one with BM25).
    build_index(checkpoint, corpus, root / "index", progress=False, bm25=False)
    return root / "index"


@pytest.fixture(scope="session")
def searcher(index_dir) -> Searcher:
    with Searcher.load(index_dir, device="cpu") as loaded:
        yield loaded
