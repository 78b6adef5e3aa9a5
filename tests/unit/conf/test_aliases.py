"""Config keys moved by issue 19 still work under their old names (CHANGELOG.md lists them)."""

from omegaconf import OmegaConf

from twotower.api import compose_config
from twotower.conf.aliases import place_groups, upgrade_overrides, upgrade_run_config


def test_old_override_keys_are_renamed_and_group_choices_kept():
    assert upgrade_overrides(
        ["negatives=dense", "negatives.depth=30", "+tokenizer.min_freq=2", "data.doc_max_length=48", "~negatives.skip"]
    ) == [
        "negatives=dense",
        "data.prepare.negatives.depth=30",
        "+model.tokenizer.min_freq=2",
        "model.doc_max_length=48",
        "~data.prepare.negatives.skip",
    ]


def test_old_override_keys_compose_where_the_settings_live_now(tmp_path):
    cfg = compose_config(
        ["negatives=bm25", "negatives.depth=30", "data.query_max_length=16", "data.doc_max_length=48"],
        run_dir=tmp_path,
    )
    assert cfg.data.prepare.negatives.depth == 30
    assert (cfg.model.query_max_length, cfg.model.doc_max_length) == (16, 48)
    assert "negatives" not in cfg and "tokenizer" not in cfg and "doc_max_length" not in cfg.data


def test_a_run_config_saved_before_the_move_is_upgraded():
    bm25 = {"_target_": "twotower.data.negatives.BM25Negatives", "depth": 20}
    old = {
        "data": {"batch_size": 8, "query_max_length": 16, "doc_max_length": 64, "prepare": {"negatives": bm25}},
        "model": {"shared": True},
        "tokenizer": {"_target_": "twotower.models.tokenizers.WordPieceTokenizer.build", "_partial_": True},
        "negatives": bm25,
    }
    new = upgrade_run_config(old)
    assert new == {
        "data": {"batch_size": 8, "prepare": {"negatives": bm25}},
        "model": {"shared": True, "query_max_length": 16, "doc_max_length": 64, "tokenizer": old["model"]["tokenizer"]},
    }
    assert upgrade_run_config(new) == new  # today's layout is left alone


def test_a_users_option_file_without_the_package_line_still_takes_effect():
    cfg = OmegaConf.create({"negatives": {"depth": 7}, "data": {"prepare": {}}, "model": {}})
    OmegaConf.set_struct(cfg, True)
    place_groups(cfg)
    assert cfg.data.prepare.negatives.depth == 7 and "negatives" not in cfg


def test_modules_that_moved_out_of_the_package_root_still_import():
    import importlib

    import pytest

    import twotower.retrieval.bm25

    with pytest.warns(DeprecationWarning, match="twotower.bm25 moved to twotower.retrieval.bm25"):
        old = importlib.import_module("twotower.bm25")
    assert old is twotower.retrieval.bm25
