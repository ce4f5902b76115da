"""State and run history in SQLite: restarts, crashes and clock changes lose nothing."""

from .history import read_context, read_runs
from .interface import StateStore
from .statefile import UnusableStatePath
from .store import Store, StoreError

__all__ = [
    "StateStore", "Store", "StoreError", "UnusableStatePath", "read_context", "read_runs",
]  # fmt: skip
