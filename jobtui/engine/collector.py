"""The cycle collector held off while many long-lived objects are made at once."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (unless it was off already), for work
    that makes many long-lived objects at once: loading thousands of jobs, the console
    building thousands of rows. With the collector on, every few hundred allocations set off
    a collection walking all made so far, though none is garbage. It resumes on its usual
    thresholds afterwards. (The scheduler's passes use PassCollector, below.)"""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class YoungRaises:
    """Raises of the young generation's threshold, each undone by whoever made it: process-wide,
    as the collector is, and several may overlap (the passes of several schedulers, a state
    store's writer that is behind). Each undoes only its own raise, and only while the
    threshold is as the raises left it: another value is the program's, and the raises made
    before it are not undone. A threshold of 0 (a program that collects by hand) is never
    raised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._young = -1  # the threshold as the raises last set it
        self._epoch = 0  # one more each time the program's own value is found

    def raise_by(self, amount: int, *, only_over: bool = False) -> tuple[int, int] | None:
        """Raise the threshold by ``amount``; the token to undo it with, or None if it was not
        raised (also, with ``only_over``, when the young count is not over the threshold)."""
        with self._lock:
            young = gc.get_threshold()[0]
            if not young or amount <= 0 or (only_over and gc.get_count()[0] <= young):
                return None
            if young != self._young:
                self._epoch += 1
            self._young = young + amount
            # The young threshold alone: the writer's thread raises too, and the others may be
            # set meanwhile on the loop's (tune_collector) without this lock.
            gc.set_threshold(self._young)
            return amount, self._epoch

    def undo(self, token: tuple[int, int]) -> None:
        amount, epoch = token
        with self._lock:
            young = gc.get_threshold()[0]
            if young == self._young and epoch == self._epoch:
                self._young = young - amount
                gc.set_threshold(self._young)


YOUNG_RAISES = YoungRaises()


class PassCollector:
    """`collector_paused` for the scheduler's passes (paused through a pass, 20,000 one-shot jobs
    due at once start about 1.5x as fast: bench/engine.py, case (b)), which also keeps what a
    pass made from setting off a collection until its runs took their first step
    (``count_again``, after the loop's next turn). Resumed with the young generation thousands
    over its threshold, the collector walked everything the pass made at the next allocation,
    though the tasks of runs that end in their first step were about to be freed: a 25-45 ms
    stall after 20,000 runs due at once, against 6-9 ms after their first steps (the runs
    themselves, kept as their jobs' last runs). So until then the young threshold is raised by
    what the pass made (YOUNG_RAISES): the collector is on, and what was counted before the
    pass and what the runs' first steps make count as usual. Code that runs meanwhile reads the
    raised threshold; one it sets is kept. (With a store, runs start as their claims are
    answered, in later turns: only the claims are made in that turn.)"""

    __slots__ = ("_before", "_raise", "_was_on")

    def __init__(self) -> None:
        self._was_on = False
        self._before = 0
        self._raise: tuple[int, int] | None = None

    @property
    def uncounted(self) -> bool:
        """Whether what the last pass made is not counted yet (until count_again)."""
        return self._raise is not None

    def __enter__(self) -> None:
        self._was_on = gc.isenabled()
        if self._was_on:
            self._before = gc.get_count()[0]
            gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if not self._was_on:
            return
        # Only when the pass's objects would set off a collection at once.
        self._raise = YOUNG_RAISES.raise_by(gc.get_count()[0] - self._before, only_over=True)
        gc.enable()

    def count_again(self) -> None:
        """What the pass made counts from now on."""
        token, self._raise = self._raise, None
        if token is not None:
            YOUNG_RAISES.undo(token)
