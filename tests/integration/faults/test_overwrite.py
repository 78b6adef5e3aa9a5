"""Never delete what we did not write (issue 18, class 2).

Every command that writes an output folder or file refuses an existing one it did not create with one line,
unless `--overwrite` (`overwrite=true` for the Hydra entry points); a folder the same command wrote before is
replaced, as re-running has always done. Before the fix `twotower export --out` into a user's folder deleted
its contents and exited 0, `twotower synth --out DATA` deleted a real `DATA/msmarco-passage/`, and a Deep
Memory store opened on a user's folder replaced its `data/`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import make_checkpoint

from twotower.cli import main

ROOT = Path(__file__).resolve().parents[3]
TEXTS = ["how to boil an egg", "eggs boil in seven minutes", "the cost of sales", "a thesis chapter"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", TEXTS)


@pytest.fixture
def precious(tmp_path) -> Path:
    """A user's folder that no twotower command wrote."""
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("years of work")
    (folder / "data").mkdir()
    (folder / "data" / "results.csv").write_text("1,2,3")
    return folder


def untouched(folder: Path) -> bool:
    return (folder / "chapter1.tex").read_text() == "years of work" and (folder / "data" / "results.csv").exists()


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_export_refuses_a_users_folder_and_keeps_its_contents(checkpoint, precious, capsys):
    assert main(["export", "--ckpt", str(checkpoint), "--out", str(precious)]) == 1

    line = one_error_line(capsys.readouterr().err)
    assert str(precious) in line and "--overwrite" in line
    assert untouched(precious)


def test_export_replaces_its_own_folder_and_a_users_only_with_overwrite(checkpoint, precious, tmp_path):
    out = tmp_path / "model"
    out.mkdir()  # an empty folder holds nothing to lose
    assert main(["export", "--ckpt", str(checkpoint), "--out", str(out)]) == 0
    assert main(["export", "--ckpt", str(checkpoint), "--out", str(out)]) == 0  # re-running replaces our own
    assert main(["export", "--ckpt", str(checkpoint), "--out", str(precious), "--overwrite"]) == 0
    assert (precious / "modules.json").exists() and not (precious / "chapter1.tex").exists()


def test_export_out_naming_a_file_is_one_line_and_the_file_stays(checkpoint, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")

    for extra in ([], ["--overwrite"]):
        assert main(["export", "--ckpt", str(checkpoint), "--out", str(notes), *extra]) == 1
        assert "is a file, not a folder" in one_error_line(capsys.readouterr().err)
    assert notes.read_text() == "keep me"


def test_synth_never_deletes_a_real_msmarco_folder(msmarco_dir, tmp_path, capsys):
    data = tmp_path / "data"
    real = data / "msmarco-passage"
    real.mkdir(parents=True)
    (real / "collection.tsv").write_text("0\tthe real, downloaded collection\n")
    source = msmarco_dir / "msmarco-passage"
    args = ["synth", "--passages", "300", "--queries", "20", "--dev-queries", "5", "--source", str(source)]

    assert main([*args, "--out", str(data)]) == 1
    assert str(real) in one_error_line(capsys.readouterr().err)
    assert real.joinpath("collection.tsv").read_text() == "0\tthe real, downloaded collection\n"

    assert main([*args, "--out", str(tmp_path / "synthetic")]) == 0
    assert main([*args, "--seed", "1", "--out", str(tmp_path / "synthetic")]) == 0  # our own: written again


def test_index_refuses_a_folder_with_a_damaged_manifest_it_did_not_write(checkpoint, tmp_path, capsys):
    folder = tmp_path / "other-tool"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"tool": "someone else\'s"}')
    docs = tmp_path / "docs.tsv"
    docs.write_text("".join(f"d{i}\t{t}\n" for i, t in enumerate(TEXTS)))

    assert main(["index", "--ckpt", str(checkpoint), "--collection", str(docs), "--out", str(folder)]) == 1
    assert "not a twotower index" in one_error_line(capsys.readouterr().err)
    assert (folder / "manifest.json").read_text() == '{"tool": "someone else\'s"}'

    assert main(["index", "--ckpt", str(checkpoint), "--collection", str(docs), "--out", str(tmp_path / "i")]) == 0
    assert main(["index", "--ckpt", str(checkpoint), "--collection", str(docs), "--out", str(tmp_path / "i")]) == 0


def test_search_run_out_refuses_a_file_that_is_not_a_trec_run(checkpoint, tmp_path, capsys):
    docs = tmp_path / "docs.tsv"
    docs.write_text("".join(f"d{i}\t{t}\n" for i, t in enumerate(TEXTS)))
    assert main(["index", "--ckpt", str(checkpoint), "--collection", str(docs), "--out", str(tmp_path / "i")]) == 0
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\tboil an egg\n")
    capsys.readouterr()
    search = ["search", "--index", str(tmp_path / "i"), "--queries", str(queries), "--run-out"]

    assert main([*search, str(queries)]) == 1  # the queries file itself, by a slip of the hand
    assert "--overwrite" in one_error_line(capsys.readouterr().err)
    assert queries.read_text() == "q1\tboil an egg\n"

    run = tmp_path / "run.trec"
    assert main([*search, str(run)]) == 0
    assert main([*search, str(run)]) == 0  # a TREC run is written again


def test_a_deep_memory_store_on_a_users_folder_is_refused(precious, tmp_path):
    from twotower.deep_memory import HashingEmbedding, VectorStore
    from twotower.errors import UserError

    with pytest.raises(UserError, match="thesis exists and is not a twotower store"):
        VectorStore(precious, embedding_function=HashingEmbedding(dim=8)).add(["a"], ids=["a"])
    assert untouched(precious)

    db = VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=8))
    db.add(["a text"], ids=["a"])
    assert len(VectorStore(tmp_path / "store", embedding_function=HashingEmbedding(dim=8))) == 1


def run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_emb_opt_refuses_a_users_run_folder_before_writing_into_it(precious):
    out = run(
        [sys.executable, "-m", "twotower.cli", "emb-opt", "iterations=1", "progress=false", f"hydra.run.dir={precious}"]
    )

    assert out.returncode == 1
    assert "not a twotower emb-opt output folder" in one_error_line(out.stderr)
    assert untouched(precious) and sorted(p.name for p in precious.iterdir()) == ["chapter1.tex", "data"]


def test_evaluate_py_refuses_a_users_output_folder(precious, checkpoint):
    out = run([sys.executable, "evaluate.py", f"ckpt={checkpoint}", f"hydra.run.dir={precious}"])

    assert out.returncode == 1
    assert "not a twotower evaluate output folder" in one_error_line(out.stderr)
    assert untouched(precious) and sorted(p.name for p in precious.iterdir()) == ["chapter1.tex", "data"]


def test_training_never_lands_on_a_users_folder_or_over_a_finished_run(precious, trained_run, tmp_path):
    import shutil

    from twotower import api
    from twotower.errors import UserError

    data = {"data": {"dir": str(tmp_path / "no-data")}}  # refused before any data work
    with pytest.raises(UserError, match="thesis exists and is not a twotower train output folder"):
        api.train([], config=data, run_dir=precious)
    assert untouched(precious) and not (precious / "config.yaml").exists()

    finished = tmp_path / "finished"
    shutil.copytree(trained_run, finished)
    before = (finished / "checkpoints" / "best.pt").read_bytes()
    with pytest.raises(
        UserError, match=f"already holds a twotower train output; resume it with `twotower resume {finished}`"
    ):
        api.train([], config=data, run_dir=finished)
    assert (finished / "checkpoints" / "best.pt").read_bytes() == before
