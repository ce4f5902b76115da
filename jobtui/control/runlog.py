"""The lines of one run that a client follows over the control socket, numbered as the daemon
numbers them (from the run's first line ever), so a reconnect never shows a line twice."""

from __future__ import annotations

from dataclasses import dataclass, field

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
