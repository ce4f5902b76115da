"""Job state and run history, fed by the engine: the `DataStore` the scheduler calls.

A scheduled run's record is written, under UNIQUE(job_id, scheduled_for), before the run starts;
the engine starts the run only once that claim is answered, so an occurrence runs at most once
across restarts, clock steps and double starts. Events become backend-neutral `Write`s on the
loop (cheap, never blocking); the `BatchWriter` thread commits them; the backend (SQLite here)
knows the SQL. When the backend cannot be written (locked, disk full, read-only) the writes wait
in a bounded buffer and the store says so in ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..engine import (
    Event,
    JobRemoved,
    JobSnapshot,
    JobStateChanged,
    OccurrenceMissed,
    OccurrenceSkipped,
    Outcome,
    Run,
    RunFinished,
    RunProgress,
    RunStarted,
    Scheduler,
    SchedulerStarted,
    SchedulerStopped,
)
from ..engine.datastore import ClaimAnswer
from ..engine.procfs import process_start
from .claimwait import ClaimBatch, ClaimDeadlines
from .history import read_context, read_runs
from .interface import PeerRuns
from .sqlite import DamagedDatabase, OwnedElsewhere, SQLiteBackend
from .statefile import UnusableStatePath
from .writer import Backend, BatchWriter
from .writes import Kind, StoreUnavailable, Write

CLAIM_WAIT = 2.0  # a claim not written by then lets the run go ahead (the store is degraded)
# Written for every run: an Enum member read through its class costs a function call in 3.11.
_CLAIM, _FINISH, _SAVE_JOB, _JOB_EVENT = Kind.CLAIM, Kind.FINISH, Kind.SAVE_JOB, Kind.JOB_EVENT
_SUCCEEDED, _OUTCOME_SUCCEEDED = Kind.SUCCEEDED, Outcome.SUCCEEDED
_FINGERPRINT = 10  # where a SAVE_JOB row has the job's fingerprint (then the time it was saved)


class StoreError(Exception):
    """The state file cannot be used; the message says what to do."""


class StoreBackend(Backend, Protocol):
    """What Store asks of a backend besides the writer's batches (SQLite's, PostgreSQL's)."""

    @property
    def path(self) -> Path: ...

    def mark_abandoned(self) -> list[dict[str, Any]]: ...

    def load_jobs(self) -> list[dict[str, Any]]: ...

    def newest_occurrences(self, job_ids: list[str]) -> dict[str, float]: ...

    def prune(self) -> None: ...

    def close(self) -> None: ...


class Store:
    """Open with `Store.open(path)`; then `restore(scheduler, fingerprints)`, hand it to the
    scheduler (`Scheduler(store=...)`) and `start()` it on the scheduler's loop."""

    def __init__(self, backend: StoreBackend, *, max_buffer: int) -> None:
        self.backend = backend
        self.path = backend.path
        self.writer = BatchWriter(backend, max_buffer=max_buffer)
        self.abandoned: list[dict[str, Any]] = []  # runs found unfinished at start-up
        self.on_abandoned: Callable[[list[dict[str, Any]]], None] | None = None  # never here
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fingerprints: dict[str, str] = {}
        self._pids: dict[str, int] = {}
        # Each job's row as last saved, for set_fingerprint to write again: a tuple of plain
        # values, which the cycle collector stops walking once it has seen it, where a kept
        # JobSnapshot (one a run) was walked twice over in a burst (bench/store.py).
        self._saved_rows: dict[str, tuple[Any, ...]] = {}
        self._closed = False
        # The scheduler hands it these events only, each straight to its handler (see
        # DataStore.record): no other is even built for it.
        self.recorders: dict[type[Event], Callable[[Any], None]] = {
            RunStarted: self._run_started,
            RunProgress: self._run_progress,
            RunFinished: self._run_finished,
            OccurrenceSkipped: self._occurrence,
            OccurrenceMissed: self._occurrence,
            JobRemoved: self._job_removed,
            JobStateChanged: self._job_state_changed,
            SchedulerStarted: self._session_started,
            SchedulerStopped: self._session_stopped,
        }
        self._session: float | None = None  # when this process's scheduler started
        # No other host shares an SQLite state: nothing ever calls it.
        self.on_peer_runs: Callable[[PeerRuns], None] | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        keep_runs: int | None = 1000,
        keep_days: float | None = None,
        max_buffer: int = 100_000,
        busy_timeout: float = 5.0,
    ) -> Store:
        """Own the state file at ``path``: lock it, check and migrate it, find the runs the
        last owner left unfinished, and apply the retention limits."""
        try:
            backend = SQLiteBackend(
                Path(path).resolve(),
                keep_runs=keep_runs,
                keep_days=keep_days,
                busy_timeout=busy_timeout,
            )
        except (OwnedElsewhere, DamagedDatabase, UnusableStatePath) as exc:
            raise StoreError(str(exc)) from None
        try:
            store = cls(backend, max_buffer=max_buffer)
            store.abandoned = backend.mark_abandoned()
            with contextlib.suppress(StoreUnavailable):  # locked: the writer prunes later
                backend.prune()
        except BaseException:
            backend.close()
            raise
        return store

    @property
    def status(self) -> str:
        """Empty while writes go through; else what is wrong."""
        return self.writer.status

    @property
    def on_status(self) -> Callable[[str], None] | None:
        return self.writer.on_status

    @on_status.setter
    def on_status(self, callback: Callable[[str], None] | None) -> None:
        self.writer.on_status = callback

    # -- restoring job state --------------------------------------------------------------
    def load_snapshots(self, fingerprints: dict[str, str]) -> dict[str, JobSnapshot]:
        """The state kept for each job. A job whose definition changed (its fingerprint
        differs) keeps its counters and pause state but starts afresh from now."""
        self._fingerprints = dict(fingerprints)
        snapshots = {}
        rows = self.backend.load_jobs()
        newest = self.backend.newest_occurrences([row["job_id"] for row in rows])
        for row in rows:
            job_id = row["job_id"]
            same = fingerprints.get(job_id, row["fingerprint"]) == row["fingerprint"]
            last_fired = max(
                (ts for ts in (row["last_fired"], newest.get(job_id)) if ts is not None),
                default=None,
            )
            snapshots[job_id] = JobSnapshot(
                paused=bool(row["paused"]),
                pause_reason=row["pause_reason"],
                disabled_reason=row["disabled_reason"],
                consecutive_failures=row["consecutive_failures"],
                run_count=row["run_count"],
                last_fired=last_fired,
                grid_anchor=row["grid_anchor"],
                finished=bool(row["finished"]) and same,
                catch_up=same,
            )
        return snapshots

    def restore(self, scheduler: Scheduler, fingerprints: dict[str, str]) -> None:
        """Give each of the scheduler's jobs the state kept for it (a shortcut for scripts
        and tests; a host does this through load_snapshots)."""
        for job_id, snapshot in self.load_snapshots(fingerprints).items():
            if job_id in scheduler:
                scheduler.restore(job_id, snapshot)

    def set_fingerprint(self, job_id: str, fingerprint: str) -> None:
        """A reload changed a job's definition: remember the one it now has."""
        self._fingerprints[job_id] = fingerprint
        row = self._saved_rows.get(job_id)
        if row is not None and self.writer.started:
            self._save_row(job_id, (*row[:_FINGERPRINT], fingerprint, time.time()))

    # -- feeding it -----------------------------------------------------------------------
    def start(self) -> None:
        """Start writing; call it on the scheduler's loop, before the scheduler starts (which
        then claims its runs here and records its events)."""
        self._loop = asyncio.get_running_loop()
        self._claim_deadlines = ClaimDeadlines(self._loop, CLAIM_WAIT, self.writer.settle_queued)
        self.writer.start(self._loop)

    def claim_many(self, runs: Sequence[Run], answer: ClaimAnswer) -> asyncio.Future[None]:
        """Write each run's occurrence row; ``answer(run, True)`` if it was not there (this
        process runs it). Answered by the writer thread in batches, or after CLAIM_WAIT
        regardless; the future is done once every run is answered."""
        loop = self._loop
        assert loop is not None, "start the store before the scheduler"
        batch = ClaimBatch(loop, runs, answer)
        now = time.time()
        # Once per run: the Write built from its fields in order (CLAIM's: row, claim ticket,
        # not droppable, not journaled, job).
        self.writer.push_many(
            [
                Write(
                    _CLAIM,
                    (run.run_id, run.job_id, run.scheduled_ts, now),
                    ticket,
                    False,
                    False,
                    run.job_id,
                )
                for run, ticket in zip(runs, batch.tickets, strict=True)
            ]
        )
        # Degraded or not, the writer answers: from the database, or (when it cannot be
        # written) once the claims are in the backend's journal, within a short busy timeout.
        self._claim_deadlines.watch(batch)
        return batch.all_answered

    def claim(self, run: Run) -> asyncio.Future[bool]:
        """One run's claim (the engine claims through claim_many): True if this process runs
        the occurrence."""
        assert self._loop is not None, "start the store before the scheduler"
        claimed: asyncio.Future[bool] = self._loop.create_future()

        def answer(_: Run, value: bool) -> None:
            if not claimed.done():
                claimed.set_result(value)

        self.claim_many([run], answer)
        return claimed

    def record(self, event: Event) -> None:
        handler = self.recorders.get(type(event))
        if handler is not None:
            handler(event)

    def save_job(self, job_id: str, snapshot: JobSnapshot) -> None:
        self._save_row(
            job_id,
            (
                job_id,
                1 if snapshot.paused else 0,
                snapshot.pause_reason,
                snapshot.disabled_reason,
                snapshot.consecutive_failures,
                snapshot.run_count,
                snapshot.last_fired,
                snapshot.next_fire,
                snapshot.grid_anchor,
                1 if snapshot.finished else 0,
                self._fingerprints.get(job_id, ""),  # at _FINGERPRINT
                time.time(),
            ),
        )

    def _save_row(self, job_id: str, row: tuple[Any, ...]) -> None:
        self._saved_rows[job_id] = row
        self.writer.push(Write(_SAVE_JOB, row, None, False, False, job_id))

    def _run_started(self, event: RunStarted) -> None:
        run = event.run
        # A scheduled run's row was written by its claim; its finish sets the exact start.
        if run.manual:
            self.writer.push(
                Write(
                    Kind.MANUAL_RUN,
                    (run.run_id, run.job_id, run.scheduled_ts, run.attempt, run.started_ts),
                    job_id=run.job_id,
                )
            )

    def _run_progress(self, event: RunProgress) -> None:
        run = event.run
        pid_start = None
        if run.pid is not None and self._pids.get(run.run_id) != run.pid:
            self._pids[run.run_id] = run.pid
            pid_start = process_start(run.pid)
        self.writer.push(
            Write(
                Kind.PROGRESS,
                (run.progress, run.status_message, run.attempt, run.pid, pid_start, run.run_id),
                droppable=pid_start is None,  # the pid must survive: it is how a crash is undone
                job_id=run.job_id,
            )
        )

    def _run_finished(self, event: RunFinished) -> None:
        run = event.run
        if self._pids:
            self._pids.pop(run.run_id, None)
        # Positional: a class called with keywords builds a dict for __init__, every run.
        if run.outcome is _OUTCOME_SUCCEEDED and _nothing_more_to_say(run):
            params = (run.finished_ts, run.attempt, run.started_ts, run.run_id)
            self.writer.push(Write(_SUCCEEDED, params, None, False, False, run.job_id))
        else:
            self.writer.push(Write(_FINISH, _finish_params(run), None, False, False, run.job_id))

    def _occurrence(self, event: OccurrenceSkipped | OccurrenceMissed) -> None:
        run = event.run
        outcome = run.outcome.value if run.outcome else None
        self.writer.push(
            Write(
                Kind.OCCURRENCE,
                (run.run_id, run.job_id, run.scheduled_ts, run.finished_ts, outcome, run.reason),
                job_id=run.job_id,
            )
        )

    def _job_state_changed(self, event: JobStateChanged) -> None:
        self._note(event.job_id, event.time, event.state, event.reason)  # a one-shot's every run

    def _session_started(self, event: SchedulerStarted) -> None:
        self._session = event.time
        self.writer.push(Write(Kind.SESSION_START, (event.time, os.getpid())))

    def _session_stopped(self, event: SchedulerStopped) -> None:
        if self._session is not None:
            self.writer.push(Write(Kind.SESSION_STOP, (event.time, self._session, os.getpid())))
            self._session = None

    def note_job_event(
        self, job_id: str, kind: str, detail: str, *, at: float | None = None
    ) -> None:
        """Keep something that happened to a job outside its runs (paused, disabled, a hook
        that failed), for `jobtui why`."""
        self._note(job_id, time.time() if at is None else at, kind, detail)

    def _note(self, job_id: str, when: float, kind: str, detail: str) -> None:
        self.writer.push(Write(_JOB_EVENT, (job_id, when, kind, detail)))

    def _job_removed(self, event: JobRemoved) -> None:
        self._saved_rows.pop(event.job_id, None)
        self.writer.push(Write(Kind.DELETE_JOB, (event.job_id,), job_id=event.job_id))

    # -- reading and closing --------------------------------------------------------------
    def read_runs(self, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest runs, newest first, including what was queued a moment ago."""
        self.writer.flush(1.0)
        return read_runs(self.path, job=job, limit=limit)

    def read_context(self, job: str) -> dict[str, Any]:
        """Sessions, the job's notes and kept state (see history.read_context); blocking."""
        self.writer.flush(1.0)
        return read_context(self.path, job)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued so far is committed; False if that took too long.
        Safe from any thread."""
        return self.writer.flush(timeout)

    def close(self) -> None:
        """Write what is queued, then let go of the database and the lock (once). Call it
        after the scheduler has stopped."""
        if self._closed:
            return
        self._closed = True
        if self.writer.close():  # never pull the database from under a writer still going
            self.backend.close()


def _nothing_more_to_say(run: Run) -> bool:
    """Whether a run's record is its times and attempt alone, the rest as Kind.SUCCEEDED
    writes it (SUCCEEDED_PLAINLY)."""
    return (
        run.error is None
        and run.exit_code is None
        and run.signal is None
        and not run.reason
        and run.progress is None
        and not run.status_message
        and not run.has_output
    )


def _finish_params(run: Run) -> tuple[Any, ...]:
    error = run.error
    output = run.output if run.has_output else None
    return (
        run.finished_ts,
        # _value_: the str .value returns, without Enum's Python-level property (every run).
        run.outcome._value_ if run.outcome else None,
        run.reason,
        run.attempt,
        run.progress,
        run.status_message,
        error.type if error else None,
        error.message if error else None,
        error.traceback if error else None,
        run.exit_code,
        run.signal,
        output.text() if output is not None else None,
        output.dropped_bytes if output is not None else 0,
        run.started_ts,
        run.run_id,
    )
