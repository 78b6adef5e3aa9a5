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


RUN_GROUPS = ("data", "model", "tokenizer", "negatives", "loss", "optim", "scheduler", "trainer", "callbacks", "logger")
"""The config groups a training run's config is made of (`experiment/` files only recombine them)."""

THIRD_PARTY = frozenset(
    {
        "lightning.Trainer",
        "lightning.pytorch.callbacks.ModelCheckpoint",
        "lightning.pytorch.callbacks.EarlyStopping",
        "lightning.pytorch.callbacks.RichProgressBar",
        "lightning.pytorch.loggers.CSVLogger",
        "lightning.pytorch.loggers.WandbLogger",
        "torch.optim.AdamW",
    }
)
"""The classes of other packages our run configs build, allowed by name. Nothing generic (`hydra.utils.get_method`,
`builtins.eval`, a module's `import_module`) is, whatever config names it: it would call anything a file says."""


def run_targets() -> frozenset[str]:
    """What a config read back from a user's file (a resumed run's `config.yaml`) may build: twotower's own
    classes and functions the run groups' configs name (towers, tokenizers, losses, negative sources, schedules,
    callbacks, the data module) and `THIRD_PARTY` by name. Anything else such a file names is refused before it
    is imported or called (`twotower.training.resume.check_targets`)."""
    import yaml

    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if isinstance(target, str) and target.startswith("twotower."):
                found.add(target)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for group in RUN_GROUPS:
        for path in (CONF_DIR / group).rglob("*.yaml"):
            walk(yaml.safe_load(path.read_text()))
    return frozenset(found) | THIRD_PARTY
