"""A run folder is self-contained (issue 18, class 1).

Copy or move a run folder and resume it: everything the resumed run writes lands in the folder being resumed,
and the original's files stay byte for byte what they were. Before the fix `config.yaml` kept the original's
absolute paths (checkpoint dirpaths, logger save_dir, trainer.default_root_dir), so resuming a copy rewrote
the original's `last.ckpt` and `metrics.json`. And `config.yaml` must still say what the run was trained
under: an edited file is refused naming the keys, since overrides are the one way to change a setting.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from twotower.cli import main


@pytest.fixture
def original(trained_run) -> Path:
    return trained_run


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def epochs(run_dir: Path) -> list[int]:
    return [e["epoch"] for e in json.loads((run_dir / "metrics.json").read_text())["epochs"]]


def test_resuming_a_copy_never_writes_into_the_original(original, tmp_path):
    before = snapshot(original)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)

    assert main(["resume", str(copy), "trainer.max_epochs=2"]) == 0

    assert snapshot(original) == before
    assert epochs(copy) == [-1, 0, 1] and epochs(original) == [-1, 0]
    assert str(original) not in (copy / "config.yaml").read_text()


def test_resuming_a_moved_run_writes_only_where_it_now_is(original, tmp_path):
    before = snapshot(original)
    first, moved = tmp_path / "first", tmp_path / "elsewhere" / "moved"
    shutil.copytree(original, first)
    moved.parent.mkdir()
    shutil.move(first, moved)

    assert main(["resume", str(moved), "trainer.max_epochs=2"]) == 0

    assert not first.exists()  # nothing recreated where the folder used to be
    assert epochs(moved) == [-1, 0, 1]
    assert snapshot(original) == before


def test_an_edited_config_yaml_is_refused_naming_the_keys(original, tmp_path, capsys):
    copy = tmp_path / "edited"
    shutil.copytree(original, copy)
    text = (copy / "config.yaml").read_text()
    assert "  batch_size: 32\n" in text
    (copy / "config.yaml").write_text(text.replace("  batch_size: 32\n", "  batch_size: 64\n", 1))
    before = snapshot(copy)

    assert main(["resume", str(copy)]) == 1

    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "config.yaml was edited" in err[0] and "data.batch_size is 64" in err[0], err
    assert snapshot(copy) == before


def test_resuming_keeps_the_csv_log_of_the_epochs_before(original, tmp_path):
    import csv

    run = tmp_path / "run"
    shutil.copytree(original, run)

    assert main(["resume", str(run), "trainer.max_epochs=2"]) == 0

    rows = list(csv.DictReader((run / "csv" / "metrics.csv").open()))
    assert sorted({int(r["epoch"]) for r in rows if r.get("eval/mrr@10")}) == [-1, 0, 1]
