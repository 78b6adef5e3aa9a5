"""Merging the per-rank top-k lists of a sharded evaluation: every rank ends with the same global top-k.

`top_k` keeps the best `k` of each row by score, ties broken by lower corpus row, so a ranking does not depend
on the chunking or on the number of ranks; `gather_top_k` concatenates every rank's lists (through Lightning's
`trainer.strategy.all_gather`, or `dist_all_gather` for plain torch.distributed) and keeps the top `k` again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

AllGather = Callable[[torch.Tensor], "torch.Tensor | list[torch.Tensor]"]


def dist_all_gather(tensor: torch.Tensor) -> torch.Tensor:
    """`all_gather` over the default torch.distributed group: (world_size, *tensor.shape)."""
    import torch.distributed as dist

    out = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(out, tensor.contiguous())
    return torch.stack(out)


def top_k(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best `k` of each row by score, ties by lower corpus row; empty slots (row -1) go last."""
    order = np.lexsort((np.where(rows < 0, np.iinfo(np.int64).max, rows), -scores.astype(np.float64)), axis=-1)[:, :k]
    top_scores = np.take_along_axis(scores, order, axis=1)
    top_rows = np.take_along_axis(rows, order, axis=1)
    if top_scores.shape[1] < k:  # fewer candidates than k: pad, so every rank gathers the same shape
        pad = k - top_scores.shape[1]
        top_scores = np.pad(top_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        top_rows = np.pad(top_rows, ((0, 0), (0, pad)), constant_values=-1)
    return top_scores, top_rows


def gathered(all_gather: AllGather | None, tensor: torch.Tensor) -> torch.Tensor:
    out = all_gather(tensor)  # type: ignore[misc]
    return torch.stack(list(out)) if isinstance(out, (list, tuple)) else out


def gather_top_k(
    scores: np.ndarray, rows: np.ndarray, k: int, all_gather: AllGather, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Every rank's top-k lists -> the global top-k, the same on every rank."""
    all_scores = gathered(all_gather, torch.from_numpy(scores).to(device)).cpu().numpy()  # (world, nq, k)
    all_rows = gathered(all_gather, torch.from_numpy(rows).to(device)).cpu().numpy()
    return top_k(np.concatenate(list(all_scores), axis=1), np.concatenate(list(all_rows), axis=1), k)
