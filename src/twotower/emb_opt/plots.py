"""PNG plots of a search: query trajectories, and the best score found so far against score calls.

Figures are drawn on matplotlib's Agg canvas directly, so plotting never touches the global backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from twotower.emb_opt.log import SearchLog
from twotower.io.atomic import atomic_path


def _figure(width: float, height: float, ncols: int):  # noqa: ANN202 - matplotlib types
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def _save(fig, path: str | os.PathLike) -> Path:  # noqa: ANN001
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_trajectories(log: SearchLog, path: str | os.PathLike, max_lines: int = 24) -> Path:
    """Left: queries moving through a 2-D PCA of the space, over the scored items coloured by score.
    Right: each trajectory's best result score per iteration. Draws the `max_lines` trajectories that
    reached the best scores (longest first among equals)."""
    from matplotlib import colormaps

    trajectories = log.compile_trajectories()
    if not trajectories:
        raise ValueError("the log holds no iterations: nothing to plot")
    ends = np.array([np.nanmax(t.max_scores) if np.isfinite(t.max_scores).any() else -np.inf for t in trajectories])
    lengths = np.array([len(t.query_ids) for t in trajectories])
    # Best first; among equals (branches through the same best item) the longest, which show the most.
    shown = [trajectories[i] for i in np.lexsort((-lengths, -ends))[:max_lines]]

    results = log.compile_results(vectors=True)
    items = np.stack(results["vector"].to_numpy()) if len(results) else np.zeros((0, log.dim))
    paths = np.concatenate([t.vectors for t in shown])
    basis_data = np.concatenate([items, paths]).astype(np.float64)
    mean = basis_data.mean(axis=0)
    # PCA via SVD of the centred points: the plane where queries and found items spread the most.
    _, _, vt = np.linalg.svd(basis_data - mean, full_matrices=False)
    project = lambda x: (np.asarray(x, dtype=np.float64) - mean) @ vt[:2].T  # noqa: E731

    fig, (ax_space, ax_score) = _figure(12, 5, 2)
    if len(items):
        xy = project(items)
        order = np.argsort(results["score"].to_numpy())  # best items drawn last, on top
        points = ax_space.scatter(
            xy[order, 0],
            xy[order, 1],
            c=results["score"].to_numpy()[order],
            s=6,
            cmap="viridis",
            alpha=0.7,
            linewidths=0,
        )
        fig.colorbar(points, ax=ax_space, label="item score")
    cmap = colormaps["tab10"]
    for i, t in enumerate(shown):
        xy = project(t.vectors)
        ax_space.plot(xy[:, 0], xy[:, 1], "-", color=cmap(i % 10), lw=1.2, alpha=0.9)
        ax_space.plot(xy[0, 0], xy[0, 1], "o", color=cmap(i % 10), ms=4)
        ax_space.plot(xy[-1, 0], xy[-1, 1], "*", color=cmap(i % 10), ms=9, mec="black", mew=0.5)
        ax_score.plot(t.iterations, t.max_scores, "-", color=cmap(i % 10), lw=1.2, alpha=0.9)
    ax_space.set(
        title=f"Query trajectories (PCA; o start, * end; best {len(shown)} of {len(trajectories)})",
        xlabel="PC 1",
        ylabel="PC 2",
    )
    ax_score.set(title="Best result score per query", xlabel="iteration", ylabel="max score of the query's results")
    ax_score.grid(alpha=0.3)
    return _save(fig, path)


def plot_best_so_far(log: SearchLog, path: str | os.PathLike, n_items: int | None = None) -> Path:
    """Best score found so far against score calls (left) and iterations (right); `n_items` (the index
    size) adds the calls as a share of the index on a top axis."""
    curve = log.best_so_far()
    if curve.empty:
        raise ValueError("the log holds no iterations: nothing to plot")
    fig, (ax_calls, ax_iter) = _figure(11, 4.2, 2)
    ax_calls.plot(curve["calls"], curve["best_score"], "o-", ms=3)
    ax_calls.set(title="Best score so far vs score calls", xlabel="score calls", ylabel="best score so far")
    ax_calls.set_xlim(left=0)
    if n_items:
        top = ax_calls.secondary_xaxis("top", functions=(lambda c: 100 * c / n_items, lambda p: p * n_items / 100))
        top.set_xlabel("% of the index scored")
    steps = log.steps
    ax_iter.plot(curve["iteration"], curve["best_score"], "o-", ms=3, label="best so far")
    ax_iter.plot(steps["iteration"], steps["step_best"], ".", alpha=0.6, label="best in this iteration")
    ax_iter.set(title="Best score per iteration", xlabel="iteration", ylabel="score")
    ax_iter.legend()
    for ax in (ax_calls, ax_iter):
        ax.grid(alpha=0.3)
    return _save(fig, path)
