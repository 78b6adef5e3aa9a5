"""Checkpoints: files written by twotower 0.1 (`twotower/1`) still load and encode as they did; a file that
names a foreign class, or whose weights were altered, is refused before anything runs."""

from pathlib import Path

import numpy as np
import pytest
import torch

from twotower.models.build import UntrustedTowerError
from twotower.models.checkpoint import CheckpointError, load_checkpoint, load_encoder, save_checkpoint

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.mark.parametrize("name", ["mean", "gru"])
def test_a_twotower_1_file_encodes_as_the_old_code_did(name):
    encoder = load_encoder(DATA / f"twotower1_{name}.pt")
    vectors = np.concatenate(
        [encoder.encode_queries(["the egg", "bank loan"]), encoder.encode_documents(["boil water then add the egg"])]
    )
    assert np.allclose(vectors, np.load(DATA / f"twotower1_{name}_vectors.npy"), atol=1e-6)


def test_a_checkpoint_naming_a_foreign_callable_runs_nothing(tmp_path):
    payload = load_checkpoint(DATA / "twotower1_mean.pt")
    victim = tmp_path / "written-by-the-checkpoint.txt"
    payload["model_config"]["tower"] = {
        "_target_": "pathlib.Path.write_text",
        "_partial_": True,
        "self": str(victim),
        "data": "pwned",
    }
    crafted = tmp_path / "crafted.pt"
    torch.save(payload, crafted)
    with pytest.raises(UntrustedTowerError, match="pathlib.Path.write_text.*refusing"):
        load_encoder(crafted)
    assert not victim.exists()


def test_flipped_weights_are_caught_by_the_checksum(tmp_path):
    payload = load_checkpoint(DATA / "twotower1_mean.pt")
    good = save_checkpoint(tmp_path / "good.pt", {k: v for k, v in payload.items() if k != "format"})
    altered = torch.load(good, weights_only=True)
    altered["model_state_dict"]["query_tower.head.weight"][0, 0] += 1.0
    torch.save(altered, tmp_path / "altered.pt")
    with pytest.raises(CheckpointError, match="altered.pt is damaged"):
        load_checkpoint(tmp_path / "altered.pt")
    assert load_checkpoint(tmp_path / "altered.pt", verify=False)["epoch"] == 0


def test_a_vocabulary_that_does_not_fit_the_embedding_table_is_named(tmp_path):
    payload = load_checkpoint(DATA / "twotower1_mean.pt")
    payload["word_to_index"] = {**payload["word_to_index"], "extra": len(payload["word_to_index"])}
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="tokenizer and model do not match"):
        load_encoder(tmp_path / "mismatch.pt")


def test_non_finite_weights_are_never_written(tmp_path):
    payload = load_checkpoint(DATA / "twotower1_mean.pt")
    payload["model_state_dict"]["query_tower.head.weight"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        save_checkpoint(tmp_path / "best.pt", payload)
    assert not (tmp_path / "best.pt").exists()
