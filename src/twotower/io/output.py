"""Never replace what we did not write: the one check every command runs on its output path.

    out = check_output(args.out, "export", overwrite=args.overwrite)   # before any work: one clear line
    with atomic_path(out) as tmp:
        ...                                                             # build the folder
        mark_output(tmp, "export")                                      # it is ours from now on

The rules, for every command that writes a folder (`export`, `synth`, `index`, `emb-opt`, `evaluate.py`,
Deep Memory stores) or a file (`search --run-out`):

- a path that does not exist, or an empty folder, is written;
- a folder holding the marker file `.twotower-output` written by the *same* command is ours: it is replaced
  (or, for an index or a store, updated), which is how re-running a command works;
- anything else — a user's folder, a folder another twotower command wrote, an existing plain file — is
  refused with one line naming it, unless `overwrite=True` (`--overwrite`, or `overwrite=true` for the
  Hydra entry points) says the user means it;
- an existing file is replaced only when it reads as what the command writes (a TREC run for `--run-out`);
- a folder where a file is expected, or a file where a folder is expected, is always refused.

Folders written before the marker existed are recognised by the command's own `recognise` test (an index's
readable manifest, a synthetic dataset's stamp, an export's model card).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twotower.errors import UserError

log = logging.getLogger(__name__)

MARKER = ".twotower-output"
"""The file a command writes into every folder it creates: `{"command": "<verb>"}`."""


class OutputExistsError(UserError):
    """The output path exists and is not something this command wrote: refused unless `--overwrite`."""

    writes_trace = False  # the folder is not ours: no error.txt goes into it


def written_by(folder: str | os.PathLike) -> str | None:
    """The command whose marker `folder` holds, or None (no marker, or an unreadable one)."""
    try:
        return str(json.loads((Path(folder) / MARKER).read_text())["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def mark_output(folder: str | os.PathLike, command: str) -> Path:
    """Write the marker saying `command` made `folder` (call it inside the folder before publishing it)."""
    path = Path(folder) / MARKER
    path.write_text(json.dumps({"command": command}) + "\n")
    return path


def check_output(
    path: str | os.PathLike,
    command: str,
    *,
    overwrite: bool = False,
    folder: bool = True,
    ignore: Sequence[str] = (),
    recognise: Callable[[Path], bool] | None = None,
    flag: str = "--overwrite",
    noun: str | None = None,
    replace_own: bool = True,
    hint: str = "choose a new folder",
) -> Path:
    """Return `path` if `command` may write it, else raise `OutputExistsError` (see the module doc).

    `folder=False` checks a file output: an existing file is replaced only if `recognise(path)` says it is one
    this command writes (a TREC run) or with `overwrite`. `ignore` lists glob patterns of entries that do not
    count as contents (what Hydra writes into its run folder before our code runs). `recognise(folder)` tells a
    folder this command wrote before markers existed. `flag` is how the user says `overwrite`, `noun` what the
    folder should be (both named in the message: "... is not a twotower index ..."). `replace_own=False`
    refuses the command's own earlier output too (a training run is resumed, never trained over), suggesting
    `hint` instead.
    """
    path = Path(path)
    if not folder:
        if path.is_dir():
            raise OutputExistsError(f"{path} is a folder; give a file path to write")
        if path.exists() and not overwrite and not (recognise is not None and recognise(path)):
            raise OutputExistsError(f"{path} exists; choose a new file, or pass {flag} to replace it")
        return path
    if not path.exists():
        if path.is_symlink():
            raise OutputExistsError(f"{path} is a broken link; remove it or choose a new folder")
        return path
    if not path.is_dir():
        raise OutputExistsError(f"{path} is a file, not a folder; give a new or empty folder to write into")
    maker = written_by(path)
    contents = sorted(p.name for p in path.iterdir() if p.name != MARKER and not any(p.match(g) for g in ignore))
    own = maker == command or (maker is None and contents and recognise is not None and recognise(path))
    if (own and replace_own) or (maker in (None, command) and not contents):
        return path
    if own and not overwrite:
        raise OutputExistsError(
            f"{path} already holds a twotower {command} output; {hint}, or pass {flag} to replace it"
        )
    if overwrite:
        log.warning("%s: replacing %s, which twotower %s did not write (%s)", command, path, command, flag)
        return path
    what = f"twotower {maker} wrote it" if maker else f"it holds {', '.join(contents[:3])}"
    more = f" and {len(contents) - 3} more" if maker is None and len(contents) > 3 else ""
    raise OutputExistsError(
        f"{path} exists and is not a twotower {noun or command + ' folder'} ({what}{more}); "
        f"choose a new or empty folder, or pass {flag} to replace it"
    )


HYDRA_FILES = (".hydra", "*.log", ".pl_hydra_rank_*")
"""What Hydra writes into its run folder before our code runs: not the user's, never counted as contents."""


def claim_run_folder(
    folder: str | os.PathLike,
    command: str,
    overwrite: bool,
    own: Sequence[str] = (),
    replace_own: bool = True,
    hint: str = "choose a new folder",
    mark: bool = True,
) -> Path:
    """For Hydra entry points (`train.py`, `evaluate.py`, `emb-opt`): check the run folder (`hydra.run.dir`)
    and mark it as `command`'s.

    It may hold Hydra's own files, and, from a run before markers existed, the files `own` names (e.g.
    `metrics.json`). Anything else is refused unless `overwrite=true`; `replace_own=False` refuses the
    command's own earlier output too (see `check_output`). `mark=False` only checks.
    """
    path = check_output(
        folder,
        command,
        overwrite=overwrite,
        ignore=HYDRA_FILES,
        recognise=lambda p: all(e.name in own or any(e.match(g) for g in HYDRA_FILES) for e in p.iterdir()),
        flag="overwrite=true",
        noun=f"{command} output folder",
        replace_own=replace_own,
        hint=hint,
    )
    if mark:
        path.mkdir(parents=True, exist_ok=True)
        mark_output(path, command)
    return path


def check_run_dir_argument(argv: Sequence[str], command: str, unless: Sequence[str] = (), **rules: Any) -> None:
    """Before Hydra starts, which writes `.hydra/` and a log into `hydra.run.dir` before our code runs: the same
    check as `claim_run_folder` (`rules`: own, replace_own, hint) for a `hydra.run.dir=` given in `argv`.
    Nothing to do for a multirun, a DDP rank other than 0, or when a key in `unless` is set (`ckpt_path`: a
    resume in place)."""
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("RANK", "0") != "0":
        return  # a DDP rank Lightning started: rank 0 checked this folder and is writing into it
    values = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))
    folder = values.get("hydra.run.dir")
    if not folder or {"-m", "--multirun"} & set(argv) or any(values.get(k, "null") != "null" for k in unless):
        return
    overwrite = values.get("overwrite", "false").lower() == "true"
    claim_run_folder(folder, command, overwrite, mark=False, **rules)


__all__ = [
    "MARKER",
    "OutputExistsError",
    "check_output",
    "check_run_dir_argument",
    "claim_run_folder",
    "mark_output",
    "written_by",
]
