"""Export a checkpoint as a sentence-transformers model folder: `twotower export --ckpt best.pt --out DIR`.

`SentenceTransformer(DIR)` then encodes to the vectors our encoder gives (tested to 1e-5): a static mean
tower becomes a `StaticEmbedding` over its folded table (see `MeanTower.folded_table`) and `Normalize`; a
transformer tower becomes `Transformer`, `Pooling`, an optional `Dense` head and `Normalize`. Queries and
passages are truncated at different lengths and may use separate towers, so the two sides become the
`query` and `document` routes of a `Router` (`model.encode_query` / `model.encode_document`); plain
`model.encode` takes the document route. Recurrent towers have no sentence-transformers equivalent and are
refused with a clear error. The folder carries a model card with the training config and dev metrics.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import yaml

from twotower.io.atomic import atomic_path
from twotower.io.output import check_output, mark_output
from twotower.models.checkpoint import load_checkpoint, model_from_checkpoint
from twotower.models.tower import ExportError

CARD_METRICS = ("mrr@10", "recall@10", "recall@100", "ndcg@10", "map")


def export_sentence_transformer(
    ckpt: str | Path, out: str | Path, verify: bool = True, overwrite: bool = False
) -> Path:
    """Write the sentence-transformers folder of checkpoint `ckpt` to `out` (atomically) and return it.

    `out` may be new, empty, or a folder an earlier export wrote (replaced); anything else is refused unless
    `overwrite` (see `twotower.io.output`)."""
    out = check_output(out, "export", overwrite=overwrite, recognise=_exported)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Router

    payload = load_checkpoint(ckpt, verify)
    model = model_from_checkpoint(payload, ckpt).cpu()
    query = model.query_tower.export_modules(model.query_max_length)
    document = model.document_tower.export_modules(model.doc_max_length)
    router = Router({"query": query, "document": document}, default_route="document")
    st = SentenceTransformer(modules=[router], device="cpu")
    with atomic_path(out) as tmp:
        st.save(str(tmp))
        _check_whole(tmp, out)
        (tmp / "README.md").write_text(model_card(payload, out.name))
        mark_output(tmp, "export")
    return out


def _check_whole(folder: Path, out: Path) -> None:
    """Every weights file opens: safetensors does not report a full disk, it leaves a short file."""
    from safetensors import safe_open

    for path in sorted(folder.rglob("*.safetensors")):
        try:
            with safe_open(str(path), "pt"):
                pass
        except Exception as exc:
            raise ExportError(
                f"{path.relative_to(folder)} was not written whole ({exc}); is the disk full? nothing was kept at {out}"
            ) from None


def _exported(folder: Path) -> bool:
    """A folder an export wrote before the output marker existed: our model card beside modules.json."""
    card = folder / "README.md"
    return (folder / "modules.json").is_file() and card.is_file() and "trained with [twotower]" in card.read_text()


def model_card(payload: dict[str, Any], name: str) -> str:
    """A Hub model card: what the model is, how it was trained (the run's config) and its dev metrics."""
    stats = payload.get("training_stats") or {}
    config = stats.get("config") or {}
    best = stats.get("best_metrics") or payload.get("eval_results") or {}
    tower = (payload["model_config"].get("tower") or {}).get("_target_", "?").rsplit(".", 1)[-1]
    rows = "\n".join(f"| {m} | {best[m]:.4f} |" for m in CARD_METRICS if m in best) or "| (none recorded) | |"
    return f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags: [sentence-transformers, feature-extraction, twotower, ms-marco]
---

# {name}

A two-tower retrieval model ({tower}) trained with [twotower](https://pypi.org/project/twotower/) on MS MARCO
passage ranking, exported to the sentence-transformers format. Queries and passages have their own routes.

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{name}")
queries = model.encode_query(["how long to boil an egg"])
passages = model.encode_document(["Boil the egg for seven minutes."])
scores = model.similarity(queries, passages)
```

LangChain: `HuggingFaceEmbeddings(model_name="{name}", encode_kwargs={{"normalize_embeddings": True}})`
(`langchain_huggingface`); LlamaIndex: `HuggingFaceEmbedding(model_name="{name}")`
(`llama_index.embeddings.huggingface`). Push to the Hub with `SentenceTransformer("{name}").push_to_hub("you/{name}")`.

## Dev metrics (full-corpus retrieval, best epoch {stats.get("best_epoch", "?")})

| metric | value |
|---|---|
{rows}

## Training configuration

```yaml
{yaml.safe_dump(config, sort_keys=False).strip() if config else "# not recorded"}
```
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a twotower best.pt / last.pt")
    parser.add_argument("--out", required=True, help="the sentence-transformers model folder to write")
    parser.add_argument("--no-verify", action="store_true", help="skip the checkpoint's checksum (huge files)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out even if export did not write it")


def run(args: argparse.Namespace) -> int:
    out = export_sentence_transformer(args.ckpt, args.out, verify=not args.no_verify, overwrite=args.overwrite)
    print(json.dumps({"exported": str(out), "load_with": f"SentenceTransformer({str(out)!r})"}))
    return 0


__all__ = ["ExportError", "configure", "export_sentence_transformer", "model_card", "run"]
