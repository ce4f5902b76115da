"""Claims waiting for the writer's answer: the runs of one scheduling pass claimed together
(`ClaimBatch`, a `Ticket` on each run's write), and the deadline after which a claim nobody
answered lets its run go ahead (the store is degraded; the writer says why)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence

from ..engine import Run
from ..engine.datastore import ClaimAnswer
from .answers import Claim

log = logging.getLogger("jobtui.store")


class ClaimBatch:
    """The claims of one scheduling pass: one future for the engine's virtual clock, one
    deadline, and each run answered through its ticket as the writer answers its write."""

    __slots__ = ("_answer", "_left", "all_answered", "tickets")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, runs: Sequence[Run], answer: ClaimAnswer
    ) -> None:
        self._answer = answer
        self._left = len(runs)
        self.all_answered: asyncio.Future[None] = loop.create_future()
        self.tickets = [Ticket(self, run) for run in runs]
        if not runs:
            self.all_answered.set_result(None)

    def done(self) -> bool:
        return self._left == 0

    def set_result(self, result: bool, /) -> None:
        """The deadline passed: every run not answered yet is answered ``result``."""
        for ticket in self.tickets:
            ticket.set_result(result)

    def answered(self, run: Run, claimed: bool) -> None:
        self._left -= 1
        try:
            self._answer(run, claimed)
        except Exception:  # the engine's; the other runs of the batch must still be answered
            log.exception("answering the claim of run %s failed", run.run_id)
        if self._left == 0:
            # Its tickets refer to it: let go of them, or the pass (its runs too) would wait
            # for the cycle collector, which a busy host runs seldom (tests/test_store_gc.py).
            self.tickets = []
            self.all_answered.set_result(None)


class Ticket:
    """One run's claim in a batch: what a write's ``claim`` is for the writer (a future's
    done() and set_result(), without a future's callbacks and its loop turn)."""

    __slots__ = ("_answered", "batch", "run")

    def __init__(self, batch: ClaimBatch, run: Run) -> None:
        self.batch = batch
        self.run = run
        self._answered = False

    def done(self) -> bool:
        return self._answered

    def set_result(self, result: bool, /) -> None:
        if not self._answered:
            self._answered = True
            self.batch.answered(self.run, result)


class ClaimDeadlines:
    """One timer for all the claims waiting, not one each: a timer per claim put every run's
    handle through the loop's timer heap twice (in, and out when it fired for nothing), about
    a tenth of the store's cost on the loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        wait: float,
        settle: Callable[[], None] = lambda: None,
    ) -> None:
        self._loop = loop
        self._wait = wait
        self._settle = settle  # the answers the writer gave that wait on the loop, now
        # Claims in the order they were made, so their deadlines are in order too.
        self._waiting: deque[tuple[float, Claim]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, claim: Claim) -> None:
        """Settle ``claim`` with True if it is still unanswered ``wait`` seconds from now."""
        waiting = self._waiting
        # Claims are answered about in the order they were made: dropping the answered ones
        # at the front keeps this short between the timer's rounds.
        while waiting and waiting[0][1].done():
            waiting.popleft()
        deadline = self._loop.time() + self._wait
        waiting.append((deadline, claim))
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self._loop.time()
        waiting = self._waiting
        settled = False
        while waiting:
            deadline, claim = waiting[0]
            if not claim.done():
                if deadline > now:
                    self._timer = self._loop.call_at(deadline, self._expire)
                    return
                if not settled:  # an answer waiting on the loop wins over the deadline
                    settled = True
                    self._settle()
                    continue
                claim.set_result(True)
            waiting.popleft()
