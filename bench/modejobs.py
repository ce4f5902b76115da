"""The job functions of bench/runmodes.py, in a module of their own: a process-mode child
imports the module its function lives in, and this one imports only what the jobs need."""

from __future__ import annotations

import time


def noop() -> None:
    return None


def burn(seconds: float) -> int:
    """Pure Python: holds the GIL except when the interpreter hands it over (every 5 ms)."""
    end = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < end:
        for i in range(1000):
            count += i
    return count
