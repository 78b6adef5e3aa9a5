"""Every point of every sweep definition composes with Hydra, so a typo fails CI, not a GPU night.

Group choices (model=gru) select config files, so each distinct set of them is composed by Hydra; the value
overrides of every combination are then applied with Hydra's own override parser in struct mode, exactly as
Hydra applies them, which keeps thousands of combinations to seconds.
"""

import itertools
import re
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from twotower.conf import CONF_DIR as CONF

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml"))
PARSER = OverridesParser.create()


def is_group(name: str) -> bool:
    return (CONF / name).is_dir()


def compose_train(overrides, return_hydra_config=False):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=return_hydra_config)


def check_all_points(base: list[str], names: list[str], values: list[list]) -> int:
    groups = [i for i, n in enumerate(names) if is_group(n)]
    keys = [i for i, n in enumerate(names) if not is_group(n)]
    checked = 0
    for group_point in itertools.product(*(values[i] for i in groups)):
        cfg = compose_train(base + [f"{names[i]}={v}" for i, v in zip(groups, group_point)])
        for key_point in itertools.product(*(values[i] for i in keys)):
            trial = cfg.copy()
            OmegaConf.set_struct(trial, True)
            for override in PARSER.parse_overrides([f"{names[i]}={v}" for i, v in zip(keys, key_point)]):
                # Raises for a key the composed config does not have, as Hydra does.
                OmegaConf.update(trial, override.key_or_group, override.value(), merge=True)
                assert OmegaConf.select(trial, override.key_or_group) == override.value()
            OmegaConf.to_container(trial, resolve=False)
            checked += 1
    return checked


def wandb_values(spec: dict) -> list:
    """The values a W&B parameter can take; the ends of a distribution's range stand for it."""
    if "value" in spec:
        return [spec["value"]]
    if "values" in spec:
        return spec["values"]
    return [spec["min"], spec["max"]]


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_wandb_sweep_runs_the_hydra_app_at_every_point(path):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["program"] == "train.py" and "${args_no_hyphens}" in sweep["command"]
    assert sweep["metric"]["name"].startswith("eval/")
    names = list(sweep["parameters"])
    assert check_all_points([], names, [wandb_values(sweep["parameters"][n]) for n in names]) > 0


def optuna_values(expr: str) -> list:
    """choice(a, b) -> [a, b]; interval(lo, hi) and range(lo, hi) -> their ends; tag(...) is unwrapped."""
    expr = re.sub(r"^tag\([^,]+,\s*(.*)\)$", r"\1", expr.strip())
    inner = re.match(r"^(choice|interval|range)\((.*)\)$", expr)
    assert inner, f"unsupported sweep expression {expr!r}"
    values = [v.strip() for v in inner.group(2).split(",")]
    return values if inner.group(1) == "choice" else values[:2]


@pytest.mark.parametrize("search", SEARCHES)
def test_optuna_search_space_composes_at_every_corner(search):
    cfg = compose_train([f"hparams_search={search}"], return_hydra_config=True)
    assert cfg.hydra.sweeper.direction == "maximize"
    params = dict(cfg.hydra.sweeper.params)
    names = list(params)
    assert check_all_points([f"hparams_search={search}"], names, [optuna_values(params[n]) for n in names]) > 0


def test_a_typo_in_a_sweep_is_caught():
    with pytest.raises(Exception, match="temprature"):
        check_all_points([], ["loss.temprature"], [[0.1]])
    with pytest.raises(Exception, match="gruu"):
        check_all_points([], ["model"], [["gruu"]])


def test_slurm_launcher_config_composes():
    cfg = compose_train(["launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1
