"""State and run history in SQLite: restarts, crashes and clock changes lose nothing."""

from .history import read_context, read_runs
from .interface import StateStore
from .store import Store, StoreError

__all__ = ["StateStore", "Store", "StoreError", "read_context", "read_runs"]
