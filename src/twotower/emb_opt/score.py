"""The black-box score, wrapped with a cache so each item is scored at most once, and a call counter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from twotower.emb_opt.items import Item, Items


class Score:
    """A score over items, called at most once per item id.

    `fn` is batched (`fn(items: Items) -> n floats`, default) or per item (`fn(item: Item) -> float`,
    `batched=False`). NaN means "no score": the item is logged but kept out of the updates.
    `errors="raise"` lets an exception through (items scored before it stay cached); `errors="nan"` records
    NaN for the item (per item) or the batch (batched) that raised and goes on, counting them in `failed`.

    `calls` counts items passed to `fn`, `batches` the invocations of `fn`.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        batched: bool = True,
        batch_size: int | None = None,
        errors: Literal["raise", "nan"] = "raise",
    ) -> None:
        if not callable(fn):
            raise TypeError(f"score must be callable, got {type(fn).__name__}")
        if errors not in ("raise", "nan"):
            raise ValueError(f"errors must be 'raise' or 'nan', got {errors!r}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
        self.fn = fn
        self.batched = batched
        self.batch_size = batch_size
        self.errors = errors
        self.cache: dict[Any, float] = {}
        self.calls = 0
        self.batches = 0
        self.failed = 0
        self.last_error: BaseException | None = None

    def __call__(self, items: Items) -> np.ndarray:
        """Scores of `items` (float64, in order); only ids not seen before reach `fn`."""
        keys = items.ids.tolist()
        todo: dict[Any, int] = {}
        for i, key in enumerate(keys):
            if key not in self.cache and key not in todo:
                todo[key] = i
        if todo:
            self._score(items.select(np.fromiter(todo.values(), dtype=np.int64, count=len(todo))))
        return np.fromiter((self.cache[key] for key in keys), dtype=np.float64, count=len(keys))

    def _score(self, items: Items) -> None:
        if not self.batched:
            for item in items:
                self._store([item.id], lambda item=item: [self._call(item)])
            return
        size = self.batch_size or len(items)
        for start in range(0, len(items), size):
            batch = items.select(slice(start, start + size))
            self._store(batch.ids.tolist(), lambda batch=batch: self._call(batch))

    def _call(self, arg: Item | Items) -> Any:
        self.batches += 1
        self.calls += len(arg) if isinstance(arg, Items) else 1
        return self.fn(arg)

    def _store(self, keys: list[Any], compute: Callable[[], Any]) -> None:
        try:
            values = compute()
        except Exception as err:  # the caller's score may raise anything
            if self.errors == "raise":
                raise
            self.last_error = err
            self.failed += len(keys)
            values = [np.nan] * len(keys)
        else:
            values = _as_scores(values, len(keys), self.batched)
        self.cache.update(zip(keys, values.tolist() if isinstance(values, np.ndarray) else values))


def _as_scores(values: Any, n: int, batched: bool) -> np.ndarray:
    """The score's output as n floats, or a ValueError saying what came back instead."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"score must return numbers, got {type(values).__name__}: {err}") from err
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]  # a (n, 1) column from a model head is fine
    if array.shape != (n,):
        hint = "; a per-item score needs Score(fn, batched=False)" if batched and array.ndim == 0 else ""
        raise ValueError(f"score returned shape {array.shape} for {n} items; expected ({n},){hint}")
    return array


def as_score(score: Score | Callable[[Items], Any]) -> Score:
    """`score` itself if it is a `Score`, else a batched `Score` around the callable."""
    return score if isinstance(score, Score) else Score(score)
