"""Training pairs for a store whose documents have no queries yet (the guide's `create_training_data`).

Each sampled document gets one or more generated queries, paired with that document at relevance 1.0.
The generator is pluggable: any `text -> str | list[str]` callable, e.g. a prompt to an LLM you have.

The offline default, `KeywordQueryGenerator`, needs no model: it takes one sentence of the document and keeps
its rarest words across the store (highest IDF) in their original order, e.g. "dysprosium crust abundant".
What it can do: give the adapter many (query, document) pairs that follow this store's vocabulary, so it
learns which rare terms identify a document here. What it cannot do: ask real questions, paraphrase, use
words the document does not contain, or know what users will ask; short keyword queries are not user
questions, so a model trained only on them may not help on real queries. Deep memory checks the gain on
the held-back part of these pairs, which are generated the same way, so check with real queries too
(`deep_memory.evaluate`) before relying on it.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from twotower.retrieval.text import words as tokenize

if TYPE_CHECKING:
    from twotower.deep_memory.store import VectorStore

QuestionGenerator = Callable[[str], "str | list[str]"]

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
# Words so common they never identify a document, whatever the store (IDF handles the rest).
STOP_WORDS = frozenset(
    "a an and are as at be by for from has have he her his in is it its of on or that the their they this to was "
    "were which with you your i we not but can will may also been more most other some such than then there these "
    "those what when where who how why all any each into about over after before".split()
)


class KeywordQueryGenerator:
    """Offline query generator: the `length` highest-IDF words of one random sentence, in text order."""

    def __init__(self, corpus: Sequence[str], length: tuple[int, int] = (3, 6), seed: int = 0) -> None:
        self.length = length
        self.rng = random.Random(seed)
        df: Counter = Counter()
        for text in corpus:
            df.update(set(tokenize(text)))
        n = max(1, len(corpus))
        self.idf = {word: math.log((n + 1) / (count + 0.5)) for word, count in df.items()}

    def __call__(self, text: str) -> str:
        sentences = [s for s in _SENTENCE.split(text) if len(tokenize(s)) >= 3] or [text]
        words = [w for w in tokenize(self.rng.choice(sentences)) if w not in STOP_WORDS and not w.isdigit()]
        if not words:
            words = tokenize(text)[:3]
        want = self.rng.randint(*self.length)
        unique = list(dict.fromkeys(words))
        keep = set(sorted(unique, key=lambda w: -self.idf.get(w, 0.0))[:want])
        return " ".join(w for w in unique if w in keep)


def create_training_data(
    store: VectorStore,
    n_samples: int | None = 600,
    question_generator: QuestionGenerator | None = None,
    seed: int = 0,
) -> tuple[list[str], list[list[tuple[str, float]]]]:
    """(queries, relevance) for `deep_memory.train`, generated from `n_samples` random stored documents.

    `question_generator(text)` returns a query or a list of queries for that document text; default:
    `KeywordQueryGenerator` over the store's texts (offline; see the module docstring for its limits).
    Blank generated queries are skipped.
    """
    ids, texts = store.ids, store.texts
    if not ids:
        raise ValueError(f"the store at {store.path} holds no documents")
    order = list(range(len(ids)))
    random.Random(seed).shuffle(order)
    if n_samples is not None:
        if n_samples < 1:
            raise ValueError(f"n_samples must be positive, got {n_samples}")
        order = order[:n_samples]
    generate = question_generator or KeywordQueryGenerator(texts, seed=seed)
    queries: list[str] = []
    relevance: list[list[tuple[str, float]]] = []
    for row in order:
        generated = generate(texts[row])
        for query in [generated] if isinstance(generated, str) else list(generated):
            if query and query.strip():
                queries.append(query.strip())
                relevance.append([(ids[row], 1.0)])
    if not queries:
        raise ValueError("the question generator returned no usable query")
    return queries, relevance
