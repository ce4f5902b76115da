"""The cycle collector held off while the state store's writer is behind."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..engine.collector import YOUNG_RAISES

BACKLOG = 1000  # writes waiting behind the batch being written that make a backlog
DEFERRED = 100_000  # allocations the young generation's threshold is raised by meanwhile
MAX_DEFERRAL = 2.0  # seconds of one backlog after which the collector runs as usual again


class BacklogCollector:
    """While the writer is behind, the collector walks the records waiting to be written over
    and over, and none of them is garbage: in a burst of 20,000 runs due at once, ~240 young
    and ~22 middle collections, ~50 ms of ~400, that collected nothing (bench/store.py). So
    while BACKLOG writes or more wait behind the batch being written, the young threshold is
    raised by DEFERRED (through YOUNG_RAISES: a threshold the program sets meanwhile is kept,
    and 0 is never raised). It is undone when the writer finds its queue empty; and when the
    backend cannot be written, or after MAX_DEFERRAL seconds of one backlog (looked at as each
    batch is taken: a write that hangs keeps the threshold raised, never the collector off,
    until it returns), not raised again until the queue was empty: records that wait in
    memory for as long as the database is away must not keep a job's cyclic garbage waiting
    too. The store is the library's, as the scheduler's passes are: a program's collector is
    raised by it too. Used by the writer thread only."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._raise: tuple[int, int] | None = None
        self._since = 0.0  # when the raise was made
        self._spent = False  # this backlog had its raise: none again until the queue empties

    @property
    def raised(self) -> bool:
        return self._raise is not None

    def behind(self, waiting: int) -> None:
        """A batch was taken, and ``waiting`` writes are still queued."""
        if self._raise is not None:
            if self._clock() - self._since > MAX_DEFERRAL:
                self.stop()
        elif waiting >= BACKLOG and not self._spent:
            self._raise = YOUNG_RAISES.raise_by(DEFERRED)
            self._since = self._clock()
            self._spent = True

    def caught_up(self) -> None:
        """The queue is empty: the collector counts as usual, and a later backlog may raise."""
        self._spent = False
        self._undo()

    def stop(self) -> None:
        """The backend cannot be written, the writer stops, or the backlog lasted too long:
        undone, and not raised again until the queue was empty."""
        self._spent = True
        self._undo()

    def _undo(self) -> None:
        token, self._raise = self._raise, None
        if token is not None:
            YOUNG_RAISES.undo(token)
