"""Teacher scores of a training split: what the prepare step asks a teacher (`data.prepare.teacher`).

A bi-encoder teacher's query and passage vectors are computed once (cached, resumable; see `data.prepare.teacher`);
every score is then an inner product of two cached rows, and dense mining is an exact inner-product search
over the passage vectors. A cross-encoder teacher scores each (query, passage) pair it is asked about and
cannot mine.
"""

from __future__ import annotations

import logging

import numpy as np

from twotower.data.dict_corpus import as_corpus
from twotower.data.msmarco import Split
from twotower.data.teacher import load_teacher

log = logging.getLogger(__name__)


class TeacherScores:
    """Scores of (query, passage) pairs of one split by one teacher."""

    def __init__(self, teacher, split: Split, qids: list[str]) -> None:
        self.teacher = teacher
        self.split = split
        self.corpus = as_corpus(split.collection)
        self.bi_encoder = teacher.can_mine
        self.query_row = {q: i for i, q in enumerate(qids)}
        if self.bi_encoder:
            self.queries = teacher.vectors(qids, lambda ids: [split.queries[i] for i in ids], "query")
            pids = self.corpus.pids_at(np.arange(len(self.corpus)))
            self.passages = teacher.vectors(pids, self.corpus.texts, "document")

    @classmethod
    def load(cls, spec: str, split: Split, qids: list[str]) -> TeacherScores:
        return cls(load_teacher(spec), split, qids)

    def of(self, qid: str, pids: list[str]) -> list[float]:
        """The teacher's scores of `pids` for query `qid`."""
        if not self.bi_encoder:
            return self.teacher.score_pairs([self.split.queries[qid]], [self.corpus.texts(pids)])[0].tolist()
        q = self.queries[self.query_row[qid]]
        return (self.passages[self.corpus.rows(pids)] @ q).astype(np.float32).tolist()

    def query_vectors(self, qids: list[str]) -> np.ndarray:
        """The teacher's vectors of training queries `qids` (rows in that order)."""
        return np.ascontiguousarray(self.queries[[self.query_row[q] for q in qids]], dtype=np.float32)

    def passage_vectors(self, pids: list[str]) -> np.ndarray:
        """The teacher's vectors of passages `pids` (rows in that order)."""
        return np.ascontiguousarray(self.passages[self.corpus.rows(pids)], dtype=np.float32)

    def below(self, qid: str, positive: str, candidates: list[str], margin: float) -> list[str]:
        """The candidates the teacher scores below the positive's score minus `margin` (false-negative filter)."""
        scores = self.of(qid, [positive, *candidates])
        kept = [c for c, s in zip(candidates, scores[1:]) if s < scores[0] - margin]
        return kept

    def mine(self, qids: list[str], skip: int, depth: int) -> dict[str, list[str]]:
        """Each query's passages ranked `skip` .. `skip + depth` by the teacher (exact inner product)."""
        if not self.bi_encoder:
            raise ValueError(
                "a cross-encoder teacher cannot mine negatives: use negatives=bm25 with it, "
                "or a bi-encoder teacher (minilm, a sentence-transformers folder, a .pt)"
            )
        return VectorMiner(self.queries, self.passages, self.corpus, self.query_row).mine(qids, skip, depth)


class VectorMiner:
    """Dense negatives from query and passage vectors (the teacher's, or the model's being trained: ANCE)."""

    def __init__(self, queries: np.ndarray, passages: np.ndarray, corpus, query_row: dict[str, int]) -> None:
        self.queries, self.passages, self.corpus, self.query_row = queries, passages, corpus, query_row

    def mine(self, qids: list[str], skip: int, depth: int) -> dict[str, list[str]]:
        """Each query's passages ranked `skip` .. `skip + depth` (exact inner product)."""
        from twotower.retrieval.exact import exact_search

        rows = np.array([self.query_row[q] for q in qids])
        _, hits = exact_search(self.passages, self.queries[rows], skip + depth)
        log.info("mined %d dense negatives per query for %d queries", depth, len(qids))
        return {q: self.corpus.pids_at(row[skip:][row[skip:] >= 0]) for q, row in zip(qids, hits)}
