"""twotower: local-first learned retrieval."""

import importlib
import importlib.abc
import importlib.util
import logging
import sys
import warnings

__version__ = "0.1.0"

# faiss logs every CPU build it does not find (avx512, avx2) at INFO; under Hydra's logging that reads as errors.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)

# Modules that sat at the package root before 0.2 (CHANGELOG): `import twotower.bm25` still works, with a
# DeprecationWarning, and gives the module at its new home (one module object, not a copy).
MOVED = {
    "atomic": "io.atomic",
    "console": "io.console",
    "fingerprint": "io.fingerprint",
    "npy": "io.npy",
    "paths": "io.paths",
    "bm25": "retrieval.bm25",
    "bm25_build": "retrieval.bm25_write",
    "embedding_cache": "retrieval.embedding_cache",
    "index": "retrieval.exact",
    "text": "retrieval.text",
    "leaderboard": "reporting.leaderboard",
    "leaderboard_plot": "reporting.leaderboard_plot",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        head, _, name = fullname.partition(".")
        if head == __name__ and name in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = f"{__name__}.{MOVED[spec.name.partition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {new} (CHANGELOG.md)", DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass  # already executed under its new name


sys.meta_path.append(_MovedModules())
