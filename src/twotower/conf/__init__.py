"""The Hydra configs `train.py`, `evaluate.py`, `twotower emb-opt` and `twotower.api` compose, shipped as package data.

Hydra finds them as `pkg://twotower.conf` (this file marks the folder as a package, which Hydra requires);
code that needs a filesystem path uses `twotower.conf.CONF_DIR`, so a wheel install reads the same files as a
checkout. Each group folder mirrors the classes it builds (`model/gru.yaml` builds
`twotower.models.recurrent.GRUTower`).
"""

from importlib.resources import files
from pathlib import Path

CONF_DIR = Path(str(files(__name__)))
"""The folder holding `train.yaml`, `evaluate.yaml` and the config groups."""


def shipped_targets() -> frozenset[str]:
    """Every `_target_` the configs we ship name: what a config read back from a user's file (a resumed run's
    `config.yaml`) may build. Anything else in such a file is refused, never imported or called."""
    import yaml

    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if isinstance(target, str):
                found.add(target)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in CONF_DIR.rglob("*.yaml"):
        walk(yaml.safe_load(path.read_text()))
    return frozenset(found)
