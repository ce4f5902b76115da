"""The two heaps occurrences wait on, one per clock.

``every`` jobs wait on elapsed time (a steady count that includes suspend, so their grid never
drifts and ignores wall-clock steps), cron and ``at`` jobs on the wall clock. An entry whose
version is no longer its job's (the job was re-planned, paused or removed) is stale and is
dropped when it comes up, which is cheaper than finding and removing it at the change.

Each heap holds a deadline once, however many jobs wait for it; a dict gives the jobs waiting
for each, first in first out. Jobs on one grid share their deadlines (bench/engine.py: a
thousand every second), and a heap of one entry per job made every pop of such a tie walk the
heap's depth comparing (deadline, sequence) tuples: about 3,000 instructions a run, spent in
the scheduling pass itself. One job waiting is kept as its bare entry, not a list of one, so
jobs at distinct times (the usual case for thousands of idle ones) cost no more memory.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush  # module attributes read per push and pop: bound once

from .job import Job

Entry = tuple[Job, int]  # a job and its version when it was pushed
Waiting = Entry | list[Entry]  # one entry, or more in the order they were pushed


class _Heap:
    __slots__ = ("deadlines", "waiting")

    def __init__(self) -> None:
        self.deadlines: list[float] = []  # a heap; each deadline once, a key of `waiting`
        self.waiting: dict[float, Waiting] = {}

    def push(self, deadline: float, entry: Entry) -> bool:
        """Add ``entry`` after those already waiting for ``deadline``; True if that deadline is
        now the earliest and was not waited for before (what a heap of entries would have put
        on top: a tie goes after the entries already there)."""
        waiting = self.waiting.get(deadline)
        if waiting is None:
            self.waiting[deadline] = entry
            deadlines = self.deadlines
            heappush(deadlines, deadline)
            return deadlines[0] is deadline
        if type(waiting) is list:
            waiting.append(entry)
        else:
            self.waiting[deadline] = [waiting, entry]  # type: ignore[list-item]
        return False

    def pop_due(self, now: float, jobs: dict[str, Job], due: list[Job]) -> None:
        deadlines, waiting = self.deadlines, self.waiting
        while deadlines and deadlines[0] <= now:
            entries = waiting.pop(heappop(deadlines))
            if type(entries) is tuple:
                job, version = entries
                if version == job._heap_version and jobs.get(job.id) is job:
                    due.append(job)
                continue
            for job, version in entries:  # type: ignore[misc]
                if version == job._heap_version and jobs.get(job.id) is job:
                    due.append(job)


class DueHeaps:
    """Where each job's next occurrence waits until it is due."""

    __slots__ = ("_elapsed", "_wake_up", "_wall")

    def __init__(self, wake_up: Callable[[], None]) -> None:
        # Called when a push makes an entry the earliest: the loop's sleep is then too long.
        self._wake_up = wake_up
        self._wall = _Heap()
        self._elapsed = _Heap()

    def push(self, job: Job, label: float) -> None:
        """Plan the occurrence labelled ``label`` on the heap of the job's plan's clock."""
        plan = job.plan
        if not plan.steady:
            self.push_wall(job, label)
            return
        job.next_fire = label
        job._heap_version += 1
        if self._elapsed.push(plan.deadline(label), (job, job._heap_version)):
            self._wake_up()

    def push_wall(self, job: Job, ts: float) -> None:
        job.next_fire = ts
        job._heap_version += 1
        if self._wall.push(ts, (job, job._heap_version)):
            self._wake_up()

    def pop_due(self, wall: float, elapsed: float, jobs: dict[str, Job]) -> list[Job]:
        """Take off every job due by now whose entry is current and which is still ``jobs``'."""
        due: list[Job] = []
        self._elapsed.pop_due(elapsed, jobs, due)
        self._wall.pop_due(wall, jobs, due)
        return due

    def delay(self, wall: float, elapsed: float, longest: float) -> float:
        """Seconds until the earliest entry is due, at most ``longest``."""
        delay = longest
        if self._elapsed.deadlines:
            delay = min(delay, self._elapsed.deadlines[0] - elapsed)
        if self._wall.deadlines:
            delay = min(delay, self._wall.deadlines[0] - wall)
        return delay
