"""Job state and run history in SQLite (WAL), fed by the engine's events.

One process owns a state file (an flock on a lock file beside it). Every write goes through one
writer thread in batches, so the event loop never waits on the disk: the loop only turns an
event into a row. A scheduled run's row is inserted, under UNIQUE(job_id, scheduled_for), before
the run starts; the engine awaits that claim, so an occurrence runs at most once across
restarts, clock steps and double starts. When the database cannot be written (locked, disk
full, read-only) the rows wait in a bounded buffer and the store says so in ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine import (
    Event,
    JobRemoved,
    JobSnapshot,
    OccurrenceMissed,
    OccurrenceSkipped,
    Run,
    RunFinished,
    RunProgress,
    RunStarted,
    Scheduler,
)
from ..engine.procfs import process_start
from .schema import NewerSchema, migrate

BATCH = 500  # rows per transaction
CLAIM_WAIT = 2.0  # a claim not written by then lets the run go ahead (the store is degraded)


class StoreError(Exception):
    """The state file cannot be used; the message says what to do."""


@dataclass(slots=True)
class _Op:
    sql: str
    params: tuple[Any, ...]
    claim: asyncio.Future[bool] | None = None
    droppable: bool = False  # progress: the first to go when the buffer is full


class Store:
    """Open with `Store.open(path)`; pass it as the scheduler's ``store`` (a DataStore); then
    `restore(scheduler, fingerprints)` and, on the loop, `start()`."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        lock_fd: int,
        *,
        keep_runs: int | None,
        keep_days: float | None,
        max_buffer: int,
    ) -> None:
        self.path = path
        self.keep_runs = keep_runs
        self.keep_days = keep_days
        self.max_buffer = max_buffer
        self.status = ""  # empty while writes go through; else what is wrong
        self.abandoned: list[dict[str, Any]] = []  # runs found unfinished at start-up
        self.on_status: Callable[[str], None] | None = None
        self._conn = conn
        self._lock_fd = lock_fd
        self._ops: deque[_Op] = deque()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the writer waits here for records
        self._drained = threading.Condition(lock)  # flush() waits here for the writer
        self._writing = False  # a batch has left the queue but is not committed yet
        self._closing = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._snapshots: dict[str, JobSnapshot] = {}  # the newest the scheduler gave per job
        self._dirty_jobs: set[str] = set()
        self._jobs_flush_scheduled = False
        self._fingerprints: dict[str, str] = {}
        self._pids: dict[str, int] = {}
        self.dropped = 0
        self._last_prune = 0.0

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        keep_runs: int | None = 1000,
        keep_days: float | None = None,
        max_buffer: int = 100_000,
    ) -> Store:
        db = Path(path).resolve()
        db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_fd = _lock(db)
        try:
            conn = _connect(db)
            store = cls(
                db, conn, lock_fd, keep_runs=keep_runs, keep_days=keep_days, max_buffer=max_buffer
            )
            store._mark_abandoned()
        except BaseException:
            os.close(lock_fd)
            raise
        return store

    def _mark_abandoned(self) -> None:
        """Runs that were going when the last owner died: kill what is left, say so."""
        now = time.time()
        rows = self._conn.execute(
            "SELECT run_id, job_id, scheduled_for, started_at, pid, pid_start FROM runs "
            "WHERE outcome IS NULL AND started_at IS NOT NULL"
        ).fetchall()
        for run_id, job_id, scheduled_for, started_at, pid, pid_start in rows:
            killed = pid is not None and _kill_group_if_same(pid, pid_start)
            reason = "jobtui stopped while this run was going; found at start-up"
            if killed:
                reason += f"; its process group {pid} was still running and was killed"
            self._conn.execute(
                "UPDATE runs SET outcome = 'abandoned', reason = ?, detected_at = ? "
                "WHERE run_id = ?",
                (reason, now, run_id),
            )
            self.abandoned.append(
                {
                    "run_id": run_id,
                    "job_id": job_id,
                    "scheduled_for": scheduled_for,
                    "started_at": started_at,
                    "killed": killed,
                }
            )

    # -- restoring job state --------------------------------------------------------------
    def restore(self, scheduler: Scheduler, fingerprints: dict[str, str]) -> None:
        """Give each job the state kept for it. A job whose definition changed keeps its
        counters and pause state but starts afresh from now (no catch-up)."""
        self._fingerprints = dict(fingerprints)
        rows = self._conn.execute(
            "SELECT job_id, paused, pause_reason, disabled_reason, consecutive_failures, "
            "run_count, last_fired, grid_anchor, finished, fingerprint FROM jobs"
        ).fetchall()
        for row in rows:
            job_id = row[0]
            if job_id not in scheduler:
                continue
            same = fingerprints.get(job_id, row[9]) == row[9]
            scheduler.restore(
                job_id,
                JobSnapshot(
                    paused=bool(row[1]),
                    pause_reason=row[2],
                    disabled_reason=row[3],
                    consecutive_failures=row[4],
                    run_count=row[5],
                    last_fired=row[6],
                    grid_anchor=row[7],
                    finished=bool(row[8]) and same,
                    catch_up=same,
                ),
            )

    # -- feeding it -----------------------------------------------------------------------
    def start(self) -> None:
        """Start writing (call it on the scheduler's loop, before the scheduler starts)."""
        self._loop = asyncio.get_running_loop()
        self._schedule_jobs_flush()
        self._thread = threading.Thread(target=self._writer, name="jobtui-store", daemon=True)
        self._thread.start()

    async def claim(self, run: Run) -> bool:
        assert self._loop is not None
        future: asyncio.Future[bool] = self._loop.create_future()
        self._push(
            _Op(
                "INSERT OR IGNORE INTO runs (run_id, job_id, scheduled_for, manual, attempt, "
                "started_at) VALUES (?, ?, ?, 0, 1, ?)",
                (run.run_id, run.job_id, run.scheduled_ts, time.time()),
                claim=future,
            )
        )
        if self.status:  # degraded: keep scheduling, the row waits in the buffer
            future.set_result(True)
            return True
        handle = self._loop.call_later(CLAIM_WAIT, lambda: future.done() or future.set_result(True))
        try:
            return await future
        finally:
            handle.cancel()

    def save_job(self, job_id: str, snapshot: JobSnapshot) -> None:
        self._snapshots[job_id] = snapshot
        self._dirty(job_id)

    def record(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            run = event.run
            if run.manual:
                self._push(
                    _Op(
                        "INSERT OR IGNORE INTO runs (run_id, job_id, scheduled_for, manual, "
                        "attempt, started_at) VALUES (?, ?, ?, 1, ?, ?)",
                        (run.run_id, run.job_id, run.scheduled_ts, run.attempt, run.started_ts),
                    )
                )
            # A scheduled run's row was written by its claim; its finish sets the exact start.
        elif isinstance(event, RunProgress):
            run = event.run
            pid_start = None
            if run.pid is not None and self._pids.get(run.run_id) != run.pid:
                self._pids[run.run_id] = run.pid
                pid_start = process_start(run.pid)
            self._push(
                _Op(
                    "UPDATE runs SET progress = ?, status_message = ?, attempt = ?, "
                    "pid = coalesce(?, pid), pid_start = coalesce(?, pid_start) WHERE run_id = ?",
                    (run.progress, run.status_message, run.attempt, run.pid, pid_start, run.run_id),
                    droppable=pid_start is None,
                )
            )
        elif isinstance(event, RunFinished):
            run = event.run
            self._pids.pop(run.run_id, None)
            self._push(_Op(_FINISH_SQL, _finish_params(run)))
        elif isinstance(event, OccurrenceSkipped | OccurrenceMissed):
            run = event.run
            self._push(
                _Op(
                    "INSERT OR IGNORE INTO runs (run_id, job_id, scheduled_for, manual, "
                    "finished_at, outcome, reason) VALUES (?, ?, ?, 0, ?, ?, ?)",
                    (
                        run.run_id,
                        run.job_id,
                        run.scheduled_ts,
                        run.finished_ts,
                        run.outcome.value if run.outcome else None,
                        run.reason,
                    ),
                )
            )
        elif isinstance(event, JobRemoved):
            self._dirty_jobs.discard(event.job_id)
            self._snapshots.pop(event.job_id, None)
            self._push(_Op("DELETE FROM jobs WHERE job_id = ?", (event.job_id,)))

    def set_fingerprint(self, job_id: str, fingerprint: str) -> None:
        """A reload changed a job's definition: remember the one it now has."""
        self._fingerprints[job_id] = fingerprint
        self._dirty(job_id)

    def _dirty(self, job_id: str) -> None:
        self._dirty_jobs.add(job_id)
        self._schedule_jobs_flush()

    def _schedule_jobs_flush(self) -> None:
        if not self._jobs_flush_scheduled and self._loop is not None:
            self._jobs_flush_scheduled = True
            self._loop.call_soon(self._flush_jobs)

    def _flush_jobs(self) -> None:
        """Job rows are written once per loop turn, however many events touched them."""
        self._jobs_flush_scheduled = False
        now = time.time()
        for job_id in self._dirty_jobs:
            job = self._snapshots.get(job_id)
            if job is None:
                continue
            self._push(
                _Op(
                    "INSERT OR REPLACE INTO jobs (job_id, paused, pause_reason, disabled_reason, "
                    "consecutive_failures, run_count, last_fired, next_fire, grid_anchor, "
                    "finished, fingerprint, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        int(job.paused),
                        job.pause_reason,
                        job.disabled_reason,
                        job.consecutive_failures,
                        job.run_count,
                        job.last_fired,
                        job.next_fire,
                        job.grid_anchor,
                        int(job.finished),
                        self._fingerprints.get(job_id, ""),
                        now,
                    ),
                )
            )
        self._dirty_jobs.clear()

    def _push(self, op: _Op) -> None:
        with self._cond:
            if len(self._ops) >= self.max_buffer:
                self._make_room()
            self._ops.append(op)
            self._cond.notify()

    def _make_room(self) -> None:
        for index, queued in enumerate(self._ops):
            if queued.droppable:
                del self._ops[index]
                self.dropped += 1
                return
        dropped = self._ops.popleft()
        self.dropped += 1
        if dropped.claim is not None:
            self._resolve(dropped.claim, True)

    # -- the writer thread ----------------------------------------------------------------
    def _writer(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                while not self._ops and not self._closing:
                    self._cond.wait(timeout=60.0)
                    if not self._ops and not self._closing:
                        break  # an idle minute: prune
                if not self._ops and self._closing:
                    return
                batch = [self._ops.popleft() for _ in range(min(BATCH, len(self._ops)))]
                self._writing = bool(batch)
            try:
                results = self._write(batch) if batch else []
                if time.monotonic() - self._last_prune > 60.0:
                    self._prune()
            except sqlite3.Error as exc:
                with self._cond:
                    self._ops.extendleft(reversed(batch))
                    self._writing = False
                    self._drained.notify_all()
                self._set_status(
                    f"cannot write the state database ({exc}); "
                    f"{len(self._ops)} records wait in memory"
                )
                with self._cond:  # runs waiting for their claim go ahead meanwhile
                    for waiting in self._ops:
                        self._resolve(waiting.claim, True)
                if self._closing and backoff > 2.0:
                    return  # closing and still failing: what remains is lost, and said so
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            with self._cond:
                self._writing = False
                self._drained.notify_all()
            if self.status:
                self._set_status("")
            if results:
                self._resolve_all([(op.claim, claimed) for op, claimed in results])

    def _write(self, batch: list[_Op]) -> list[tuple[_Op, bool]]:
        results = []
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for segment in _segments(batch):
                # Claims first (each is its own statement: its row count is the answer), then
                # each kind of statement in one executemany: far less Python per row.
                groups: dict[str, list[tuple[Any, ...]]] = {}
                for op in segment:
                    if op.claim is not None:
                        cursor = conn.execute(op.sql, op.params)
                        results.append((op, cursor.rowcount == 1))
                    else:
                        groups.setdefault(op.sql, []).append(op.params)
                for sql, rows in groups.items():
                    conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results

    def _prune(self) -> None:
        self._last_prune = time.monotonic()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self.keep_days is not None:
                cutoff = time.time() - self.keep_days * 86400
                conn.execute(
                    "DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?", (cutoff,)
                )
            if self.keep_runs is not None:
                for (job_id,) in conn.execute("SELECT DISTINCT job_id FROM runs").fetchall():
                    conn.execute(
                        "DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs WHERE job_id = ? "
                        "AND outcome IS NOT NULL ORDER BY scheduled_for DESC LIMIT -1 OFFSET ?)",
                        (job_id, self.keep_runs),
                    )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def prune_now(self) -> None:
        """Apply the retention limits at once (they are otherwise applied every minute)."""
        with self._cond:
            self._last_prune = 0.0
            self._cond.notify()

    def _resolve_all(self, answers: list[tuple[asyncio.Future[bool] | None, bool]]) -> None:
        """Answer a batch's claims with one wake-up of the loop, not one per claim."""
        if self._loop is None:
            return

        def settle() -> None:
            for future, value in answers:
                if future is not None and not future.done():
                    future.set_result(value)

        with contextlib.suppress(RuntimeError):  # the loop closed
            self._loop.call_soon_threadsafe(settle)

    def _resolve(self, future: asyncio.Future[bool] | None, value: bool) -> None:
        if future is None or self._loop is None:
            return

        def settle() -> None:
            if not future.done():
                future.set_result(value)

        with contextlib.suppress(RuntimeError):  # the loop closed
            self._loop.call_soon_threadsafe(settle)

    def _set_status(self, status: str) -> None:
        self.status = status
        callback, loop = self.on_status, self._loop
        if callback is not None and loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, status)

    # -- closing --------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record queued so far is committed; False if that took too long.
        Safe from any thread (job rows are queued on the loop, once per loop turn)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._ops or self._writing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._drained.wait(remaining)
        return True

    def close(self) -> None:
        """Write what is queued, then let go of the database and the lock (once). Call it
        after the scheduler has stopped: it queues the jobs' final rows itself."""
        if self._lock_fd < 0:
            return
        self._flush_jobs()
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        os.close(self._lock_fd)
        self._lock_fd = -1


_FINISH_SQL = (
    "UPDATE runs SET finished_at = ?, outcome = ?, reason = ?, attempt = ?, progress = ?, "
    "status_message = ?, error_type = ?, error_message = ?, error_traceback = ?, exit_code = ?, "
    "signal = ?, output = ?, output_dropped_bytes = ?, started_at = coalesce(?, started_at) "
    "WHERE run_id = ?"
)


def _finish_params(run: Run) -> tuple[Any, ...]:
    error = run.error
    output = run.output if run.has_output else None
    return (
        run.finished_ts,
        run.outcome.value if run.outcome else None,
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


def _segments(batch: list[_Op]) -> list[list[_Op]]:
    """Split a batch where statements must keep their order: at each DELETE (a job removed
    and added again in one batch must end up present)."""
    segments: list[list[_Op]] = [[]]
    for op in batch:
        if op.sql.startswith("DELETE"):
            segments.append([op])
            segments.append([])
        else:
            segments[-1].append(op)
    return [segment for segment in segments if segment]


def _lock(db: Path) -> int:
    lock_path = db.with_name(db.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(
            f"another jobtui (pid {owner}) owns {db}; stop it first (jobtui history and "
            "jobtui list only read, and can run beside it)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _connect(db: Path) -> sqlite3.Connection:
    moved = db.with_name(db.name + ".corrupt")
    advice = (
        f"the state database {db} is damaged ({{}}); jobtui will not replace it by itself. "
        f"Move it aside and start again: mv {db} {moved} (the run history in it is kept there)"
    )
    try:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA busy_timeout = 5000")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            conn.close()
            raise StoreError(advice.format(check))
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(advice.format(exc)) from None
    except NewerSchema as exc:
        raise StoreError(str(exc)) from None
    return conn


def _kill_group_if_same(pgid: int, start: int | None) -> bool:
    """Kill what is left of a run's process group, unless its pid now names another process.
    (A pid still in use as a group id is not handed out again, so the group is ours.)"""
    leader_start = process_start(pgid)
    if leader_start is not None and start is not None and leader_start != start:
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
