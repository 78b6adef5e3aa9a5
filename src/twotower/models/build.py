"""Build a `TwoTower` from a tower constructor, and rebuild one from a checkpoint through an allow-list.

Training builds towers from the configs we ship (`twotower/conf/model/*`, Hydra partials). A checkpoint is a file a
user passes in: the class it names is looked up in `TOWERS`, our own towers under their current and former
paths, and anything else is refused, so a crafted `.pt` cannot make loading call an arbitrary function.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from twotower.models.recurrent import GRUTower, LSTMTower, RNNTower
from twotower.models.static import MeanTower, make_embedding
from twotower.models.tower import Tower, TwoTower
from twotower.models.transformer import TransformerTower

TOWERS: dict[str, type[Tower]] = {}
for _cls in (MeanTower, GRUTower, LSTMTower, RNNTower, TransformerTower):
    TOWERS[f"{_cls.__module__}.{_cls.__name__}"] = _cls
    TOWERS[f"twotower.towers.{_cls.__name__}"] = _cls  # checkpoints written before the package was regrouped


class UntrustedTowerError(ValueError):
    """A checkpoint names a tower class that is not one of ours."""


def tower_class(name: str) -> type[Tower]:
    if name not in TOWERS:
        raise UntrustedTowerError(
            f"the checkpoint names tower class {name!r}, which is not one of twotower's "
            f"towers ({', '.join(sorted({c.__name__ for c in TOWERS.values()}))}); "
            "refusing to build it"
        )
    return TOWERS[name]


def tower_class_of(factory: Callable[..., Tower]) -> type:
    return getattr(factory, "func", factory)


def build_two_tower(
    tower: Callable[..., Tower],
    tokenizer=None,
    shared: bool = True,
    freeze_embeddings: bool = False,
    query_max_length: int = 32,
    doc_max_length: int = 128,
    idf=None,
) -> TwoTower:
    """Query and document towers from a tower constructor (a Hydra partial, or a class with its arguments bound).

    Vocabulary towers get `tokenizer` and one embedding table made from its matrix (shared between separate
    query and document towers); a transformer tower brings its own tokenizer."""
    cls = tower_class_of(tower)
    extra: dict[str, Any] = {}
    if getattr(cls, "uses_vocabulary", False):
        if tokenizer is None:
            raise ValueError(f"{cls.__name__} needs a tokenizer (config group `tokenizer`)")
        if tokenizer.embedding_matrix is None:
            raise ValueError(f"the tokenizer has no embedding matrix to start {cls.__name__} from")
        extra = {
            "tokenizer": tokenizer,
            "embedding": make_embedding(torch.as_tensor(tokenizer.embedding_matrix), freeze=freeze_embeddings),
        }
        idf = tokenizer.idf if idf is None else idf
        if idf is not None and "idf" in inspect.signature(cls).parameters:
            extra["idf"] = torch.as_tensor(idf)
    query_tower = tower(**extra)
    document_tower = None if shared else tower(**extra)
    return TwoTower(query_tower, document_tower, query_max_length, doc_max_length)


def tower_factory(tower_config: dict[str, Any], fields: dict[str, Any] | None = None) -> Callable[..., Tower]:
    """A constructor for the tower a checkpoint's `model_config.tower` describes, through the allow-list."""
    config = dict(tower_config)
    name = config.pop("_target_", None) or config.pop("class", None)
    config.pop("_partial_", None)
    cls = tower_class(str(name))
    accepted = inspect.signature(cls).parameters
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise UntrustedTowerError(f"the checkpoint gives {cls.__name__} settings it does not take: {unknown}")
    return functools.partial(cls, **config, **(fields or {}))
