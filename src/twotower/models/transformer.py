"""A pretrained Hugging Face encoder as a tower: y = normalise([W] pool(BERT(x))), pooling `mean` or `cls`.

Any local model folder works (a sentence-transformers folder such as the shipped all-MiniLM-L6-v2, or a bare
Hugging Face one with `config.json` and a tokenizer). The tower owns its tokenizer and, for its checkpoint,
carries the backbone's config and tokenizer files, so a `.pt` rebuilds without the original folder. The
backbone can learn at its own rate (`backbone_lr`) beside the optional head's (biases and LayerNorm weights
without weight decay, as in sentence-transformers), and trade compute for memory with gradient checkpointing.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from twotower.models.pretrained import minilm_path
from twotower.models.tower import Tower

POOLINGS = ("mean", "cls")


def check_model_folder(path: str | Path) -> Path:
    """`path` if it is a transformer folder; otherwise a clear error naming it and the setting."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"transformer model folder not found: {path} (set model.tower.path to a local "
            "Hugging Face or sentence-transformers model folder)"
        )
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} is not a transformer model folder: it has no config.json (model.tower.path)")
    if not any((path / n).is_file() for n in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise ValueError(f"{path} holds no tokenizer (tokenizer.json or vocab.txt): model.tower.path")
    return path


class TransformerTower(Tower):
    """Hugging Face encoder + pooling (+ optional linear head) + L2 normalisation.

    Built from `path` (a local model folder; default the shipped all-MiniLM-L6-v2), or, when rebuilt from a
    checkpoint, from `backbone_config` and `tokenizer_files` alone (the weights come from the state dict).
    """

    uses_vocabulary = False
    encode_batch_size = 128  # a transformer's activations grow with the batch; 128 x 128 tokens fits a CPU

    def __init__(
        self,
        path: str | None = None,
        pooling: str = "mean",
        output_dim: int = 0,
        backbone_lr: float | None = None,
        gradient_checkpointing: bool = False,
        decay_norms_and_biases: bool = True,
        backbone_config: dict | None = None,
        tokenizer_files: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if pooling not in POOLINGS:
            raise ValueError(f"model.tower.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.backbone_lr = backbone_lr
        # false (the shipped config): biases and LayerNorm weights take no weight decay. The default `true` is
        # how runs before that change were optimised: their config.yaml lacks the key, so they resume with the
        # optimizer groups their last.ckpt holds.
        self.decay_norms_and_biases = decay_norms_and_biases
        if backbone_config is not None and tokenizer_files is not None:
            config = dict(backbone_config)
            self.backbone = AutoModel.from_config(AutoConfig.for_model(config.pop("model_type"), **config))
            with tempfile.TemporaryDirectory() as tmp:
                for name, text in tokenizer_files.items():
                    (Path(tmp) / name).write_text(text)
                self.tokenizer = AutoTokenizer.from_pretrained(tmp)
        else:
            folder = check_model_folder(path or minilm_path())
            try:
                self.backbone = AutoModel.from_pretrained(str(folder))
                self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
            except (OSError, ValueError, KeyError) as exc:
                raise ValueError(f"{folder} is not a loadable transformer ({type(exc).__name__}: {exc})") from None
        rows = self.backbone.get_input_embeddings().num_embeddings
        if len(self.tokenizer) > rows:
            raise ValueError(
                f"tokenizer and model do not match: the tokenizer has {len(self.tokenizer)} tokens "
                f"but the model's embedding table {rows} rows"
            )
        # `from_pretrained` leaves the model in eval mode; a tower starts in train mode like any module, so
        # the backbone's dropout is on while fine-tuning (as in sentence-transformers) and off in `eval()`.
        self.backbone.train()
        if gradient_checkpointing:
            self.backbone.gradient_checkpointing_enable()
        hidden = self.backbone.config.hidden_size
        self.head = nn.Linear(hidden, output_dim) if output_dim else None
        self.output_dim = output_dim or hidden

    def tokenize(self, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
        out = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {k: v for k, v in out.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.backbone(**features).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        if self.head is not None:
            pooled = self.head(pooled)
        return F.normalize(pooled, dim=-1)

    def token_counts(self, text: str) -> tuple[int, int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return len(ids), sum(1 for i in ids if i == self.tokenizer.unk_token_id)

    def parameter_groups(self, lr: float) -> list[dict[str, Any]]:
        """The backbone at `backbone_lr` (else `lr`), the head at `lr`; each split in two, as BERT, Hugging Face's
        Trainer and sentence-transformers' `fit` do: matrices take the optimizer's weight decay, biases and
        LayerNorm weights (every parameter of fewer than 2 dimensions) take none (unless
        `decay_norms_and_biases`, one group per part, as before that split)."""
        groups = []
        for module, rate in ((self.backbone, self.backbone_lr or lr), (self.head, lr)):
            params = [p for p in module.parameters() if p.requires_grad] if module is not None else []
            if self.decay_norms_and_biases:
                groups.append({"params": params, "lr": rate})
                continue
            groups.append({"params": [p for p in params if p.ndim >= 2], "lr": rate})
            groups.append({"params": [p for p in params if p.ndim < 2], "lr": rate, "weight_decay": 0.0})
        return [g for g in groups if g["params"]]

    def checkpoint_fields(self) -> dict[str, Any]:
        """What a checkpoint needs besides the weights: the backbone config and the tokenizer files."""
        config = self.backbone.config.to_dict()
        with tempfile.TemporaryDirectory() as tmp:
            self.tokenizer.save_pretrained(tmp)
            files = {p.name: p.read_text() for p in Path(tmp).iterdir() if p.is_file()}
        return {"backbone_config": config, "tokenizer_files": files}

    def export_modules(self, max_length: int) -> list[nn.Module]:
        from sentence_transformers.base.modules import Dense, Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling

        folder = Path(tempfile.mkdtemp(prefix="twotower-export-"))
        self.backbone.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        transformer = Transformer(str(folder), max_seq_length=max_length)
        modules: list[nn.Module] = [transformer, Pooling(self.backbone.config.hidden_size, pooling_mode=self.pooling)]
        if self.head is not None:
            dense = Dense(self.head.in_features, self.head.out_features, bias=True, activation_function=nn.Identity())
            dense.linear.load_state_dict(self.head.state_dict())
            modules.append(dense)
        return modules + [Normalize()]
