"""Filters: drop retrieved items before they are scored, so the score is never paid for them.

A filter is any callable `filter(items: Items) -> (n,) bool`, True = keep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from twotower.emb_opt.items import Items

Filter = Callable[[Items], Any]


class MaxDistance:
    """Keep items within `max_distance` of their query (squared L2 as the index reports it)."""

    def __init__(self, max_distance: float) -> None:
        self.max_distance = max_distance

    def __call__(self, items: Items) -> np.ndarray:
        if items.distances is None:
            raise ValueError("MaxDistance needs items retrieved by a query (items.distances is None)")
        return items.distances <= self.max_distance


class FieldIn:
    """Keep items whose stored field `field` takes one of `values` (or none of them with `exclude=True`)."""

    def __init__(self, field: str, values: Iterable[Any], exclude: bool = False) -> None:
        self.field = field
        self.values = list(values)
        self.exclude = exclude

    def __call__(self, items: Items) -> np.ndarray:
        if self.field not in items.fields:
            raise KeyError(f"FieldIn: items have no field {self.field!r}; stored fields: {sorted(items.fields)}")
        inside = np.isin(items.fields[self.field], self.values)
        return ~inside if self.exclude else inside


class ExcludeIds:
    """Drop the given item ids, e.g. items already known or already tested elsewhere."""

    def __init__(self, ids: Iterable[Any]) -> None:
        self.ids = np.asarray(list(ids))

    def __call__(self, items: Items) -> np.ndarray:
        return ~np.isin(items.ids, self.ids)


class AllOf:
    """Keep items that every one of `filters` keeps."""

    def __init__(self, filters: Iterable[Filter]) -> None:
        self.filters = list(filters)

    def __call__(self, items: Items) -> np.ndarray:
        keep = np.ones(len(items), dtype=bool)
        for f in self.filters:
            keep &= check_mask(f(items), len(items))
        return keep


def check_mask(mask: Any, n: int) -> np.ndarray:
    """A filter's output as an (n,) bool array, or a ValueError saying what came back."""
    array = np.asarray(mask)
    if array.shape != (n,) or array.dtype != bool:
        raise ValueError(f"filter must return an ({n},) bool array, got shape {array.shape} dtype {array.dtype}")
    return array
