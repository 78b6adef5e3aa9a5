"""The item records that filters and scores receive: ids, vectors, stored fields, distance to the query."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Item:
    """One item: what a per-item score receives."""

    id: Any
    vector: np.ndarray
    fields: Mapping[str, Any] = field(default_factory=dict)
    distance: float | None = None


@dataclass(frozen=True)
class Items:
    """A batch of n items, column-wise: what a batched score or a filter receives.

    `ids` (n,), `vectors` (n, dim), `fields` {name: (n,)}, `distances` (n,) to the query that retrieved
    the item (None where there is no query, e.g. when scoring a list of items directly).
    """

    ids: np.ndarray
    vectors: np.ndarray
    fields: Mapping[str, np.ndarray] = field(default_factory=dict)
    distances: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.vectors.ndim != 2 or len(self.vectors) != n:
            raise ValueError(f"Items: vectors must have shape ({n}, dim), got {self.vectors.shape}")
        for name, values in self.fields.items():
            if len(values) != n:
                raise ValueError(f"Items: field {name!r} has {len(values)} values for {n} items")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Item:
        return Item(
            id=self.ids[i].item() if isinstance(self.ids[i], np.generic) else self.ids[i],
            vector=self.vectors[i],
            fields={name: values[i] for name, values in self.fields.items()},
            distance=None if self.distances is None else float(self.distances[i]),
        )

    def __iter__(self) -> Iterator[Item]:
        return (self[i] for i in range(len(self)))

    def select(self, index: np.ndarray) -> Items:
        """The items at `index` (a boolean mask or integer positions)."""
        return Items(
            ids=self.ids[index],
            vectors=self.vectors[index],
            fields={name: values[index] for name, values in self.fields.items()},
            distances=None if self.distances is None else self.distances[index],
        )
