"""The SQLite backend: one file (WAL) owned by one process through an flock beside it.

It opens, checks and migrates the database, finds the runs the last owner left unfinished,
reads the jobs' kept state, and turns the writer's batches into statements (sqlitesql.py's):
each kind's rows in a few many-row statements (sqlrows.py), far less Python per row than a
statement each."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..engine.procfs import process_start
from .schema import NewerSchema, migrate
from .sqlitesql import GROUP_ORDER, STATEMENTS, WARMED
from .sqlrows import RowWriter
from .statefile import LockHeld, create_private, take_lock
from .vanished import identity, relock, write_copy
from .writes import Kind, StoreUnavailable, Write

log = logging.getLogger("jobtui.store")
# Once running, a write waits this long for another process's lock, then the writer buffers and
# tries again: runs waiting for their claim are let go ahead (journaled) without being late.
WRITE_BUSY_TIMEOUT = 0.1
JOB_COLUMNS = (
    "job_id, paused, pause_reason, disabled_reason, consecutive_failures, run_count, "
    "last_fired, grid_anchor, finished, fingerprint"
)


class OwnedElsewhere(Exception):
    """Another process holds the state file's lock; the message names its pid."""


class DamagedDatabase(Exception):
    """The file is not a usable database (or is newer than this jobtui); the message says
    what to do."""


class SQLiteBackend:
    shared = False  # one process owns the file (its lock): claims not written are journaled
    # Writes per transaction. More than the writer's default: a commit and each statement let
    # go of the GIL, and the writer gets it back only when the busy loop is made to let go.
    batch_size = 4096

    def __init__(
        self,
        path: Path,
        *,
        keep_runs: int | None,
        keep_days: float | None,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = path
        self.keep_runs = keep_runs
        self.keep_days = keep_days
        create_private(path)
        self._lock_fd = _lock(path)
        # Claims whose runs went ahead while the database could not be written, one JSON
        # array (CLAIM's parameters) a line; put into the database at the next write.
        self.journal_path = path.with_name(path.name + ".claims")
        self._journaled = False
        try:
            self._conn = _connect(path, busy_timeout)
        except BaseException:
            os.close(self._lock_fd)
            raise
        try:
            self._recover_journal()
            self._conn.execute(f"PRAGMA busy_timeout = {int(WRITE_BUSY_TIMEOUT * 1000)}")
        except BaseException:
            self.close()
            raise
        self._identity = identity(path)  # the file opened, to notice it deleted or replaced
        self._rows = RowWriter(self._conn, STATEMENTS)
        self._most_rows = 0  # the most rows of one kind a batch has had (see warm)
        self._warmed_rows = 0  # statements for up to this many rows are prepared

    # -- at start-up ----------------------------------------------------------------------
    def mark_abandoned(self) -> list[dict[str, Any]]:
        """Runs that were going when the last owner died: kill what is left, say so."""
        now = time.time()
        found = []
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
            found.append(
                {
                    "run_id": run_id,
                    "job_id": job_id,
                    "scheduled_for": scheduled_for,
                    "started_at": started_at,
                    "killed": killed,
                    "reason": reason,
                    "detected_at": now,
                }
            )
        return found

    def newest_occurrences(self, job_ids: list[str]) -> dict[str, float]:
        """Per job, the newest occurrence the database has a record of (run, skipped or missed).
        A crash can lose a job's saved state while its claim was written: that occurrence has
        fired all the same, and must not come round again as a catch-up. (One indexed look-up
        a job: a scan of all runs took 0.1 s per million.)"""
        newest = {}
        for job_id in job_ids:
            (ts,) = self._conn.execute(
                "SELECT max(scheduled_for) FROM runs WHERE job_id = ? AND manual = 0", (job_id,)
            ).fetchone()
            if ts is not None:
                newest[job_id] = ts
        return newest

    def load_jobs(self) -> list[dict[str, Any]]:
        """Every job's kept state, as rows keyed by JOB_COLUMNS' names."""
        names = [name.strip() for name in JOB_COLUMNS.split(",")]
        rows = self._conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs").fetchall()
        return [dict(zip(names, row, strict=True)) for row in rows]

    # -- the writer's side ----------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error; SQLite's errors become
        StoreUnavailable, which the writer answers by buffering and trying again."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(str(exc)) from exc

    def warm(self) -> None:
        """Prepare the statements written for every run before a burst needs them, in the
        sizes for as many rows as a batch has had of one kind (the writer calls it whenever it
        finds nothing to write; at start, every job's state is saved, so this soon covers a
        pass of every job). Best effort: a database locked by another process leaves them to
        be prepared when first used, as they were before."""
        rows, done = self._most_rows, self._warmed_rows
        if rows <= done:
            return
        self._warmed_rows = rows  # tried once: a locked database is not waited for again
        conn = self._conn
        try:
            conn.execute("BEGIN")
            try:
                self._rows.warm(conn, WARMED, rows, done)
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.info("statements not prepared ahead (%s): each is when first written", exc)

    # -- the file deleted or replaced under it --------------------------------------------
    def check(self) -> str:
        found = identity(self.path)
        if found == self._identity:
            return ""
        what = "deleted" if found is None else "replaced by another file"
        self._lock_fd = relock(self.path, self._lock_fd)  # raises Disowned
        try:
            moved = write_copy(self._conn, self.path)
            # Closed before the new file opens: closing removes the old write-ahead log by
            # its name, which the new file's would then have.
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = _connect(self.path, WRITE_BUSY_TIMEOUT)
            self._warmed_rows = 0  # a new connection: none of its statements are prepared
        except (sqlite3.Error, OSError, DamagedDatabase) as exc:
            raise StoreUnavailable(
                f"the state database {self.path} was {what}, and writing it again failed: {exc}"
            ) from exc
        self._identity = identity(self.path)
        aside = f" (the file found there is now {moved.name})" if moved is not None else ""
        return (
            f"the state database {self.path} was {what} while jobtui ran; it was written "
            f"again from the open copy, with all its history and the jobs' state{aside}"
        )

    # -- claims that went ahead while the database could not be written ------------------
    def journal(self, claims: list[Write]) -> None:
        lines = "".join(json.dumps(list(w.params)) + "\n" for w in claims)
        fd = _open_own(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, lines.encode())
            os.fdatasync(fd)
        finally:
            os.close(fd)
        self._journaled = True

    def _journal_rows(self) -> list[tuple[Any, ...]]:
        """The journaled claims. Raises StoreUnavailable if the journal is not this user's own
        file: its rows would mark occurrences as run (so they never run)."""
        try:
            fd = _open_own(self.journal_path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreUnavailable(f"{exc.strerror}: {self.journal_path}") from None
        with open(fd, encoding="utf-8", errors="replace") as journal:
            text = journal.read()
        rows = []
        for line in text.splitlines():
            # A line cut short by a crash while it was written: its run had not been let go.
            with contextlib.suppress(ValueError, TypeError):
                rows.append(tuple(json.loads(line)))
        return rows

    def _recover_journal(self) -> None:
        """At open: claims a dead owner journaled become rows before anything reads the runs
        (they are then found abandoned, and their occurrences do not come round again)."""
        try:
            rows = self._journal_rows()
        except StoreUnavailable as exc:
            raise DamagedDatabase(
                f"jobtui will not read the claims journal {self.journal_path} ({exc}): it is "
                "not this user's own file, so someone else put it there; look at it, remove "
                "it, and start again"
            ) from None
        if rows:
            try:
                with self._transaction() as conn:
                    conn.executemany(STATEMENTS[Kind.CLAIM], rows)
            except StoreUnavailable as exc:
                raise DamagedDatabase(
                    f"cannot record the {len(rows)} claims in {self.journal_path} in "
                    f"{self.path} ({exc}); try again when it is writable"
                ) from None
        with contextlib.suppress(FileNotFoundError):
            self.journal_path.unlink()

    def write(self, batch: list[Write]) -> list[tuple[Write, bool]]:
        results: list[tuple[Write, bool]] = []
        journaled = self._journal_rows() if self._journaled else []
        with self._transaction() as conn:
            # Journaled claims first: their runs went ahead, their rows go in with this batch.
            if journaled:
                conn.executemany(STATEMENTS[Kind.CLAIM], journaled)
            # One pass over the batch, grouping by kind: claims first, then each kind of write
            # in a few many-row statements, in GROUP_ORDER. A job deletion is written where it
            # comes, after what came before it (a job removed and added again in one batch must
            # end up present). This runs with the GIL held, which the event loop then waits for.
            claims: list[Write] = []
            groups: dict[Kind, list[tuple[Any, ...]]] = {}
            # Read once: an Enum member read through its class is a call, for every write.
            claim, delete = Kind.CLAIM, Kind.DELETE_JOB
            for write in batch:
                kind = write.kind
                if kind is claim:
                    claims.append(write)
                elif kind is delete:
                    results += self._write_groups(conn, claims, groups)
                    claims, groups = [], {}
                    self._rows.write(conn, kind, [write.params])
                else:
                    rows = groups.get(kind)
                    if rows is None:
                        rows = groups[kind] = []
                    rows.append(write.params)
            results += self._write_groups(conn, claims, groups)
        if journaled:
            self.journal_path.unlink()
            self._journaled = False
        return results

    def _write_groups(
        self,
        conn: sqlite3.Connection,
        claims: list[Write],
        groups: dict[Kind, list[tuple[Any, ...]]],
    ) -> list[tuple[Write, bool]]:
        """Claims first, then each kind's rows in GROUP_ORDER."""
        results = self._claim(conn, claims) if claims else []
        most = len(claims)
        for kind in GROUP_ORDER:
            rows = groups.get(kind)
            if not rows:
                continue
            self._rows.write(conn, kind, _latest_per_job(rows) if kind is Kind.SAVE_JOB else rows)
            most = max(most, len(rows))
        self._most_rows = max(self._most_rows, most)
        return results

    def _claim(self, conn: sqlite3.Connection, claims: list[Write]) -> list[tuple[Write, bool]]:
        """Insert the claims' rows; each is answered with whether its row went in. All did
        (the usual case) when as many rows went in as there were claims; else the ones that
        went in are the ones whose run id has a row now (run ids are never used twice)."""
        inserted = self._rows.write(conn, Kind.CLAIM, [w.params for w in claims])
        if inserted == len(claims):
            return [(write, True) for write in claims]
        run_ids = [w.params[0] for w in claims]
        present: set[str] = set()
        chunk = 500  # under SQLite's oldest limit on parameters (999)
        for start in range(0, len(run_ids), chunk):
            part = run_ids[start : start + chunk]
            marks = ", ".join(["?"] * len(part))
            found = conn.execute(f"SELECT run_id FROM runs WHERE run_id IN ({marks})", part)
            present.update(run_id for (run_id,) in found)
        return [(write, write.params[0] in present) for write in claims]

    def prune(self) -> None:
        with self._transaction() as conn:
            if self.keep_days is not None:
                cutoff = time.time() - self.keep_days * 86400
                conn.execute(
                    "DELETE FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?", (cutoff,)
                )
                conn.execute("DELETE FROM job_events WHERE at < ?", (cutoff,))
                conn.execute("DELETE FROM sessions WHERE stopped_at < ?", (cutoff,))
            if self.keep_runs is not None:
                # Notes and sessions are few next to runs: a generous bound keeps them finite.
                conn.execute(
                    "DELETE FROM job_events WHERE rowid IN (SELECT rowid FROM job_events "
                    "ORDER BY at DESC LIMIT -1 OFFSET ?)",
                    (self.keep_runs * 10,),
                )
                conn.execute(
                    "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions "
                    "ORDER BY started_at DESC LIMIT -1 OFFSET ?)",
                    (self.keep_runs,),
                )
                for (job_id,) in conn.execute("SELECT DISTINCT job_id FROM runs").fetchall():
                    conn.execute(
                        "DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs "
                        "WHERE job_id = ? AND outcome IS NOT NULL "
                        "ORDER BY scheduled_for DESC LIMIT -1 OFFSET ?)",
                        (job_id, self.keep_runs),
                    )

    def close(self) -> None:
        """Let go of the database and the lock (once)."""
        if self._lock_fd < 0:
            return
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        os.close(self._lock_fd)
        self._lock_fd = -1


def _latest_per_job(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """A job's saved state is the whole of it: of several saves of one job in a batch (a job
    running often, or the writes that waited while the database could not be written) only
    the last is written. No deletion of a job comes between them: write() writes what it
    grouped before each deletion, and groups anew after it."""
    latest = {row[0]: row for row in rows}
    return rows if len(latest) == len(rows) else list(latest.values())


def _open_own(path: Path, flags: int) -> int:
    """``path`` opened (created 0600 with O_CREAT) if it is this user's own regular file, not a
    symlink: beside a state database in a shared folder (/tmp), anyone can put one there."""
    fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    info = os.fstat(fd)
    if info.st_uid != os.geteuid() or not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise PermissionError(errno.EPERM, f"not a file of uid {os.geteuid()}", str(path))
    return fd


def _lock(db: Path) -> int:
    try:
        return take_lock(db)
    except LockHeld as held:
        raise OwnedElsewhere(
            f"another jobtui (pid {held.owner}) owns {db}; stop it first (jobtui history and "
            "jobtui list only read, and can run beside it)"
        ) from None


def _connect(db: Path, busy_timeout: float) -> sqlite3.Connection:
    moved = db.with_name(db.name + ".corrupt")
    advice = (
        f"the state database {db} is damaged ({{}}); jobtui will not replace it by itself. "
        f"Move it aside and start again: mv {db} {moved} (the run history in it is kept there)"
    )
    try:
        conn = sqlite3.connect(
            db,
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout,
            cached_statements=256,  # RowWriter's many-row statements (a few sizes per kind)
        )
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            conn.close()
            raise DamagedDatabase(advice.format(check))
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise DamagedDatabase(advice.format(exc)) from None
    except NewerSchema as exc:
        raise DamagedDatabase(str(exc)) from None
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
