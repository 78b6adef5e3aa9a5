"""Old config keys that still work: overrides and saved run configs are rewritten to today's layout.

Issue 19 moved three settings to their owners (see CHANGELOG.md):

| old key                          | today                                  |
|----------------------------------|----------------------------------------|
| `negatives.<field>`              | `data.prepare.negatives.<field>`       |
| `tokenizer.<field>`              | `model.tokenizer.<field>`              |
| `data.query_max_length` / `data.doc_max_length` | `model.query_max_length` / `model.doc_max_length` |

Group choices (`negatives=bm25`, `tokenizer=glove`) are unchanged: the groups land at their new place by
Hydra's package directive. A rewritten override is logged once, so scripts can be updated at leisure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

# old dotted prefix -> new dotted prefix (a key equal to the prefix, or starting with it plus ".")
RENAMED_PREFIXES = {
    "negatives.": "data.prepare.negatives.",
    "tokenizer.": "model.tokenizer.",
}
RENAMED_KEYS = {
    "data.query_max_length": "model.query_max_length",
    "data.doc_max_length": "model.doc_max_length",
}
_PLUS_TILDE = ("++", "+", "~")


def renamed_key(key: str) -> str:
    """Today's name of a dotted config key (`negatives.depth` -> `data.prepare.negatives.depth`)."""
    if key in RENAMED_KEYS:
        return RENAMED_KEYS[key]
    for old, new in RENAMED_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def upgrade_overrides(overrides: Iterable[str]) -> list[str]:
    """Hydra command-line overrides with old keys renamed (`+`/`++`/`~` prefixes kept; group choices such as
    `negatives=bm25` and anything that is not `key=value` pass through untouched)."""
    upgraded = []
    for item in overrides:
        prefix = next((p for p in _PLUS_TILDE if item.startswith(p)), "")
        key, sep, value = item[len(prefix) :].partition("=")
        new = renamed_key(key) if (sep or prefix == "~") and not key.startswith("-") else key
        if new != key:
            log.warning("config key %s is now %s (the old name still works; see CHANGELOG.md)", key, new)
        upgraded.append(prefix + new + sep + value if new != key else item)
    return upgraded


def upgrade_run_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A run config saved before issue 19, in today's layout: token limits under `model`, the tokenizer
    under `model.tokenizer`, the negative source only at `data.prepare.negatives` (it used to be a top-level
    group interpolated into `data`). A config already in today's layout is returned unchanged."""
    data, model = saved.get("data"), saved.get("model")
    if isinstance(data, dict) and isinstance(model, dict):
        for name in ("query_max_length", "doc_max_length"):
            if name in data:
                model.setdefault(name, data.pop(name))
    if "tokenizer" in saved and isinstance(model, dict):
        model.setdefault("tokenizer", saved.pop("tokenizer"))
    if "negatives" in saved:
        negatives = saved.pop("negatives")
        if isinstance(data, dict) and negatives is not None:
            prepare = data.setdefault("prepare", {})
            if isinstance(prepare, dict) and prepare.get("negatives") in (None, "${negatives}"):
                prepare["negatives"] = negatives
    return saved


def place_groups(cfg: DictConfig) -> DictConfig:
    """A composed config with a `negatives` or `tokenizer` option written before issue 19 (a YAML of the
    user's own without the `# @package` line the shipped ones carry, so it landed at the top level) moved to
    where it is used, with a warning: such a file must not be silently ignored."""
    for old, new in (("negatives", "data.prepare.negatives"), ("tokenizer", "model.tokenizer")):
        if old in cfg:
            log.warning("config group %s landed at the top level: add `# @package %s` to its YAML", old, new)
            with open_dict(cfg):
                OmegaConf.update(cfg, new, cfg[old], merge=False, force_add=True)
                del cfg[old]
    return cfg
