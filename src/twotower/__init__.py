"""twotower: local-first learned retrieval."""

__version__ = "0.1.0"
