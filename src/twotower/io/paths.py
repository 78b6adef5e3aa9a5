"""Where data and caches live, resolved from environment settings, never from where the package is installed.

* data: `$TWOTOWER_DATA`, else `../shared/data` relative to the current directory (the folder beside a
  checkout you run from), else, for an editable install from a checkout, `../shared/data` beside that checkout;
* caches (corpus embeddings, triplet shards): `$TWOTOWER_CACHE`, else `$XDG_CACHE_HOME/twotower`, else
  `~/.cache/twotower`. Nothing is ever written inside the package (a wheel install lives in site-packages).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "TWOTOWER_DATA"
CACHE_ENV = "TWOTOWER_CACHE"
SHARED_DATA = Path("..") / "shared" / "data"


def _checkout_root() -> Path | None:
    """The repository this package is imported from when it is an editable install of a checkout, else None."""
    package = Path(__file__).resolve().parent
    root = package.parents[1]
    if package.parent.name == "src" and (root / "pyproject.toml").is_file():
        return root
    return None


def data_dir() -> Path:
    """The MS MARCO data folder: `$TWOTOWER_DATA`, else `../shared/data` from the current directory, else beside
    the checkout of an editable install; when none exists, the current-directory guess (for error messages)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    here = (Path.cwd() / SHARED_DATA).resolve()
    if here.is_dir():
        return here
    root = _checkout_root()
    if root is not None and (root / SHARED_DATA).is_dir():
        return (root / SHARED_DATA).resolve()
    return here


def cache_dir() -> Path:
    """Where reusable derived artefacts (corpus embeddings, shards) are cached (created on first use):
    `$TWOTOWER_CACHE`, else `$XDG_CACHE_HOME/twotower`, else `~/.cache/twotower`."""
    if os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        path = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "twotower"
    else:
        path = Path.home() / ".cache" / "twotower"
    path.mkdir(parents=True, exist_ok=True)
    return path


def require(path: str | os.PathLike, what: str = "file", data_folder: bool | None = None) -> Path:
    """Return `path` if it exists; otherwise raise naming the path and, when it is (or lies in) a data folder,
    the setting that points there (a path the user typed elsewhere is only named: the hint would mislead).
    `data_folder=True` says the caller reads `path` as a data folder whatever its place (a configured
    `data.dir`); None decides by whether it lies in `$TWOTOWER_DATA`."""
    path = Path(path)
    if not path.exists():
        root = data_dir()
        if data_folder is None:
            data_folder = not path.is_absolute() or path.resolve().is_relative_to(root.resolve())
        if data_folder:
            raise FileNotFoundError(
                f"{what} not found: {path}. Data is read from ${DATA_ENV} "
                f"(now {root}); set {DATA_ENV} or the config's `data.dir` to the folder holding MS MARCO."
            )
        raise FileNotFoundError(f"{what} not found: {path}")
    return path
