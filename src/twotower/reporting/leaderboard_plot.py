"""The leaderboard as a picture: the ranking metric and training loss per epoch of the best runs, and bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from twotower.reporting.leaderboard import RunEntry, short_label


def plot_leaderboard(runs: Sequence[RunEntry], metric: str, path: str | Path, top: int = 10) -> Path:
    """PNG: the ranking metric and the training loss per epoch for the `top` runs, and the leaderboard bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from twotower.io.atomic import atomic_path

    shown = [r for r in runs if metric in r.metrics][:top]
    if not shown:
        raise ValueError(f"no run has the metric {metric!r} to plot")
    fig, (ax_metric, ax_loss, ax_bar) = plt.subplots(
        1, 3, figsize=(18, 5.5), gridspec_kw={"width_ratios": [1, 1, 1.15]}
    )
    colours = plt.get_cmap("tab10")
    for i, run in enumerate(shown):
        epochs = [e for e in run.epochs if e.get("epoch") is not None]
        x = [e["epoch"] for e in epochs]  # 0-based, as in metrics.json and the table; -1 is the start
        label = short_label(run.label)
        ax_metric.plot(x, [e.get(metric, float("nan")) for e in epochs], marker="o", color=colours(i % 10), label=label)
        if any(e.get("train_loss") is not None for e in epochs):
            ax_loss.plot(
                x,
                [float("nan") if e.get("train_loss") is None else e["train_loss"] for e in epochs],
                marker="o",
                color=colours(i % 10),
                label=label,
            )
    ax_metric.set(title=f"{metric} per epoch (dev)", xlabel="epoch", ylabel=metric)
    ax_loss.set(title="training loss per epoch", xlabel="epoch", ylabel="train loss")
    for ax in (ax_metric, ax_loss):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax_metric.legend(fontsize=8, loc="best")
    names = [short_label(r.label) for r in shown][::-1]
    values = [r.metrics[metric] for r in shown][::-1]
    bars = ax_bar.barh(range(len(shown)), values, color=[colours((len(shown) - 1 - i) % 10) for i in range(len(shown))])
    ax_bar.set_yticks(range(len(shown)), names, fontsize=8)
    for bar, value in zip(bars, values):
        ax_bar.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.4f}", va="center", fontsize=8)
    ax_bar.set(title=f"leaderboard: best {metric}", xlabel=metric, xlim=(0, max(values) * 1.18 or 1))
    ax_bar.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
