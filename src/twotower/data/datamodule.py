"""The `LightningDataModule`: prepares triplet shards, builds the tokenizer, streams batches with pyarrow.

Streaming: the unit of work is one parquet row group. Row groups are dealt round-robin to the dataloader
workers, and inside a row group rows are dealt to the distributed ranks, so each triplet is read by exactly
one (rank, worker) pair per epoch, whatever `num_workers` is, and the set is never loaded whole. A shuffle
buffer mixes rows across row groups; the order depends on (seed, epoch) only.

Under DDP every rank must run the same number of steps or the gradient all-reduce waits for ever, so each
rank takes exactly floor(n / world_size) rows of a row group of n: at most world_size - 1 rows of each
1,000-row group sit out an epoch (different ones each epoch, since the rows are shuffled first).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from twotower.data.dict_corpus import as_corpus
from twotower.data.msmarco import Split, passage_split, read_v11_parquet
from twotower.data.prepare import PrepareConfig, prepare_triplets, training_qids, triplet_files
from twotower.io.fingerprint import files_fingerprint
from twotower.io.paths import data_dir

log = logging.getLogger(__name__)


class TripletStream(IterableDataset):
    """Rows {query, positive, negatives} from parquet shards, one pass per epoch, sharded and shuffled."""

    def __init__(
        self, files: list[Path], shuffle_buffer: int = 10_000, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        super().__init__()
        self.units = [(f, g) for f in files for g in range(pq.ParquetFile(f).num_row_groups)]
        self.columns = ["qid", "pid", "neg_pids", "teacher"]
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def __len__(self) -> int:
        # Rows this rank sees per epoch (for progress bars); workers split them among themselves.
        return sum(pq.ParquetFile(f).metadata.row_group(g).num_rows // self.world_size for f, g in self.units)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.units)) if self.shuffle_buffer > 0 else np.arange(len(self.units))
        mine = [(i, *self.units[i]) for i in order[worker::n_workers]]
        buffer: list[dict[str, Any]] = []
        local = np.random.default_rng([self.seed, self.epoch, self.rank, worker])
        handles: dict[Path, pq.ParquetFile] = {}
        for unit, f, g in mine:
            pf = handles.setdefault(f, pq.ParquetFile(f))
            rows = pf.read_row_group(g, columns=self.columns).to_pylist()
            if self.world_size > 1:
                # Shuffled with a generator every rank shares, then split evenly (see the module docstring).
                np.random.default_rng([self.seed, self.epoch, int(unit)]).shuffle(rows)
                rows = rows[: len(rows) - len(rows) % self.world_size]
            for row in rows[self.rank :: self.world_size]:
                if self.shuffle_buffer <= 0:
                    yield row
                    continue
                if len(buffer) < self.shuffle_buffer:
                    buffer.append(row)
                    continue
                i = int(local.integers(len(buffer)))
                yield buffer[i]
                buffer[i] = row
        local.shuffle(buffer)
        yield from buffer


def collate_triplets(
    rows: list[dict[str, Any]],
    tokenize_queries: Callable[[list[str]], Any],
    tokenize_documents: Callable[[list[str]], Any],
    queries: Mapping[str, str],
    corpus,
    teacher_vectors=None,
) -> dict[str, Any]:
    """Fetch the texts of a batch of id rows and tokenise them with the model's own tokenisers: {query: features
    of the B queries, documents: features of the B positives then each row's k negatives, teacher: (B, 1 + k)
    scores when the rows carry them, teacher_vectors: the teacher's vectors of those texts when asked}."""
    k = len(rows[0]["neg_pids"])
    if any(len(r["neg_pids"]) != k for r in rows):
        raise ValueError("every triplet in a batch needs the same number of negatives")
    qids = [r["qid"] for r in rows]
    pids = [r["pid"] for r in rows] + [n for r in rows for n in r["neg_pids"]]
    batch = {
        "query": tokenize_queries([queries[q] for q in qids]),
        "documents": tokenize_documents(corpus.texts(pids)),
    }
    if rows[0].get("teacher") is not None:
        batch["teacher"] = torch.tensor([r["teacher"] for r in rows], dtype=torch.float32)
    if teacher_vectors is not None:
        batch["teacher_vectors"] = {
            "query": torch.from_numpy(teacher_vectors.query_vectors(qids)),
            "documents": torch.from_numpy(teacher_vectors.passage_vectors(pids)),
        }
    return batch


class _EpochLoader(DataLoader):
    """A DataLoader that tells its stream the trainer's epoch before each pass (Lightning only does that
    for samplers, and an IterableDataset has none)."""

    def __init__(self, *args, epoch: Callable[[], int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._epoch = epoch

    def __iter__(self):
        self.dataset.epoch = self._epoch()
        return super().__iter__()


class MSMarcoDataModule(L.LightningDataModule):
    """Training triplets streamed from parquet shards, plus the dev split used for retrieval evaluation.

    `source` is `passage` (the official TSVs under `dir`/msmarco-passage) or a path to an HF `ms_marco`
    parquet; `eval_source` likewise for evaluation (default: the passage dev split, the standard one).
    `prepare` decides how the triplets are mined and scored (`data.prepare`, a `PrepareConfig` or its fields as
    a mapping); the other arguments decide how they are loaded. Batches are tokenised by the model's own
    towers: the collate gets the `tokenize_queries` / `tokenize_documents` of the trainer's model when the
    loader is built (the model's vocabulary may be built from `vocabulary_texts()`; token limits are the model's).

        MSMarcoDataModule(prepare=PrepareConfig(negatives=BM25Negatives(depth=50, skip=3), num_negatives=3),
                          batch_size=64)
    """

    def __init__(
        self,
        dir: str | None = None,
        source: str = "passage",
        train_split: str = "train",
        eval_split: str = "dev",
        prepare: PrepareConfig | Mapping[str, Any] | None = None,
        batch_size: int = 128,
        num_workers: int = 0,
        shuffle_buffer: int = 10_000,
        seed: int = 0,
        triplets_dir: str | None = None,
        eval_source: str = "passage",
        refresh_every: int = 0,
        teacher_vectors: bool = False,
    ) -> None:
        super().__init__()
        self.dir = Path(dir) if dir else data_dir()
        self.source = source
        self.eval_source = eval_source
        self.train_split = train_split
        self.eval_split_name = eval_split
        if prepare is None:
            prepare = PrepareConfig(seed=seed)
        elif isinstance(prepare, Mapping):
            prepare = PrepareConfig(**{"seed": seed, **{k: v for k, v in prepare.items() if not k.startswith("_")}})
        self.prepare = prepare
        self.batch_size = batch_size
        self.refresh_every = refresh_every  # re-mine dense negatives with the model every N epochs (ANCE)
        self.teacher_vectors = teacher_vectors  # collate the teacher's vectors (loss embedding_mse)
        self._teacher = None
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.triplets_dir = triplets_dir
        self.train_split_data: Split | None = None
        self.eval_split: Split | None = None
        self.skipped: Counter = Counter()
        self._files: list[Path] = []
        self._resume_epoch: int | None = None

    def _read(self, name: str, source: str, collection: dict[str, str] | None = None) -> Split:
        if source == "passage":
            return passage_split(name, self.dir / "msmarco-passage", collection)
        return read_v11_parquet(source)

    def setup(self, stage: str | None = None) -> None:
        if self.train_split_data is not None:
            return
        train = self._read(self.train_split, self.source)
        self.skipped.update(train.skipped)
        source_id = f"{self.source}:{self.dir}:{self.train_split}"
        # One teacher for the prepare step and the collate: loaded here only when a loss reads its vectors.
        self._teacher = self._load_teacher(train) if self.teacher_vectors else None
        fingerprint = self._inputs_fingerprint()
        out = prepare_triplets(train, self.prepare, source_id, self.triplets_dir, fingerprint, teacher=self._teacher)
        self._files = triplet_files(out)
        shared = train.collection if self.source == self.eval_source == "passage" else None
        self.eval_split = self._read(self.eval_split_name, self.eval_source, shared) if self.eval_split_name else None
        self.train_split_data = train
        if self.skipped:
            log.warning("skipped blank rows: %s", dict(self.skipped))

    def _inputs_fingerprint(self) -> str:
        """The contents of the files the triplets come from: an edited qrels file never reuses old triplets."""
        if self.source == "passage":
            root = self.dir / "msmarco-passage"
            files = [
                root / "collection.tsv",
                root / f"queries.{self.train_split}.tsv",
                root / f"qrels.{self.train_split}.tsv",
            ]
        else:
            files = [Path(self.source)]
        return files_fingerprint(files + self.prepare.negatives.files())

    def vocabulary_texts(self) -> Iterator[str]:
        """Training queries and corpus passages, not dev queries: a vocabulary must not peek at evaluation."""
        if self.train_split_data is None:
            self.setup("fit")
        yield from self.train_split_data.queries.values()
        yield from self.train_split_data.collection.values()

    def _stream_epoch(self) -> int:
        """The epoch whose order the next pass follows: Lightning's count of finished epochs, except on the
        first pass after a resume, which Lightning starts before it restores that count."""
        if self._resume_epoch is not None:
            epoch, self._resume_epoch = self._resume_epoch, None
            return epoch
        trainer = getattr(self, "trainer", None)
        return trainer.fit_loop.epoch_progress.current.processed if trainer else 0

    def state_dict(self) -> dict[str, Any]:
        trainer = getattr(self, "trainer", None)
        return {"stream_epoch": trainer.fit_loop.epoch_progress.current.processed if trainer else 0}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._resume_epoch = state_dict.get("stream_epoch")

    def _load_teacher(self, train: Split):
        if self.prepare.teacher is None:
            raise ValueError("data.teacher_vectors=true needs data.prepare.teacher")
        from twotower.data.scoring import TeacherScores

        return TeacherScores.load(self.prepare.teacher, train, training_qids(train))

    def _teacher_vectors(self):
        """The teacher's cached vectors, when a loss regresses onto them (`data.teacher_vectors=true`)."""
        return self._teacher if self.teacher_vectors else None

    def _model(self):
        """The two-tower model of the trainer this DataModule is attached to (its towers tokenise batches)."""
        module = getattr(getattr(self, "trainer", None), "lightning_module", None)
        if getattr(module, "model", None) is None:
            raise RuntimeError("the DataModule tokenises through the model's towers: attach it to a Trainer first")
        return module.model

    def train_dataloader(self) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        if trainer is not None and self.refresh_every:
            from twotower.data.refresh import check_reloads, refresh_negatives

            check_reloads(trainer, self.refresh_every)
            epoch = trainer.current_epoch
            if epoch > 0 and epoch % self.refresh_every == 0:
                self._files = refresh_negatives(self, trainer, epoch)
        stream = TripletStream(self._files, self.shuffle_buffer, self.seed, rank, world)
        model = self._model()
        return _EpochLoader(
            stream,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=partial(
                collate_triplets,
                tokenize_queries=model.tokenize_queries,
                tokenize_documents=model.tokenize_documents,
                queries=self.train_split_data.queries,
                corpus=as_corpus(self.train_split_data.collection),
                teacher_vectors=self._teacher_vectors(),
            ),
            epoch=self._stream_epoch,
            persistent_workers=False,
        )
