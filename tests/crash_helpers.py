"""A callback that kills the training process mid-epoch, as `kill -9` would (no cleanup, no checkpoint)."""

import os

import lightning as L


class HardCrash(L.Callback):
    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.at_step:
            os._exit(137)
