"""How text splits into words, in one place.

The one word pattern: lower-case runs of letters and digits, with an English clitic kept on ("don't").

The word tokenizer (and its exported Rust `tokenizers` copy), the Deep Memory bag-of-words embeddings and the
search highlighter all split text with it, so a word means the same thing everywhere.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

# Applied to lower-cased text. Changing it changes every word-vocabulary checkpoint's tokenisation: don't.
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """`text`'s words, lower-cased, in order (punctuation dropped)."""
    return WORD.findall(text.lower())


# The one deliberate exception: GloVe's vocabulary comes from a tokenizer that split clitics off ("company 's"),
# so it knows "company" but not "company's". Looking GloVe up with WORD would lose every such word (0.5% of the
# words and 18% of the passages of MS MARCO); for GloVe look-ups a word stops at the apostrophe.
GLOVE_WORD = re.compile(r"[a-z0-9]+")


def glove_words(text: str) -> list[str]:
    """`text`'s words as GloVe's vocabulary spells them: lower-cased, split at apostrophes."""
    return GLOVE_WORD.findall(text.lower())


# BM25's tokeniser is bm25s' own (and scikit-learn's) default, kept bit for bit so our index equals bm25s'.
BM25_TOKEN = re.compile(r"(?u)\b\w\w+\b")


@functools.cache
def bm25_stopwords(name: str) -> frozenset[str]:
    """bm25s' stop-word list `name` ("en")."""
    from bm25s.tokenization import _infer_stopwords

    return frozenset(_infer_stopwords(name))


def bm25_words(text: str, stop: frozenset[str] = frozenset()) -> list[str]:
    """`text`'s BM25 tokens, lower-cased, stop-words left out."""
    return [w for w in BM25_TOKEN.findall(text.lower()) if w not in stop]


def bm25_tokenize(texts: Sequence[str], vocab: dict[str, int], stop: frozenset[str], grow: bool) -> list[list[int]]:
    """Token ids of each text, exactly as `bm25s.tokenize` splits; new words get ids only when `grow`."""
    if grow:
        return [
            [vocab.setdefault(w, len(vocab)) for w in BM25_TOKEN.findall(t.lower()) if w not in stop] for t in texts
        ]
    return [[i for i in map(vocab.get, BM25_TOKEN.findall(t.lower())) if i is not None] for t in texts]
