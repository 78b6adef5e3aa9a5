"""A missing input names the path, and the data setting only when the path comes from the data folder."""

import pytest

from twotower.io.paths import require


def test_a_missing_file_in_the_data_folder_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("TWOTOWER_DATA", str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=r"qrels not found: .*qrels.dev.tsv\. Data is read from \$TWOTOWER_DATA"
    ):
        require(tmp_path / "msmarco-passage" / "qrels.dev.tsv", "qrels")


def test_a_missing_file_the_user_named_elsewhere_is_only_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TWOTOWER_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match=r"^queries not found: /\S+/my-queries\.tsv$"):
        require(tmp_path / "my-queries.tsv", "queries")


def test_a_configured_data_folder_anywhere_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("TWOTOWER_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match=r"passages not found: .*elsewhere\. Data is read from"):
        require(tmp_path / "elsewhere", "passages", data_folder=True)
