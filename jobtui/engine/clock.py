"""The engine's sense of time.

The scheduler reads three things from its clock: wall time (what cron and `at` follow), elapsed
time (what `every` grids follow: it keeps counting while the machine sleeps, and never steps), and
timers. `RealClock` reads the machine; `VirtualClock` lets tests move time by hand, step the wall
clock and suspend the "machine", so no test ever sleeps to wait for a schedule.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock:
    """Interface of a clock; see the module docstring."""

    def wall(self) -> float:
        """Seconds since the epoch (UTC), as the machine's wall clock says."""
        raise NotImplementedError

    def elapsed(self) -> float:
        """A steady count of seconds that includes time the machine spent suspended."""
        raise NotImplementedError

    def suspended(self) -> float:
        """Total seconds the machine has spent suspended (grows only across a suspend)."""
        raise NotImplementedError

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        """Call ``callback`` on the event loop after ``delay`` seconds of awake time."""
        raise NotImplementedError

    def hold(self, future: asyncio.Future[Any]) -> None:
        """Work in flight outside the loop (a database write a run waits for): a virtual
        clock does not move on until it is done; the real clock has nothing to wait for."""

    async def sleep(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        handle = self.call_later(max(delay, 0.0), wake)
        try:
            await future
        finally:
            handle.cancel()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)


class RealClock(Clock):
    """The machine's clocks. Elapsed time is CLOCK_BOOTTIME where the OS has it."""

    # time.time itself: read twice for every run, a method around it would cost a call each.
    wall = staticmethod(time.time)

    def __init__(self) -> None:
        self._boottime = getattr(time, "CLOCK_BOOTTIME", None)

    def elapsed(self) -> float:
        if self._boottime is not None:
            return time.clock_gettime(self._boottime)
        return time.monotonic()

    def suspended(self) -> float:
        if self._boottime is None:
            return 0.0
        return time.clock_gettime(self._boottime) - time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)

    async def sleep(self, delay: float) -> None:
        await asyncio.sleep(delay)


class _VirtualTimer:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], object]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock(Clock):
    """A clock that moves only when a test says so.

    `advance` moves time forward, firing every timer that falls due on the way in order and
    letting the event loop settle after each, so a test sees exactly what a real run would see at
    each instant. `step_wall` moves only the wall clock (an NTP step or a hand-set clock).
    `suspend` models a sleeping machine: wall and elapsed time move on, timers do not.
    """

    def __init__(self, start: datetime | float = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        start_ts = start.timestamp() if isinstance(start, datetime) else float(start)
        self._awake = 0.0  # what CLOCK_MONOTONIC would read: stops while suspended
        self._suspended = 0.0
        self._wall_base = start_ts
        self._timers: list[tuple[float, int, _VirtualTimer]] = []
        self._seq = itertools.count()
        self._held: set[asyncio.Future[Any]] = set()

    def wall(self) -> float:
        return self._wall_base + self._awake + self._suspended

    def elapsed(self) -> float:
        return self._awake + self._suspended

    def suspended(self) -> float:
        return self._suspended

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        timer = _VirtualTimer(self._awake + max(delay, 0.0), callback)
        heapq.heappush(self._timers, (timer.deadline, next(self._seq), timer))
        return timer

    def hold(self, future: asyncio.Future[Any]) -> None:
        self._held.add(future)
        future.add_done_callback(self._held.discard)

    async def settle(self) -> None:
        """Let every task that is ready run until the loop has nothing left to do now, and
        held work outside the loop is done."""
        await self._settle_loop()
        while self._held:
            await asyncio.wait(set(self._held), timeout=30)
            await self._settle_loop()

    async def _settle_loop(self) -> None:
        loop = asyncio.get_running_loop()
        quiet = 0
        for _ in range(100_000):
            await asyncio.sleep(0)
            ready = getattr(loop, "_ready", None)
            if ready is None:  # another loop implementation: a fixed number of rounds
                quiet += 1
                if quiet > 50:
                    return
                continue
            quiet = quiet + 1 if not ready else 0
            if quiet >= 3:
                return

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing due timers in order."""
        if seconds < 0:
            raise ValueError("a virtual clock only moves forward; use step_wall to set it back")
        target = self._awake + seconds
        await self.settle()
        while self._timers and self._timers[0][0] <= target:
            deadline, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._awake = max(self._awake, deadline)
            timer.callback()
            await self.settle()
        self._awake = target
        await self.settle()

    async def advance_to(self, when: datetime) -> None:
        await self.advance(max(0.0, when.timestamp() - self.wall()))

    async def step_wall(self, seconds: float) -> None:
        """Step the wall clock by ``seconds`` (negative: back); elapsed time is untouched."""
        self._wall_base += seconds
        await self.settle()

    async def suspend(self, seconds: float) -> None:
        """The machine sleeps for ``seconds``: no timer fires, wall and elapsed time move on."""
        self._suspended += seconds
        await self.settle()


CLOCK_STEP_THRESHOLD = 2.0  # wall and elapsed time disagreeing by more is a clock step


class ClockSteps:
    """Tells, between two looks, a suspend or a step of the wall clock from time passing."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = (0.0, 0.0, 0.0)

    def reset(self, wall: float, elapsed: float) -> None:
        self._last = (wall, elapsed, self._clock.suspended())

    def since_last(self, wall: float, elapsed: float) -> list[tuple[str, float]]:
        """("suspend", seconds slept) and ("forward"/"backward", seconds stepped) since the
        last look, each only when over CLOCK_STEP_THRESHOLD."""
        last_wall, last_elapsed, last_suspended = self._last
        suspended = self._clock.suspended()
        self._last = (wall, elapsed, suspended)
        changes = []
        slept = suspended - last_suspended
        if slept > CLOCK_STEP_THRESHOLD:
            changes.append(("suspend", slept))
        step = (wall - last_wall) - (elapsed - last_elapsed)
        if abs(step) > CLOCK_STEP_THRESHOLD:
            changes.append(("forward" if step > 0 else "backward", step))
        return changes
