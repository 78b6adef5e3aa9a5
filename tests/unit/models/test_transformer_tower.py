"""A pretrained Hugging Face encoder as a tower: pooling, its own tokenizer and learning rate, bad folders."""

from functools import partial

import pytest
import torch

from twotower.models.build import build_two_tower
from twotower.models.transformer import TransformerTower


def test_mean_pooled_unit_vectors_that_ignore_padding(tiny_bert):
    model = build_two_tower(partial(TransformerTower, path=str(tiny_bert)), query_max_length=8).eval()
    features = model.tokenize_queries(["cooking an egg", "a much longer query about boiling eggs in water"])
    assert set(features) >= {"input_ids", "attention_mask"} and features["input_ids"].shape[1] == 8
    out = model.encode_queries(features)
    assert out.shape == (2, 32) and torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)
    alone = model.encode_queries(model.tokenize_queries(["cooking an egg"]))
    assert torch.allclose(alone[0], out[0], atol=1e-5)  # padding next to a longer text changes nothing


def test_cls_pooling_and_a_linear_head(tiny_bert):
    tower = TransformerTower(str(tiny_bert), pooling="cls", output_dim=16).eval()
    assert tower(tower.tokenize(["egg"], 8)).shape == (1, 16)


def test_the_backbone_learns_at_its_own_rate_and_only_matrices_decay(tiny_bert):
    tower = TransformerTower(str(tiny_bert), output_dim=16, backbone_lr=1e-5, decay_norms_and_biases=False)
    groups = tower.parameter_groups(1e-3)
    optimizer = torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01)  # as TwoTowerModule builds it
    head = {id(p) for p in tower.head.parameters()}
    for group in optimizer.param_groups:
        in_head = {id(p) in head for p in group["params"]}
        assert len(in_head) == 1 and group["lr"] == (1e-3 if in_head == {True} else 1e-5)
        # Biases and LayerNorm weights (1-d) never decay; weight matrices take optim.weight_decay.
        assert {p.ndim >= 2 for p in group["params"]} == {group["weight_decay"] > 0}
    layer_norm = tower.backbone.embeddings.LayerNorm.weight
    assert next(g["weight_decay"] for g in optimizer.param_groups if any(p is layer_norm for p in g["params"])) == 0
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for p in tower.parameters())


def test_a_run_configured_before_the_weight_decay_split_keeps_one_group_per_part(tiny_bert):
    """Its config.yaml has no `decay_norms_and_biases`: it resumes with the optimizer groups its last.ckpt holds."""
    tower = TransformerTower(str(tiny_bert), output_dim=16, backbone_lr=1e-5)
    assert [len(g["params"]) for g in tower.parameter_groups(1e-3)] == [
        len(list(tower.backbone.parameters())),
        len(list(tower.head.parameters())),
    ]


def test_separate_towers_have_separate_backbones(tiny_bert):
    model = build_two_tower(partial(TransformerTower, path=str(tiny_bert)), shared=False)
    assert model.query_tower.backbone is not model.document_tower.backbone


def test_gradient_checkpointing_still_trains(tiny_bert):
    tower = TransformerTower(str(tiny_bert), gradient_checkpointing=True).train()
    tower(tower.tokenize(["egg", "boil water"], 8)).sum().backward()
    assert tower.backbone.embeddings.word_embeddings.weight.grad is not None


def test_unknown_tokens_are_counted(tiny_bert):
    tower = TransformerTower(str(tiny_bert))
    assert tower.token_counts("egg 🥚") == (2, 1)


def test_a_folder_that_is_missing_or_not_a_transformer_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.tower.path"):
        TransformerTower(str(tmp_path / "nowhere"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=f"{tmp_path}.*no config.json"):
        TransformerTower(str(tmp_path))


def test_a_tokenizer_larger_than_the_model_is_refused(tiny_bert, tmp_path):
    import json
    import shutil

    for f in tiny_bert.iterdir():
        shutil.copy(f, tmp_path / f.name)
    config = json.loads((tmp_path / "config.json").read_text())
    config["vocab_size"] = 1000
    (tmp_path / "config.json").write_text(json.dumps(config))
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(**{k: v for k, v in config.items() if k != "architectures"})).save_pretrained(str(tmp_path))
    with pytest.raises(ValueError, match="tokenizer and model do not match"):
        TransformerTower(str(tmp_path))
