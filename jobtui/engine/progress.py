"""Coalescing: many changes to one thing within a loop turn become one call at its end."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class Coalescer(Generic[T]):
    """Collects marked items and hands them to ``flush`` once per loop turn, in the order they
    were first marked. ``mark`` is safe from any thread: a job's worker thread reports progress
    as often as it likes and the loop still publishes once per run per turn."""

    def __init__(self, flush: Callable[[list[T]], None]) -> None:
        self._flush = flush
        self._dirty: dict[T, None] = {}
        self._scheduled = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        if self._dirty and not self._scheduled:  # marked before there was a loop
            self._scheduled = True
            loop.call_soon(self.flush)

    def mark(self, item: T) -> None:
        loop = self._loop
        if threading.get_ident() == self._loop_thread or loop is None:
            # On the loop no thread can race us: skip the lock, it is the hot path.
            self._dirty[item] = None
            if not self._scheduled and loop is not None:
                self._scheduled = True
                loop.call_soon(self.flush)
            return
        with self._lock:
            if item in self._dirty:
                return
            self._dirty[item] = None
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            with contextlib.suppress(RuntimeError):  # the loop closed under a late thread
                loop.call_soon_threadsafe(self.flush)

    def flush(self) -> None:
        """Hand over what is marked now (also called directly, to flush before stopping)."""
        with self._lock:
            items = list(self._dirty)
            self._dirty.clear()
            self._scheduled = False
        if items:
            self._flush(items)
