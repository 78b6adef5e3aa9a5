"""What can go wrong between an index on disk and a query, each with its own exception type.

All derive from `SearchError`, so a caller (the CLI) can catch one type and print the message, which
always names the file or setting at fault.
"""

from __future__ import annotations

from twotower.errors import UserError


class SearchError(UserError):
    """Base class: a search index cannot be built, loaded or queried as asked."""


class IndexNotFoundError(SearchError, FileNotFoundError):
    """No index at the path given (or no manifest in it)."""


class IndexCorruptError(SearchError):
    """An index folder exists but a part of it is missing, truncated or unreadable."""


class IndexMismatchError(SearchError):
    """The checkpoint given is not the model that built the index: its vectors would not be comparable."""


class EmptyQueryError(SearchError, ValueError):
    """A query with no text in it."""


class DuplicateDocumentError(SearchError, ValueError):
    """A document id that is already in the index, or twice in the documents being added."""


class DiskFullError(SearchError, OSError):
    """The disk filled up while an index was written; nothing was committed and the previous index still serves."""


class ModeUnavailableError(SearchError):
    """A search mode the index cannot serve: `bm25` or `hybrid` on an index built without a BM25 part."""
