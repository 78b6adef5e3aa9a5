"""A small store where plain search fails and a query adapter can learn the fix (the Deep Memory tests' data).

Documents talk about topics with one word (`t7doc`), queries ask with another (`t7ask`): a bag-of-words
embedding sees no overlap, so plain search is near chance, but a linear map from query words to document
words generalises to unseen topic pairs. Each document holds a unique pair of topics plus filler words.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass


@dataclass
class SyntheticTask:
    ids: list[str]
    texts: list[str]
    train_queries: list[str]
    train_relevance: list[list[tuple[str, float]]]
    test_queries: list[str]
    test_relevance: list[list[tuple[str, float]]]


def synonym_task(n_topics: int = 30, n_docs: int = 300, test_fraction: float = 0.2, seed: int = 0) -> SyntheticTask:
    """Documents = unique topic pairs in "doc" words + filler; queries = the same pair in "ask" words."""
    rng = random.Random(seed)
    pairs = list(itertools.combinations(range(n_topics), 2))
    if n_docs > len(pairs):
        raise ValueError(f"{n_topics} topics give only {len(pairs)} distinct documents")
    rng.shuffle(pairs)
    filler = [f"filler{i}" for i in range(50)]
    ids, texts, queries = [], [], []
    for n, (a, b) in enumerate(pairs[:n_docs]):
        ids.append(f"doc{n}")
        texts.append(" ".join([f"t{a}doc", f"t{b}doc", *rng.sample(filler, 3)]))
        queries.append(f"t{a}ask t{b}ask")
    # Test documents anywhere in the store: plain search breaks its many ties by row, so test documents stored
    # first would look retrievable.
    test = set(rng.sample(range(n_docs), int(round(n_docs * test_fraction))))
    relevance = [[(i, 1.0)] for i in ids]
    train_rows = [i for i in range(n_docs) if i not in test]
    return SyntheticTask(
        ids=ids,
        texts=texts,
        train_queries=[queries[i] for i in train_rows],
        train_relevance=[relevance[i] for i in train_rows],
        test_queries=[queries[i] for i in sorted(test)],
        test_relevance=[relevance[i] for i in sorted(test)],
    )
