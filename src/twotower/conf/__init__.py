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
