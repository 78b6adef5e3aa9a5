"""Matrices a user hands us as NumPy `.npy` files: read with one clear error for anything else."""

from __future__ import annotations

import os

import numpy as np


def load_npy(path: str | os.PathLike, what: str = "vectors") -> np.ndarray:
    """A 2-D numeric array from a NumPy `.npy` file (memory-mapped); anything else is one clear error naming
    the file: a text or CSV file, a pickle, a `.npz`, a 1-D or non-numeric array."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head != b"\x93NUMPY":
        kind = "a zip/.npz archive" if head.startswith(b"PK") else f"a file starting with {head!r}"
        raise ValueError(f"{path} is not a NumPy .npy file ({kind}); save the {what} with numpy.save(path, array)")
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is a damaged .npy file ({exc})") from None
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise ValueError(
            f"{path} holds a {array.dtype} array of shape {array.shape}; the {what} must be (n, dim) numbers"
        )
    return array
