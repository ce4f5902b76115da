"""The runs a client follows over the control socket, and their lines, numbered as the daemon
numbers them (from the run's first line ever), so a reconnect never shows a line twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .protocol import LogEvent

KEPT_LOG_LINES = 10_000  # per followed run; the console's log widget keeps 5,000


@dataclass
class RunLog:
    """A run whose log lines this client receives. Lines are numbered from the run's first
    line ever (as the daemon numbers them); the newest ``KEPT_LOG_LINES`` are held."""

    job_id: str
    origin: int | None = None  # the number of the first line received
    first: int = 0  # the number of lines[0]
    lines: list[str] = field(default_factory=list)
    asked: float = 0.0  # monotonic time the screen last asked for it
    sent: bool = False  # a follow request went out on the current connection

    @property
    def next(self) -> int:
        return self.first + len(self.lines)

    def take(self, event: LogEvent) -> None:
        if self.origin is None:
            self.origin = self.first = event.start
        skip = max(0, self.next - event.start)  # lines sent again after a reconnect
        if event.start > self.next:  # lines the run's capped buffer dropped in between
            self.lines.append(f"[... {event.start - self.next} lines dropped ...]")
            self.first += event.start - self.next - 1
        self.lines.extend(event.lines[skip:])
        excess = len(self.lines) - KEPT_LOG_LINES
        if excess > 0:
            del self.lines[:excess]
            self.first += excess

    def page(self, start: int, limit: int) -> tuple[tuple[str, ...], int]:
        """Up to ``limit`` lines from line ``start`` on, numbered from the run's first (a
        negative ``start`` counts back from the newest), and the ``start`` to ask for next:
        what ``Controller.log`` returns."""
        if self.origin is None:
            return (), max(start, 0)
        if start < 0:
            start = max(self.next + start, self.first)
        begin = max(start, self.first)
        lines = self.lines[begin - self.first : begin - self.first + limit]
        texts = tuple(lines)
        if lines and begin > start:
            texts = (f"[... {begin - start} lines not kept ...]", *texts)
        return texts, begin + len(lines)


class Follows:
    """The runs whose lines a client receives. Each is followed while a screen keeps asking
    for it (every redraw of the details screen does): once nobody asked for ``lease``
    seconds, or another run is asked for, the daemon is told to stop sending its lines."""

    def __init__(
        self,
        lease: float,
        tell: Callable[[str, dict[str, Any]], None],
        connected: Callable[[], bool],
    ) -> None:
        self.lease = lease
        self._tell = tell  # sends a request whose answer nobody waits for
        self._connected = connected
        self._runs: dict[str, RunLog] = {}

    def ask(self, job_id: str, run_id: str) -> RunLog:
        """The run's lines so far; follows it from now on (again, after a reconnect)."""
        now = time.monotonic()
        followed = self._runs.get(run_id)
        if followed is None:
            followed = self._runs[run_id] = RunLog(job_id)
        followed.asked = now
        for other_id, other in tuple(self._runs.items()):
            if other_id != run_id and now - other.asked > self.lease:
                self._unfollow(other_id, other)
        if not followed.sent and self._connected():
            followed.sent = True
            self._tell("follow", {"job_id": job_id, "run_id": run_id, "start": followed.next})
        return followed

    def take(self, event: LogEvent) -> None:
        followed = self._runs.get(event.run_id)
        if followed is not None:
            followed.take(event)

    def expire(self) -> None:
        now = time.monotonic()
        for run_id, followed in tuple(self._runs.items()):
            if now - followed.asked > self.lease:
                self._unfollow(run_id, followed)

    def connection_lost(self) -> None:
        for followed in self._runs.values():
            followed.sent = False  # the follows were that connection's: ask the next one

    def _unfollow(self, run_id: str, followed: RunLog) -> None:
        del self._runs[run_id]
        if followed.sent and self._connected():
            self._tell("unfollow", {"job_id": followed.job_id, "run_id": run_id})
