"""The two heaps occurrences wait on, one per clock.

``every`` jobs wait on elapsed time (a steady count that includes suspend, so their grid never
drifts and ignores wall-clock steps), cron and ``at`` jobs on the wall clock. An entry whose
version is no longer its job's (the job was re-planned, paused or removed) is stale and is
dropped when it comes up, which is cheaper than finding and removing it at the change.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from heapq import heappop, heappush  # module attributes read per push and pop: bound once

from .job import Job

Entry = tuple[float, int, Job, int]


class DueHeaps:
    """Where each job's next occurrence waits until it is due."""

    __slots__ = ("_elapsed", "_seq", "_wake_up", "_wall")

    def __init__(self, wake_up: Callable[[], None]) -> None:
        # Called when a push makes an entry the earliest: the loop's sleep is then too long.
        self._wake_up = wake_up
        self._wall: list[Entry] = []
        self._elapsed: list[Entry] = []
        self._seq = itertools.count()  # ties in time go first in, first out, never to Job

    def push(self, job: Job, label: float) -> None:
        """Plan the occurrence labelled ``label`` on the heap of the job's plan's clock."""
        plan = job.plan
        if not plan.steady:
            self.push_wall(job, label)
            return
        job.next_fire = label
        job._heap_version += 1
        entry = (plan.deadline(label), next(self._seq), job, job._heap_version)
        heap = self._elapsed
        heappush(heap, entry)
        if heap[0] is entry:
            self._wake_up()

    def push_wall(self, job: Job, ts: float) -> None:
        job.next_fire = ts
        job._heap_version += 1
        entry = (ts, next(self._seq), job, job._heap_version)
        heappush(self._wall, entry)
        if self._wall[0] is entry:
            self._wake_up()

    def pop_due(self, wall: float, elapsed: float, jobs: dict[str, Job]) -> list[Job]:
        """Take off every job due by now whose entry is current and which is still ``jobs``'."""
        due: list[Job] = []
        for heap, now in ((self._elapsed, elapsed), (self._wall, wall)):
            while heap and heap[0][0] <= now:
                _, _, job, version = heappop(heap)
                if version == job._heap_version and jobs.get(job.id) is job:
                    due.append(job)
        return due

    def delay(self, wall: float, elapsed: float, longest: float) -> float:
        """Seconds until the earliest entry is due, at most ``longest``."""
        delay = longest
        if self._elapsed:
            delay = min(delay, self._elapsed[0][0] - elapsed)
        if self._wall:
            delay = min(delay, self._wall[0][0] - wall)
        return delay
