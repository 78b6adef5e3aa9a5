"""ANCE-style refresh: re-mine dense negatives with the model being trained, every `data.refresh_every` epochs.

Negatives mined once, by a teacher or BM25, grow easy as the model learns; ANCE (Xiong et al. 2021,
"Approximate Nearest Neighbor Negative Contrastive Learning for Dense Text Retrieval") re-mines them with the
current model. Here rank 0 encodes the training corpus and queries with the model, mines the rank window of the
dense source in `negatives` (itself, or a mix's; `DenseNegatives()`'s ranks 3 .. 53 when it has none), draws
negatives (teacher scores still come from the cached teacher vectors, and the teacher margin still filters false
negatives) and writes a new triplet set under the run folder; the other ranks wait at a barrier and then read it.
Lightning rebuilds the loader because the trainer has `reload_dataloaders_every_n_epochs` equal to `refresh_every`
(checked).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from twotower.data.dict_corpus import as_corpus
from twotower.data.negatives import dense_part
from twotower.data.prepare import prepare_triplets, triplet_files
from twotower.data.scoring import VectorMiner

log = logging.getLogger(__name__)


def check_reloads(trainer, refresh_every: int) -> None:
    if refresh_every and trainer.reload_dataloaders_every_n_epochs != refresh_every:
        raise ValueError(
            f"data.refresh_every={refresh_every} needs trainer.reload_dataloaders_every_n_epochs="
            f"{refresh_every} (now {trainer.reload_dataloaders_every_n_epochs})"
        )


def refresh_negatives(datamodule, trainer, epoch: int) -> list[Path]:
    """Mine new dense negatives with the model being trained; the shards of the new set."""
    split = datamodule.train_split_data
    out = Path(trainer.default_root_dir) / "negatives" / f"epoch{epoch:03d}"
    if trainer.is_global_zero:
        encoder = trainer.lightning_module.encoder()
        corpus = as_corpus(split.collection)
        pids = corpus.pids_at(range(len(corpus)))
        qids = sorted({q for q in split.queries if split.qrels.get(q)})
        log.info(
            "epoch %d: re-mining dense negatives with the model (%d queries, %d passages)", epoch, len(qids), len(pids)
        )
        miner = VectorMiner(
            encoder.encode_queries([split.queries[q] for q in qids], progress=True),
            encoder.encode_documents(corpus.texts(pids), progress=True),
            corpus,
            {q: i for i, q in enumerate(qids)},
        )
        # Same seed: the same subsample of queries as the first set; the pools, hence the draws, are new.
        config = dataclasses.replace(datamodule.prepare, negatives=dense_part(datamodule.prepare.negatives))
        prepare_triplets(split, config, f"refresh:{epoch}", out, miner=miner)
    trainer.strategy.barrier()
    return triplet_files(out)
