"""Training runs as the leaderboard and the sweep report read them: one `RunEntry` per run folder.

A run folder is what `train.py` writes: `metrics.json` (monitor, best_epoch, best, last, epochs,
best_checkpoint), `config.yaml`, `checkpoints/best.pt`, `csv/metrics.csv`, and `eval/best/per_query.json` (the
per-query values of the best evaluation, for the tie test). Hydra multiruns hold one such folder per job under
the sweep folder (the one with `multirun.yaml`); those runs carry the sweep's name. A run that stopped before
writing `metrics.json` is read from its `best.pt` training history instead.

    runs = collect_runs("outputs")
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twotower.evaluation.run_files import PER_QUERY, read_per_query

log = logging.getLogger(__name__)


@dataclass
class RunEntry:
    name: str  # the run folder, relative to the folder searched
    path: Path
    metrics: dict[str, float]  # best epoch's metrics
    epochs: list[dict[str, Any]] = field(default_factory=list)  # per-epoch train_loss and metrics
    best_epoch: int | None = None
    monitor: str | None = None
    sweep: str | None = None
    model: str | None = None  # e.g. "MeanTower + ContrastiveLoss", from config.yaml
    checkpoint: Path | None = None
    size_bytes: int | None = None
    modified: float = 0.0  # POSIX time of the newest result file
    history_file: Path | None = None
    params: dict[str, str] = field(default_factory=dict)  # the run's Hydra overrides (a sweep job's parameters)
    error: str | None = None  # why a run has no metrics (a failed sweep job)
    per_query: dict[str, list] | None = field(default=None, repr=False)  # eval/best/per_query.json, if saved
    vs_best: str | None = None  # "best", "tie", "worse" or "n/a" once `mark_ties` has compared the runs

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.metrics)

    @property
    def label(self) -> str:
        """Short name for plots: the run folder, under its sweep's name when it has one."""
        return f"{self.sweep}/{self.path.name}" if self.sweep else self.path.name

    @property
    def date(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.modified)) if self.modified else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "sweep": self.sweep,
            "model": self.model,
            "monitor": self.monitor,
            "best_epoch": self.best_epoch,
            "metrics": self.metrics,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "size_bytes": self.size_bytes,
            "date": self.date,
            "history_file": str(self.history_file) if self.history_file else None,
            "epochs": self.epochs,
            "params": self.params,
            "error": self.error,
            "vs_best": self.vs_best,
        }


def _model_name(run_dir: Path) -> str | None:
    config = run_dir / "config.yaml"
    if not config.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(config)
        tower = str(OmegaConf.select(cfg, "model.tower._target_", default="") or "").rsplit(".", 1)[-1]
        loss = str(OmegaConf.select(cfg, "loss._target_", default="") or "").rsplit(".", 1)[-1]
    except Exception as exc:  # a hand-edited or foreign config must not hide the run
        log.debug("cannot read %s: %s", config, exc)
        return None
    return " + ".join(p for p in (tower, loss) if p) or None


def overrides_of(run_dir: Path) -> dict[str, str]:
    """The `key=value` overrides Hydra recorded for the run (`.hydra/overrides.yaml`), or {}."""
    path = run_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return {}
    import yaml

    try:
        overrides = yaml.safe_load(path.read_text()) or []
    except yaml.YAMLError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return {}
    return dict(o.split("=", 1) for o in overrides if isinstance(o, str) and "=" in o)


def _sweep_of(run_dir: Path) -> str | None:
    # Hydra puts each job one level under the sweep folder, and writes multirun.yaml there.
    parent = run_dir.parent
    return parent.name if (parent / "multirun.yaml").is_file() else None


def _from_metrics_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("skipping %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("best"), dict) or not isinstance(data.get("epochs"), list):
        return None  # some other tool's metrics.json
    return data


def _from_checkpoint(path: Path) -> dict[str, Any] | None:
    from twotower.models.checkpoint import CheckpointError, load_checkpoint

    try:
        stats = load_checkpoint(path)["training_stats"]
    except (CheckpointError, OSError, KeyError) as exc:
        log.warning("skipping %s: %s", path, exc)
        return None
    losses = {e.get("epoch"): e.get("train_loss") for e in stats.get("training_stats", [])}
    epochs = [
        {"epoch": e["epoch"], "train_loss": losses.get(e["epoch"]), **{k: v for k, v in e.items() if k != "epoch"}}
        for e in stats.get("evaluation_stats", [])
    ]
    return {
        "best": stats.get("best_metrics") or {},
        "best_epoch": stats.get("best_epoch"),
        "epochs": epochs,
        "monitor": (stats.get("config") or {}).get("monitor"),
    }


def read_run(run_dir: str | Path, root: str | Path | None = None) -> RunEntry | None:
    """One run folder -> RunEntry, or None when it holds no results yet."""
    run_dir = Path(run_dir)
    root = Path(root) if root else run_dir.parent
    metrics_path = run_dir / "metrics.json"
    best = run_dir / "checkpoints" / "best.pt"
    data = _from_metrics_json(metrics_path) if metrics_path.is_file() else None
    if data is None and best.is_file():
        data = _from_checkpoint(best)
    if data is None:
        return None
    checkpoint = Path(data["best_checkpoint"]) if data.get("best_checkpoint") else best
    if not checkpoint.is_absolute() and not checkpoint.is_file():
        checkpoint = run_dir / "checkpoints" / checkpoint.name
    checkpoint = checkpoint if checkpoint.is_file() else (best if best.is_file() else None)
    csv = run_dir / "csv" / "metrics.csv"
    history = csv if csv.is_file() else metrics_path if metrics_path.is_file() else checkpoint
    files = [p for p in (metrics_path, checkpoint) if p is not None and p.is_file()]
    try:
        name = run_dir.relative_to(root).as_posix() or run_dir.name
    except ValueError:
        name = run_dir.name
    return RunEntry(
        name=name if name != "." else run_dir.name,
        path=run_dir,
        metrics={k: float(v) for k, v in data["best"].items()},
        epochs=data.get("epochs", []),
        best_epoch=data.get("best_epoch"),
        monitor=data.get("monitor"),
        sweep=_sweep_of(run_dir),
        model=_model_name(run_dir),
        checkpoint=checkpoint,
        size_bytes=checkpoint.stat().st_size if checkpoint else None,
        modified=max((p.stat().st_mtime for p in files), default=0.0),
        history_file=history,
        params=overrides_of(run_dir),
        per_query=read_per_query(run_dir / "eval" / "best" / PER_QUERY),
    )


def collect_runs(root: str | Path) -> list[RunEntry]:
    """Every run under `root` (a single run folder works too), in path order."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(
            f"no runs folder at {root}: train first (python train.py ...) or point --runs at your outputs"
        )
    candidates = {p.parent for p in root.rglob("metrics.json")} | {
        p.parent.parent for p in root.rglob("checkpoints/best.pt")
    }
    runs = [read_run(d, root) for d in sorted(candidates)]
    return [r for r in runs if r is not None]
