"""A claim nobody answered within a while lets its run go ahead (the store is degraded; the
writer says why). One timer for all the claims waiting, not one each: a timer per claim put
every run's handle through the loop's timer heap twice (in, and out when it fired for nothing),
about a tenth of the store's cost on the loop."""

from __future__ import annotations

import asyncio
from collections import deque


class ClaimDeadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop, wait: float) -> None:
        self._loop = loop
        self._wait = wait
        # Claims in the order they were made, so their deadlines are in order too.
        self._waiting: deque[tuple[float, asyncio.Future[bool]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, claim: asyncio.Future[bool]) -> None:
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
        while waiting:
            deadline, claim = waiting[0]
            if not claim.done():
                if deadline > now:
                    self._timer = self._loop.call_at(deadline, self._expire)
                    return
                claim.set_result(True)
            waiting.popleft()
