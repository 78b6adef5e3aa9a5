"""Out of GPU memory names the settings that lower it (simulated: no GPU here)."""

import pytest
import torch

from twotower import api
from twotower.training.run import OutOfMemory


def test_out_of_memory_suggests_the_settings_to_lower(small_msmarco, tmp_path, monkeypatch):
    import lightning

    def fit(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(lightning.Trainer, "fit", fit)
    with pytest.raises(OutOfMemory, match=r"data.batch_size \(now 8\).*gradient_checkpointing=true"):
        api.train(
            ["data.batch_size=8", "logger=csv", "tokenizer=glove", "negatives=random"],
            config={"data": {"dir": str(small_msmarco)}},
            run_dir=tmp_path,
        )
