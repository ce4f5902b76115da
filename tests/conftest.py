from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from jobtui import (
    Event,
    OccurrenceMissed,
    OccurrenceSkipped,
    Outcome,
    Run,
    RunFinished,
    RunStarted,
    Scheduler,
    VirtualClock,
)

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday

# jobtui refuses a jobs.toml or run module its group can write (as cron does): under a 002 umask
# every file the tests write would be refused, so the suite writes them as at umask 022.
os.umask(0o022)


class Recorder:
    """Collects a scheduler's events and answers questions a user would ask of them."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        scheduler.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def finished(self, job_id: str | None = None) -> list[Run]:
        return [e.run for e in self.of(RunFinished) if job_id is None or e.run.job_id == job_id]

    def started(self, job_id: str | None = None) -> list[Run]:
        return [e.run for e in self.of(RunStarted) if job_id is None or e.run.job_id == job_id]

    def outcomes(self, job_id: str | None = None) -> list[Outcome]:
        return [run.outcome for run in self.finished(job_id)]

    def skipped(self, job_id: str | None = None) -> list[Run]:
        return [
            e.run for e in self.of(OccurrenceSkipped) if job_id is None or e.run.job_id == job_id
        ]

    def missed(self, job_id: str | None = None) -> list[Run]:
        return [
            e.run for e in self.of(OccurrenceMissed) if job_id is None or e.run.job_id == job_id
        ]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        """Wait for real-world work (a thread, a subprocess) to report back; the timeout only
        guards against a hang, it is not part of what is tested."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                # Woken by the next event, or after a short poll for conditions outside the
                # scheduler (a file a command wrote, a process that exited).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.05)


async def stop_within(scheduler: Scheduler, clock: VirtualClock, grace: float) -> None:
    """Stop the scheduler while virtual time moves through its grace period."""
    stopping = asyncio.create_task(scheduler.stop(grace))
    await clock.advance(grace)
    await stopping


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "it") -> None:
    """Poll, with a deadline, for what another process writes (a file, a database, a socket)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling another process; not a timing assumption


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def scheduler(clock: VirtualClock) -> Scheduler:
    return Scheduler(timezone="UTC", clock=clock, seed=7)


@pytest.fixture
def recorder(scheduler: Scheduler) -> Recorder:
    return Recorder(scheduler)


@pytest.fixture
def recorder_factory() -> type[Recorder]:
    return Recorder


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster for the whole session (tests/pg.py)."""
    from tests.pg import start_cluster

    yield from start_cluster()


@pytest.fixture
def pg_database(pg_cluster):
    """A fresh, empty database in the session's cluster; its name."""
    name = pg_cluster.new_database()
    yield name
    pg_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request, tmp_path):
    """Each state store backend in turn (tests/stores.py): the store's contract tests."""
    from tests.stores import PostgresStores, SQLiteStores

    if request.param == "sqlite":
        return SQLiteStores(tmp_path)
    return PostgresStores(
        request.getfixturevalue("pg_cluster"), request.getfixturevalue("pg_database")
    )
