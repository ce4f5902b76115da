"""The cycle collector held off while many long-lived objects are made at once."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (unless it was off already). A scheduling
    pass that starts thousands of runs makes objects for each (run, task, coroutine) that all
    outlive it, and with the collector on every few hundred allocations set off a collection
    walking all made so far, though none is garbage; the console builds thousands of rows the
    same way. The collector resumes on its usual thresholds afterwards: 20,000 one-shot jobs
    due at once start about 1.5x as fast (bench/engine.py, case (b))."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Raised:
    """The young threshold as raised for the passes not counted again yet: process-wide, as the
    collector is, and several schedulers' passes may overlap."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.passes = 0
        self.program_young = 0  # the program's threshold, given back when the last is counted
        self.young = 0  # as raised for the last of them


_RAISED = _Raised()


class PassCollector:
    """`collector_paused` for the scheduler's passes, which also keeps what a pass made from
    setting off a collection until its runs took their first step (``count_again``, after the
    loop's next turn). Resumed with the young generation thousands over its threshold, the
    collector walked everything the pass made at the next allocation, though the tasks of
    runs that end in their first step were about to be freed: a 25-45 ms stall after 20,000
    runs due at once, against 6-9 ms after their first steps (the runs themselves, kept as
    their jobs' last runs). So until then the young threshold is raised by what the pass
    made: the collector is on, and what the runs' first steps make counts as usual. A
    threshold the program sets meanwhile is kept."""

    __slots__ = ("_paused", "uncounted")

    def __init__(self) -> None:
        self._paused = False
        self.uncounted = False  # what the last pass made, until count_again

    def __enter__(self) -> None:
        self._paused = gc.isenabled()
        if self._paused:
            gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if not self._paused:
            return
        raised = _RAISED
        with raised.lock:
            young, middle, old = gc.get_threshold()
            made = gc.get_count()[0]
            if young and made > young:  # a threshold of 0: the program collects by hand
                if raised.passes == 0 or young != raised.young:  # or the program set its own
                    raised.program_young = young
                raised.young = young + made
                raised.passes += 1
                self.uncounted = True
                gc.set_threshold(raised.young, middle, old)
        gc.enable()

    def count_again(self) -> None:
        """What is made from now on counts from the young threshold the program had."""
        if not self.uncounted:
            return
        self.uncounted = False
        raised = _RAISED
        with raised.lock:
            raised.passes -= 1
            young, middle, old = gc.get_threshold()
            if raised.passes == 0 and young == raised.young:
                gc.set_threshold(raised.program_young, middle, old)
