"""twotower: local-first learned retrieval."""

import logging

__version__ = "0.1.0"

# faiss logs every CPU build it does not find (avx512, avx2) at INFO; under Hydra's logging that reads as errors.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
