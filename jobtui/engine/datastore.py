"""The seam between the scheduler and a state store: what the loop asks of one, and nothing
more. A backend (SQLite today, PostgreSQL next) implements it; the engine never knows which.
Like APScheduler 4's DataStore, but only the calls this engine's loop makes; JobSaver is the
scheduler's side of those calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .events import (
    Event,
    EventBroker,
    JobAdded,
    JobModified,
    JobStateChanged,
    OccurrenceMissed,
    OccurrenceSkipped,
    RunFinished,
    RunRetrying,
)
from .job import Job, JobSnapshot
from .progress import Coalescer
from .run import Run


class DataStore(Protocol):
    def claim(self, run: Run) -> asyncio.Future[bool]:
        """Asked before a scheduled run starts; the future the store settles once the claim is
        written. True: this process runs the occurrence. False: it already ran, or another
        process has it (the store keeps one record per job and ``scheduled_for``), and the
        scheduler drops it without running it. A store may settle it later than the write, when
        the occurrence may not start yet (a store several hosts share holds back a queued
        occurrence while another host runs its job); meanwhile the run counts as under way,
        and a cancel ends it there. A future, not a coroutine: the scheduler holds
        virtual time on it directly, and a task per claim cost a fifth of the throughput of a
        durable scheduler."""
        ...

    def record(self, event: Event) -> None:
        """The scheduler's events, in order, on its loop: every event, or, when the store
        has a ``recorded_events`` tuple of event types, only events of those types (an event
        nobody else asked for is then not even built). A store with a ``recorders`` mapping
        (event type -> handler) has each event of those types handed to its handler instead:
        a call and a lookup less per event, three events a run. Must not block: queue the
        write."""
        ...

    def save_job(self, job_id: str, snapshot: JobSnapshot) -> None:
        """A job's lasting state changed (counters, pause, last fired, next fire). Called at
        most once per job per loop turn; must not block."""
        ...


# Told, on the loop, whether this process runs a run it asked to claim.
ClaimAnswer = Callable[[Run, bool], None]


class BatchClaims(Protocol):
    """What a store may offer instead of ``claim``: the runs of one scheduling pass claimed
    together. With 20,000 runs due at once, a future, a deadline and a task step per claim
    were a third of a durable scheduler's time on its loop (bench/store.py). A store whose
    claims need a future each (PostgreSQL's: a host hand-off and a queue turn hang off it,
    and the engine cancels it when the run is cancelled meanwhile) sets ``claim_many`` to
    None and is asked one run at a time."""

    def claim_many(self, runs: Sequence[Run], answer: ClaimAnswer) -> asyncio.Future[None]:
        """Claim each of ``runs`` as ``claim`` would, and call ``answer(run, claimed)`` on the
        loop for each once its claim is written, in the order of ``runs``. The future is done
        once every run is answered: a virtual clock waits for it. A run the engine ended
        meanwhile (cancelled) is still answered; the engine ignores the answer."""
        ...


class JobSaver:
    """Feeds a store the scheduler's events and its jobs' snapshots: once per job per loop
    turn, however many events touched it."""

    def __init__(self, store: DataStore, events: EventBroker, jobs: Mapping[str, Job]) -> None:
        self._store = store
        self._jobs = jobs  # the scheduler's own: a job not in it was removed
        self._unsaved: Coalescer[str] = Coalescer(self._save)
        # A store that names the events it records is handed those only (see record()), each
        # straight to its handler when it has one per type.
        recorders: Mapping[type[Event], Callable[[Any], None]] | None = getattr(
            store, "recorders", None
        )
        if recorders:
            for kind, handler in recorders.items():
                events.subscribe(handler, kind)
        else:
            events.subscribe(store.record, *getattr(store, "recorded_events", ()))
        # One subscription per type, so each is type-checked against its handler.
        events.subscribe(self._job_touched, JobAdded)
        events.subscribe(self._job_touched, JobModified)
        events.subscribe(self._job_touched, JobStateChanged)
        events.subscribe(self._run_touched, RunFinished)
        events.subscribe(self._run_touched, RunRetrying)
        events.subscribe(self._run_touched, OccurrenceSkipped)
        events.subscribe(self._run_touched, OccurrenceMissed)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """At start: every job's state as restored is saved before anything runs."""
        for job_id in self._jobs:
            self._unsaved.mark(job_id)
        self._unsaved.bind(loop)

    def flush(self) -> None:
        self._unsaved.flush()

    def _job_touched(self, event: JobAdded | JobModified | JobStateChanged) -> None:
        self._unsaved.mark(event.job_id)

    def _run_touched(
        self, event: RunFinished | RunRetrying | OccurrenceSkipped | OccurrenceMissed
    ) -> None:
        self._unsaved.mark(event.run.job_id)

    def _save(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            job = self._jobs.get(job_id)
            if job is not None:  # a removed job's row goes with its JobRemoved event
                self._store.save_job(job_id, job.snapshot())
