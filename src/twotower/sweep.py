"""Kept for `python -m twotower.sweep` and sweep configs written before 0.2: the sweep report now lives in
`twotower.reporting.sweep` (CHANGELOG 0.2)."""

from twotower.reporting.sweep import main, sqlite_storage

__all__ = ["main", "sqlite_storage"]

if __name__ == "__main__":
    main()
