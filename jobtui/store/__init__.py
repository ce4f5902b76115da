"""State and run history in SQLite: restarts, crashes and clock changes lose nothing."""

from .history import read_runs
from .store import Store, StoreError

__all__ = ["Store", "StoreError", "read_runs"]
