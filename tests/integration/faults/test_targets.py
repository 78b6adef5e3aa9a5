"""Build only our own classes from files (issue 18, class 3).

A resumed run's `config.yaml` is a file a user hands back to us. Every `_target_` in it must be one of
twotower's own classes (towers, tokenizers, losses, negative sources, schedules, callbacks) or a third-party
class allowed by name (Lightning's Trainer, ModelCheckpoint, EarlyStopping, RichProgressBar, CSVLogger,
WandbLogger; torch's AdamW). Before the fix the allow-list was every `_target_` any shipped config named, so
`hydra.utils.get_method` (named by the emb-opt score config) let a crafted file import and call any function.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from twotower.cli import main


def crafted(run: Path, tmp_path: Path, where: str, node: dict) -> Path:
    """A copy of `run` whose config.yaml sets `where` to `node`."""
    copy = tmp_path / "crafted-run"
    shutil.copytree(run, copy)
    config = OmegaConf.load(copy / "config.yaml")
    OmegaConf.update(config, where, node, force_add=True, merge=False)
    OmegaConf.save(config, copy / "config.yaml")
    return copy


@pytest.mark.parametrize("where", ["loss", "model.tower", "callbacks.early_stopping", "paths.anything"])
def test_a_generic_callable_in_a_resumed_config_is_refused_before_it_is_imported(trained_run, tmp_path, where, capsys):
    # get_method would import `this` (which prints the Zen of Python) and hand back what it names.
    run = crafted(trained_run, tmp_path, where, {"_target_": "hydra.utils.get_method", "path": "this.s"})
    sys.modules.pop("this", None)

    assert main(["resume", str(run)]) == 1

    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert f"{where}._target_='hydra.utils.get_method'" in err[0] and "not one of twotower's own" in err[0]
    assert "this" not in sys.modules


def test_the_allow_list_holds_our_classes_and_named_third_party_ones_only():
    from twotower.conf import THIRD_PARTY, run_targets

    allowed = run_targets()
    assert "hydra.utils.get_method" not in allowed and "hydra.utils.instantiate" not in allowed
    assert not [t for t in allowed if not t.startswith("twotower.") and t not in THIRD_PARTY]
    # What our run configs build stays allowed: every run we train can be resumed.
    assert {
        "twotower.models.static.MeanTower",
        "twotower.losses.contrastive.ContrastiveLoss",
        "twotower.training.callbacks.TwoTowerCheckpoint",
        "lightning.pytorch.callbacks.ModelCheckpoint",
        "lightning.pytorch.loggers.CSVLogger",
    } <= allowed
    # Targets only the sweeper or emb-opt configs name are not what a run config builds.
    assert "twotower.reporting.sweep.sqlite_storage" not in allowed
    assert "optuna.samplers.TPESampler" not in allowed
