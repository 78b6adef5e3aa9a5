"""`SampleRetrievals`: what the model retrieves for a few dev queries, as a W&B Table after each evaluation.

Metrics say how much; a table of (query, top passages, relevant or not) says what went wrong. Each epoch
adds rows `epoch, query, rank, passage, score, relevant` for the first `num_queries` judged dev queries to
one table, logged as `eval/samples` by every `WandbLogger` of the trainer (offline runs keep it on disk and
`wandb sync` uploads it later). Without a W&B logger the callback does nothing.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import WandbLogger

from twotower.data.dict_corpus import as_corpus
from twotower.training.callbacks import RetrievalEvaluation

COLUMNS = ["epoch", "qid", "query", "rank", "pid", "passage", "score", "relevant"]


class SampleRetrievals(L.Callback):
    """Logs the top `k` passages of `num_queries` dev queries per evaluation (a W&B Table)."""

    def __init__(self, num_queries: int = 8, k: int = 3, max_chars: int = 300) -> None:
        self.num_queries, self.k, self.max_chars = num_queries, k, max_chars
        self.rows: list[list[Any]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        evaluation = next((c for c in trainer.callbacks if isinstance(c, RetrievalEvaluation)), None)
        result = getattr(evaluation, "last_result", None)
        if not loggers or result is None or not trainer.is_global_zero:
            return
        evaluation.last_result = None  # each evaluation is tabled once
        split = trainer.datamodule.eval_split
        corpus = as_corpus(split.collection)
        for qid in list(result.ranking)[: self.num_queries]:
            relevant = {p for p, r in split.qrels.get(qid, {}).items() if r > 0}
            top = result.ranking[qid][: self.k]
            for rank, (pid, score, text) in enumerate(zip(top, result.scores[qid], corpus.texts(top)), 1):
                self.rows.append(
                    [
                        trainer.current_epoch,
                        qid,
                        split.queries[qid],
                        rank,
                        pid,
                        text[: self.max_chars],
                        round(float(score), 4),
                        pid in relevant,
                    ]
                )
        for logger in loggers:
            logger.log_table("eval/samples", columns=COLUMNS, data=self.rows, step=trainer.global_step)
