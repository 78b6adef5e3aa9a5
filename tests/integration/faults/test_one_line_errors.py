"""Every user error is one line (issue 18, class 6).

A damaged `last.ckpt`, a full disk, an output path naming a file, a junk sweep folder or `optuna.db`, a
numeric setting out of range, a checkpoint that is not there: each is `error: <Type>: <message>` naming the
file or setting, exit status 1, and no traceback; nothing half-written is left behind. Before the fix each of
these ended in a traceback (or, for `model.query_max_length=0`, in data work before any check).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import make_checkpoint

from twotower import api
from twotower.cli import main

ROOT = Path(__file__).resolve().parents[3]


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary files of an interrupted atomic write."""
    return [str(p) for p in folder.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.parent.name]


def test_a_truncated_last_ckpt_is_one_line_naming_it(trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])

    assert main(["resume", str(run)]) == 1

    line = one_line(capsys.readouterr().err)
    assert str(last) in line and "truncated" in line


def test_a_full_disk_while_training_is_one_line_with_error_txt_and_nothing_half_written(
    small_msmarco, tmp_path, capsys, monkeypatch
):
    import torch

    from twotower.errors import user_errors
    from twotower.models import checkpoint

    def no_space(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", no_space)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_:
        with user_errors(trace_dir=run_dir):  # what train.py wraps a run in
            api.train(
                ["data.batch_size=32", "trainer.limit_train_batches=2", "logger=csv", "tokenizer=glove"]
                + ["negatives=random", "model.tower.output_dim=16", "eval_max_queries=20", "trainer.max_epochs=1"],
                config={"data": {"dir": str(small_msmarco)}},
                run_dir=run_dir,
            )
    monkeypatch.setattr(checkpoint.torch, "save", torch.save)

    assert exit_.value.code == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: DiskFull: disk full while writing {run_dir / 'checkpoints'}")
    assert "Traceback" in (run_dir / "error.txt").read_text()
    assert not list((run_dir / "checkpoints").glob("*.pt")) and leftovers(run_dir) == []


def test_a_full_disk_while_exporting_is_one_line_and_leaves_no_folder(tmp_path, capsys, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "best.pt", ["boil an egg", "the cost of sales"])
    write_text = Path.write_text

    def no_space(self, *args, **kwargs):
        if self.name == "README.md":
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", no_space)
    out = tmp_path / "exported"

    assert main(["export", "--ckpt", str(ckpt), "--out", str(out)]) == 1

    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"error: DiskFull: disk full while writing {out}")
    assert not out.exists() and leftovers(tmp_path) == []


def test_synth_out_naming_a_file_is_one_line(msmarco_dir, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    source = msmarco_dir / "msmarco-passage"

    assert main(["synth", "--passages", "300", "--queries", "20", "--out", str(notes), "--source", str(source)]) == 1

    assert f"--out {notes} is a file" in one_line(capsys.readouterr().err)
    assert notes.read_text() == "keep me"


def sweep(args: list[str], capsys) -> str:
    from twotower.reporting.sweep import main as sweep_main

    with pytest.raises(SystemExit) as exit_:
        sweep_main(args)
    assert exit_.value.code == 1
    return one_line(capsys.readouterr().err)


def test_a_missing_or_file_sweep_folder_is_one_line(tmp_path, capsys):
    assert f"{tmp_path / 'nope'} does not exist" in sweep([str(tmp_path / "nope")], capsys)
    (tmp_path / "a-file").write_text("x")
    assert f"{tmp_path / 'a-file'} is a file, not a sweep folder" in sweep([str(tmp_path / "a-file")], capsys)


def test_a_junk_optuna_db_is_one_line_naming_it(trained_run, tmp_path, capsys):
    sweep_dir = tmp_path / "multirun"
    for n, seed in ((0, 1), (1, 2)):
        job = sweep_dir / f"{n}_seed={seed}"
        (job / ".hydra").mkdir(parents=True)
        shutil.copy(trained_run / "metrics.json", job / "metrics.json")
        shutil.copy(trained_run / "config.yaml", job / ".hydra" / "config.yaml")
        (job / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
        (job / ".hydra" / "hydra.yaml").write_text("hydra:\n  sweeper:\n    study_name: twotower\n")
    (sweep_dir / "optuna.db").write_text("this is not a database")

    line = sweep([str(sweep_dir)], capsys)

    assert f"{sweep_dir / 'optuna.db'} holds no readable Optuna study 'twotower'" in line


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.query_max_length=0", "model.query_max_length must be >= 1, got 0"),  # the old key still works
        ("model.doc_max_length=0", "model.doc_max_length must be >= 1, got 0"),
        ("model.tower.dropout=1.5", "model.tower.dropout must be in [0, 1), got 1.5"),
        ("scheduler.warmup_ratio=2", "scheduler.warmup_ratio must be in [0, 1], got 2.0"),
        ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches must be >= 1, got 0"),
        ("loss.temperature=0", "loss.temperature must be a finite number > 0, got 0.0"),
        ("seed=-1", "seed must be in [0, 4294967295], got -1"),
    ],
)
def test_a_numeric_setting_out_of_range_is_refused_before_any_data_work(override, message, tmp_path):
    # The data folder does not exist: only a check made before any data work can name the setting.
    with pytest.raises(ValueError) as err:
        api.train([override], config={"data": {"dir": str(tmp_path / "no-data")}}, run_dir=tmp_path / "run")
    assert str(err.value).startswith(message)


def test_the_settings_table_in_the_docs_is_the_one_the_code_checks():
    from twotower.training.validate import settings_markdown

    assert settings_markdown() in (ROOT / "docs" / "settings.md").read_text()


def test_evaluate_py_names_a_missing_ckpt_before_loading_any_data(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "evaluate.py", f"ckpt={tmp_path / 'nope.pt'}", f"data.dir={tmp_path / 'no-data'}"]
        + [f"hydra.run.dir={tmp_path / 'eval'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )

    assert out.returncode == 1
    line = one_line(out.stderr)
    assert line.startswith(f"error: FileNotFoundError: ckpt={tmp_path / 'nope.pt'} does not exist")


@pytest.mark.parametrize(
    "text, message",
    [
        ("data: [unclosed\n", "config.yaml is not a readable run config"),
        ("- a list\n", "config.yaml holds no run config"),
        ("", "config.yaml holds no run config"),
    ],
)
def test_a_junk_config_yaml_is_one_line_naming_it(trained_run, tmp_path, capsys, text, message):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "config.yaml").write_text(text)

    assert main(["resume", str(run)]) == 1

    assert f"{run}/{message}" in one_line(capsys.readouterr().err)


def test_a_missing_or_truncated_ckpt_path_is_named_before_any_data_work(trained_run, tmp_path):
    from twotower.models.checkpoint import CheckpointError

    no_data = {"data": {"dir": str(tmp_path / "no-data")}}
    with pytest.raises(FileNotFoundError, match=f"^ckpt_path={tmp_path / 'nope.ckpt'} does not exist"):
        api.train([f"ckpt_path={tmp_path / 'nope.ckpt'}"], config=no_data, run_dir=tmp_path / "a")

    torn = tmp_path / "torn.ckpt"
    torn.write_bytes((trained_run / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=f"^{torn} is damaged or truncated"):
        api.train([f"ckpt_path={torn}"], config=no_data, run_dir=tmp_path / "b")
