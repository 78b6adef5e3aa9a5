"""Resuming a run in place: `twotower resume RUN_DIR [key=value ...]`.

A run folder holds the config it ran with (`config.yaml`) and Lightning's `checkpoints/last.ckpt`, rewritten
every epoch. Resuming reuses that config, so a resumed run cannot silently continue under other settings,
overwrite `config.yaml` or mix evaluations of different sizes in `metrics.json`. A few keys may change on
resume (more epochs, other devices); any other override that differs from the saved config is refused.

A run folder is self-contained: paths in the saved config that lay under the folder the run was started in
(checkpoints, loggers, `trainer.default_root_dir`) are re-rooted under the folder being resumed, so resuming a
copied or moved run never writes into the original. `config.yaml` must still say what the run was trained
under: it is compared with the config `last.ckpt` carries, and an edited file is refused naming the keys.

`config.yaml` is a file a user passes back: configs of older layouts are upgraded, the negative sources it
names are built only from our own classes (`twotower.data.negatives.SOURCES`), and every other `_target_` in it
must be one of twotower's own classes or a third-party class allowed by name (`twotower.conf.run_targets`),
checked on every key before anything is imported: a crafted file cannot make resuming import or call anything
else (a generic callable such as `hydra.utils.get_method` is never allowed).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from twotower.conf import run_targets
from twotower.conf.aliases import upgrade_overrides, upgrade_run_config
from twotower.data.negatives import SOURCES, check_source_config
from twotower.data.prepare import upgrade_data
from twotower.models.checkpoint import CheckpointError
from twotower.models.module import RUN_CONFIG_KEY

# Settings that do not change what is trained: a run may be extended, moved to other hardware, logged or
# monitored otherwise.
MAY_CHANGE = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.devices",
    "trainer.accelerator",
    "trainer.num_nodes",
    "trainer.strategy",
    "data.num_workers",
    "ckpt_path",
    "logger",
    "callbacks",
)
IGNORED = ("ckpt_path", "paths", "hydra", "overwrite")


class ResumeConflict(ValueError):
    """A resume asked for settings other than the run's own."""


class EditedConfigError(ValueError):
    """A run's config.yaml no longer says what its last.ckpt was trained under."""


class ForeignTargetError(ValueError):
    """A stored run config names a `_target_` that is not one of twotower's classes or allowed by name."""


def check_targets(node: Any, allowed: Collection[str], where: str = "") -> None:
    """Refuse, naming its key, the first `_target_` under `node` that is not in `allowed`. Every key is
    looked at (an interpolation may pull any node into one that is built); nothing is imported."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if "_target_" in node and not (isinstance(target, str) and target in allowed):
            raise ForeignTargetError(
                f"config.yaml sets {where or 'the root'}._target_={target!r}, which is not one of twotower's "
                "own classes nor a class it allows by name; refusing to import or build it (train a new run instead)"
            )
        for key, value in node.items():
            check_targets(value, allowed, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_targets(value, allowed, f"{where}[{i}]")


def conflicts(saved: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs (keys in MAY_CHANGE/IGNORED excepted)."""
    out = []
    for key in sorted(set(saved) | set(wanted)):
        name = f"{prefix}{key}"
        if name in IGNORED or name in MAY_CHANGE or any(name.startswith(p + ".") for p in MAY_CHANGE):
            continue
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += conflicts(a, b, name + ".")
        elif a != b:
            out.append(f"{name} is {_short(a)} in the run's config.yaml, not {_short(b)}")
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " ...}"


def load_run_config(path: Path, resolve: bool = False) -> dict[str, Any]:
    """A run's config.yaml as a dict; a file that is not YAML, or not a mapping of settings, is one clear error."""
    try:
        loaded = OmegaConf.load(path)
        config = OmegaConf.to_container(loaded, resolve=resolve) if isinstance(loaded, DictConfig) else None
    except (yaml.YAMLError, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path} is not a readable run config ({first}); put the run's own config.yaml back") from None
    if not config:
        raise ValueError(f"{path} holds no run config (it is empty or not a mapping of settings)")
    return config


def _upgraded(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config in today's layout (`twotower.conf.aliases.upgrade_run_config` for the keys issue 19
    moved, `twotower.data.prepare.upgrade_data` for older flat prepare settings), its negative source checked
    against the allow-list."""
    saved = upgrade_run_config(saved)
    if isinstance(saved.get("data"), dict):
        saved["data"] = upgrade_data(saved["data"])
        check_source_config((saved["data"].get("prepare") or {}).get("negatives"))  # what `data` would build
    return saved


def rerooted(node: Any, old: str, new: str) -> Any:
    """`node` with every path string under the folder `old` (or `old` itself) moved under `new`."""
    if isinstance(node, dict):
        return {key: rerooted(value, old, new) for key, value in node.items()}
    if isinstance(node, list):
        return [rerooted(value, old, new) for value in node]
    old = old.rstrip("/")
    if isinstance(node, str) and old and (node == old or node.startswith(old + "/")):
        return new + node[len(old) :]
    return node


def _rooted(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A saved run config re-rooted from the folder it ran in (its `paths.run_dir`) to `run_dir`."""
    old = (config.get("paths") or {}).get("run_dir")
    return rerooted(config, old, str(run_dir)) if isinstance(old, str) else config


def check_resume(run_dir: Path, cfg: DictConfig) -> None:
    """Before a run with `ckpt_path` writes anything into an existing run folder: its settings must be the
    saved ones (a changed `trainer.max_epochs` and the like excepted)."""
    saved_path = run_dir / "config.yaml"
    if not cfg.get("ckpt_path"):
        return
    ckpt = Path(cfg.ckpt_path)
    if not ckpt.is_file():
        raise FileNotFoundError(f"ckpt_path={ckpt} does not exist: give a run's checkpoints/last.ckpt")
    checkpoint_config(ckpt)  # a truncated file is one line now, not a traceback after the data work
    if not saved_path.exists():
        return
    saved = _rooted(_upgraded(load_run_config(saved_path, resolve=True)), run_dir)
    differences = conflicts(saved, OmegaConf.to_container(cfg, resolve=True))
    if differences:
        raise ResumeConflict(
            f"resuming {run_dir} under other settings: {'; '.join(differences[:3])}"
            f"{' (and more)' if len(differences) > 3 else ''}. Resume with "
            f"`twotower resume {run_dir}` (the run's own config), or train a new run"
        )


def checkpoint_config(last: Path) -> dict[str, Any] | None:
    """The run config a Lightning `last.ckpt` of ours was trained under (None for runs older than that
    record); a truncated or foreign file is one `CheckpointError` naming it. Read without building anything."""
    import torch

    try:
        state = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"{last} is damaged or truncated ({type(exc).__name__}), so the run cannot resume from it; its "
            "best.pt and last.pt still load, or start a new run"
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointError(f"{last} is not a Lightning checkpoint of a twotower run (no state_dict)")
    config = state.get(RUN_CONFIG_KEY)
    return config if isinstance(config, dict) else None


def _check_unedited(config: dict[str, Any], last: Path, run_dir: Path) -> None:
    recorded = checkpoint_config(last)
    if recorded is None:
        return
    # Keys that may change on resume are not compared: a resume that stopped before its first epoch ended
    # has rewritten config.yaml with them already.
    edited = conflicts(config, _rooted(_upgraded(recorded), run_dir))
    if edited:
        raise EditedConfigError(
            f"{run_dir / 'config.yaml'} was edited after {last.name} was written: "
            f"{'; '.join(e.replace(' not ', ' but ' + last.name + ' was trained with ') for e in edited[:3])}"
            f"{' (and more)' if len(edited) > 3 else ''}. Put the file back; settings change on the command "
            f"line (`twotower resume {run_dir} trainer.max_epochs=N`)"
        )


def resume_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The run's saved config with `ckpt_path` at its last.ckpt and the allowed `overrides` applied; every
    path the run writes re-rooted under `run_dir` (a copied or moved run never writes into the original)."""
    run_dir = Path(run_dir).absolute()
    saved = run_dir / "config.yaml"
    last = run_dir / "checkpoints" / "last.ckpt"
    for path, what in ((saved, "config.yaml"), (last, "checkpoints/last.ckpt")):
        if not path.exists():
            raise FileNotFoundError(f"{run_dir} is not a resumable run folder: no {what}")
    config = _upgraded(load_run_config(saved))
    # This config gets built: only what our configs name, and negative sources registered besides.
    check_targets(config, run_targets() | SOURCES.keys())
    config = _rooted(config, run_dir)
    _check_unedited(config, last, run_dir)
    cfg = OmegaConf.create(config)
    for item in upgrade_overrides(overrides):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        if key not in MAY_CHANGE:
            current = OmegaConf.select(cfg, key)
            if current != yaml.safe_load(value):
                raise ResumeConflict(
                    f"{key} is {current!r} in {saved}; a resumed run keeps its settings "
                    f"(it may change {', '.join(MAY_CHANGE[:4])}): start a new run to change it"
                )
        OmegaConf.update(cfg, key, yaml.safe_load(value) if value else None, force_add=True)  # "3" -> 3
    cfg.ckpt_path = str(last)
    cfg.paths.run_dir = str(run_dir)
    return cfg
