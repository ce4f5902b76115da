"""Claim answers on their way from the writer thread to the event loop: the writer gives them
as each batch commits; the loop settles them a slice per turn, in the order given."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from typing import Protocol


class Claim(Protocol):
    """A CLAIM write's answer: a future, or a run's ticket in a batch of claims."""

    def done(self) -> bool: ...

    def set_result(self, result: bool, /) -> None: ...


class ClaimAnswers:
    """One queue for every batch's answers, so a later batch's claims never settle before an
    earlier one's; ``per_turn`` of them settled in each turn of the loop."""

    def __init__(self, per_turn: int) -> None:
        self._per_turn = per_turn
        self._answers: deque[tuple[Claim, bool]] = deque()
        self._lock = threading.Lock()
        self._settling = False  # a settle_some is scheduled on the loop
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        """How many answers wait to be settled."""
        return len(self._answers)

    def give(self, loop: asyncio.AbstractEventLoop, answers: list[tuple[Claim, bool]]) -> None:
        """From any thread: queue ``answers``, with one wake-up of the loop, not one per claim."""
        if not answers:
            return
        with self._lock:
            self._loop = loop
            self._answers.extend(answers)
            if self._settling:
                return  # the settling already scheduled takes these too, after the earlier
            self._settling = True
        with contextlib.suppress(RuntimeError):  # the loop closed
            loop.call_soon_threadsafe(self.settle_some)

    def settle_some(self) -> None:
        """On the loop: settle ``per_turn`` claims, then the rest in a later turn. Each settled
        claim starts a run in the loop's next turn, and thousands at once would hold the loop
        up for as long as their runs' first steps. A bound method, not a closure that
        schedules itself: that closure would hold itself in a cell, a reference cycle per
        batch keeping its answers alive until the cycle collector came (tests/test_store_gc.py)."""
        with self._lock:
            count = min(self._per_turn, len(self._answers))
            taken = [self._answers.popleft() for _ in range(count)]
            more = bool(self._answers)
            self._settling = more
        _settle(taken)
        if more and self._loop is not None:  # after the runs just woken: they go first
            self._loop.call_soon(self.settle_some)

    def settle_all(self) -> None:
        """On the loop: settle every answer given so far, now. A claim's deadline lets its run
        go ahead only if nobody answered it: an answer queued behind others while the loop
        was held up (a job's blocking call) is an answer, "already ran" perhaps."""
        with self._lock:
            taken = list(self._answers)
            self._answers.clear()  # a settle_some still scheduled finds none: it stops
        _settle(taken)


def _settle(answers: list[tuple[Claim, bool]]) -> None:
    for claim, value in answers:
        if not claim.done():  # a deadline, or a cancel, came first
            claim.set_result(value)
