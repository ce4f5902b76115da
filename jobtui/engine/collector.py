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


class _Raised:
    """What the passes not counted again did to the young threshold: process-wide, as the
    collector is, and several schedulers' passes may overlap. Each pass undoes only its own
    raise, and only while the threshold is as the passes left it: another value is the
    program's, and the raises made before it are not undone."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.young = -1  # the threshold as the passes last set it
        self.epoch = 0  # one more each time the program's own value is found


_RAISED = _Raised()


class PassCollector:
    """`collector_paused` for the scheduler's passes (paused through a pass, 20,000 one-shot jobs
    due at once start about 1.5x as fast: bench/engine.py, case (b)), which also keeps what a
    pass made from setting off a collection until its runs took their first step
    (``count_again``, after the loop's next turn). Resumed with the young generation thousands
    over its threshold, the collector walked everything the pass made at the next allocation,
    though the tasks of runs that end in their first step were about to be freed: a 25-45 ms
    stall after 20,000 runs due at once, against 6-9 ms after their first steps (the runs
    themselves, kept as their jobs' last runs). So until then the young threshold is raised by
    what the pass made: the collector is on, and what was counted before the pass and what the
    runs' first steps make count as usual. Code that runs meanwhile reads the raised threshold;
    one it sets is kept. (With a store, runs start as their claims are answered, in later turns:
    only the claims are made in that turn.)"""

    __slots__ = ("_before", "_epoch", "_raise", "_was_on", "uncounted")

    def __init__(self) -> None:
        self._was_on = False
        self._before = self._raise = self._epoch = 0
        self.uncounted = False  # what the last pass made, until count_again

    def __enter__(self) -> None:
        self._was_on = gc.isenabled()
        if self._was_on:
            self._before = gc.get_count()[0]
            gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if not self._was_on:
            return
        raised = _RAISED
        with raised.lock:
            young, middle, old = gc.get_threshold()
            count = gc.get_count()[0]
            made = count - self._before
            # Only when the pass's objects would set off a collection at once; never when the
            # program collects by hand (a threshold of 0).
            if young and count > young and made > 0:
                if young != raised.young:
                    raised.epoch += 1
                self._raise, self._epoch = made, raised.epoch
                raised.young = young + made
                gc.set_threshold(raised.young, middle, old)
                self.uncounted = True
        gc.enable()

    def count_again(self) -> None:
        """What the pass made counts from now on."""
        if not self.uncounted:
            return
        self.uncounted = False
        raised = _RAISED
        with raised.lock:
            young, middle, old = gc.get_threshold()
            if young == raised.young and self._epoch == raised.epoch:
                raised.young = young - self._raise
                gc.set_threshold(raised.young, middle, old)
