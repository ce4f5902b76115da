"""The seam between the scheduler and a state store: what the loop asks of one, and nothing
more. A backend (SQLite today, PostgreSQL next) implements it; the engine never knows which.
Like APScheduler 4's DataStore, but only the three calls this engine's loop makes."""

from __future__ import annotations

import asyncio
from typing import Protocol

from .events import Event
from .job import JobSnapshot
from .run import Run


class DataStore(Protocol):
    def claim(self, run: Run) -> asyncio.Future[bool]:
        """Asked before a scheduled run starts; the future the store settles once the claim is
        written. True: this process runs the occurrence. False: it already ran, or another
        process has it (the store keeps one record per job and ``scheduled_for``), and the
        scheduler drops it without running it. A future, not a coroutine: the scheduler holds
        virtual time on it directly, and a task per claim cost a fifth of the throughput of a
        durable scheduler."""
        ...

    def record(self, event: Event) -> None:
        """Every event, in order, on the scheduler's loop. Must not block: queue the write."""
        ...

    def save_job(self, job_id: str, snapshot: JobSnapshot) -> None:
        """A job's lasting state changed (counters, pause, last fired, next fire). Called at
        most once per job per loop turn; must not block."""
        ...
