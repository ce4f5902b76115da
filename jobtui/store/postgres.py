"""The PostgreSQL backend: one database shared by every host that runs the same jobs.toml.

Each scheduled occurrence is claimed with INSERT ... ON CONFLICT DO NOTHING under
UNIQUE(job_id, scheduled_for): the host whose insert lands runs it, the others drop it. The
claim also holds the job's overlap policy across hosts (a job's runs going on anywhere count:
skip and parallel:N refuse, replace cancels them, queue waits for them), serialised per job by
an advisory lock. A claimed run holds a lease the host refreshes; a host
that dies lets its leases expire, and a survivor records its runs as abandoned (one UPDATE
decides which, so exactly once). "Now" for leases is the database's, never a host's clock.

When the database cannot be reached, claims are refused, not journaled as SQLite's are: a host
that cannot claim does not run (another host may be running the occurrence)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from ..engine.dispatch import replaced_reason
from .pgschema import NewerSchema, migrate
from .pgsql import (
    CLAIM,
    GOING_ELSEWHERE,
    HOSTED,
    HOSTS_RUNNING,
    JOB_COLUMNS,
    JOB_NAMES,
    REAP,
    REAP_AT_START,
    RENEW,
    REPLACE_ELSEWHERE,
    SHARED_ROWS,
    SKIPPED_ELSEWHERE,
    STATEMENTS,
    STILL_GOING,
    TURN_CAME,
)
from .writes import Kind, StoreUnavailable, Write

log = logging.getLogger("jobtui.store")

CHANNEL = "jobtui"  # where hosts NOTIFY each other of what their users did (pgnotify)
LEASE = 30.0  # seconds a host's runs stay its own without a refresh
CONNECT_TIMEOUT = 3  # seconds; a claim waits at most about this for an unreachable database
STATEMENT_TIMEOUT_MS = 10_000
FINGERPRINT_NOTICE_EVERY = 30.0  # seconds between reminders that hosts run different jobs.toml


class DatabaseUnavailable(Exception):
    """The database cannot be used at start-up; the message names it and says why."""


def host_name() -> str:
    """This process as the database knows it: the machine and the pid, since two jobtuis on
    one machine are two hosts."""
    return os.environ.get("JOBTUI_HOST") or f"{socket.gethostname()}:{os.getpid()}"


def lease_statement_timeout(lease: float) -> float:
    """Seconds a statement of the lease thread may take: a sixth of the lease (at most the
    writer's). The thread renews at a third of the lease; a statement that hangs there (a
    lock, a stalled server) is cut off, and the thread connects again and renews at the next
    third, still inside the lease. Left at the writer's 10 s, one hung statement let a short
    lease (3 s) run out and a survivor record this host's runs, still going, as abandoned."""
    return min(lease / 6, STATEMENT_TIMEOUT_MS / 1000)


def connect(
    conninfo: str, shown: str, *, statement_timeout: float = STATEMENT_TIMEOUT_MS / 1000
) -> psycopg.Connection:
    try:
        return psycopg.connect(
            conninfo,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="jobtui",
            options=f"-c statement_timeout={max(1, round(statement_timeout * 1000))} "
            "-c TimeZone=UTC",
        )
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot connect to {shown}: {_first_line(exc)}") from None


def _live_hosts(conn: psycopg.Connection, lease: float) -> list[str]:
    rows = conn.execute(
        "SELECT host FROM hosts WHERE seen_at > now() - %s * interval '1s' ORDER BY host",
        (lease,),
    ).fetchall()
    return [host for (host,) in rows]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class PostgresBackend:
    shared = True  # several hosts claim from it: a claim not written is refused

    def __init__(
        self,
        conninfo: str,
        shown: str,
        *,
        keep_runs: int | None,
        keep_days: float | None,
        lease: float = LEASE,
        host: str | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.shown = shown
        self.keep_runs = keep_runs
        self.keep_days = keep_days
        self.lease = lease
        self.host = host or host_name()
        self.limits: dict[str, int] = {}  # job -> runs at once on all hosts (skip, parallel:N)
        self.replacing: frozenset[str] = frozenset()  # jobs whose overlap policy is replace
        self.queueing: frozenset[str] = frozenset()  # ... and queue
        # A queue job's claims that landed while other hosts run the job: run id -> the runs
        # (id, host) it waits for. Filled by the writer thread, taken on the loop.
        self.waiting: dict[str, list[tuple[str, str]]] = {}
        self.config_fingerprint = ""
        self.config_path = ""
        self.live_hosts: list[str] = []  # hosts seen within a lease, this one among them
        self._lock = threading.Lock()  # the writer thread and the lease thread share state
        self._next_notice = 0.0
        self._stop = threading.Event()
        self._closed = False
        self._leaser: threading.Thread | None = None
        # Called on the lease thread with the runs its REAP found: only the host whose
        # update took them hears of them, so each is reported once over all hosts.
        self.on_abandoned: Callable[[list[dict[str, Any]]], None] | None = None
        try:
            self._conn: psycopg.Connection | None = connect(conninfo, shown)
        except StoreUnavailable as exc:
            raise DatabaseUnavailable(str(exc)) from None
        try:
            migrate(self._conn)
        except NewerSchema as exc:
            self._conn.close()
            raise DatabaseUnavailable(f"{shown}: {exc}") from None
        except psycopg.Error as exc:
            self._conn.close()
            raise DatabaseUnavailable(f"cannot use {shown}: {_first_line(exc)}") from None

    @property
    def path(self) -> Path:
        return Path(self.shown)  # what Store names in messages; history is read by conninfo

    # -- at start-up ----------------------------------------------------------------------
    def register(self, fingerprint: str, config_path: str) -> None:
        """Say which jobs.toml (its fingerprint) this host runs."""
        self.config_fingerprint, self.config_path = fingerprint, config_path
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO hosts (host, config_fingerprint, config_path) VALUES (%s, %s, %s) "
                "ON CONFLICT (host) DO UPDATE SET config_fingerprint = excluded.config_fingerprint,"
                " config_path = excluded.config_path, seen_at = now()",
                (self.host, fingerprint, config_path),
            )
            self.live_hosts = _live_hosts(conn, self.lease)

    def mark_abandoned(self) -> list[dict[str, Any]]:
        """Runs of hosts whose leases ran out (a host that died, this one's last life too)."""
        with self._transaction() as conn:
            rows = conn.execute(REAP_AT_START, (self.host, self.host, self.host)).fetchall()
        return self._found(rows)

    def newest_occurrences(self, job_ids: list[str]) -> dict[str, float]:
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT job_id, extract(epoch FROM max(scheduled_for))::float8 FROM runs "
                "WHERE NOT manual AND job_id = ANY(%s) GROUP BY job_id",
                (job_ids,),
            ).fetchall()
        return {job_id: ts for job_id, ts in rows}

    def load_jobs(self) -> list[dict[str, Any]]:
        with self._transaction() as conn:
            rows = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs").fetchall()
        return [dict(zip(JOB_NAMES, row, strict=True)) for row in rows]

    def other_configs(self) -> list[tuple[str, str, str]]:
        """Live hosts (seen within a lease) running a jobs.toml other than this host's:
        (host, its file, its fingerprint)."""
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT host, config_path, config_fingerprint FROM hosts WHERE host <> %s "
                "AND seen_at > now() - %s * interval '1s' AND config_fingerprint <> %s "
                "ORDER BY host",
                (self.host, self.lease, self.config_fingerprint),
            ).fetchall()
        return [(h, p, f) for h, p, f in rows]

    # -- the writer's side ----------------------------------------------------------------
    def hosts_running(self, target: str, *, wait: float) -> list[str]:
        """The other hosts with a run of job ``target`` (or run ``target``) going on. Raises
        StoreUnavailable, also when a batch holds the connection longer than ``wait``."""
        with self._transaction(wait=wait) as conn:
            rows = conn.execute(HOSTS_RUNNING, (self.host, target, target)).fetchall()
        return [host for (host,) in rows]

    def take_turn(self, run_id: str, awaited: list[str]) -> bool:
        """Whether a queued occurrence's turn came: none of the runs it waits for goes on (a
        dead host's are abandoned once their lease ran out); its row then says it started."""
        with self._transaction() as conn:
            row = conn.execute(STILL_GOING, (awaited,)).fetchone()
            if row and row[0]:
                return False
            conn.execute(TURN_CAME, (run_id,))
        return True

    @contextlib.contextmanager
    def _transaction(self, *, wait: float = -1) -> Any:
        """One transaction on the writer's connection, connecting again if it was lost;
        psycopg's errors become StoreUnavailable (the writer buffers and tries again).
        ``wait``: seconds to wait for the connection while a batch holds it (-1: as long as
        it takes); past them, StoreUnavailable."""
        if not self._lock.acquire(timeout=wait):
            raise StoreUnavailable(f"{self.shown}: busy with a batch of writes")
        try:
            if self._conn is None or self._conn.closed:
                if self._closed:  # a connection made now would never be closed
                    raise StoreUnavailable(f"{self.shown}: the state store is closed")
                self._conn = connect(self.conninfo, self.shown)
            conn = self._conn
            try:
                with conn.transaction():
                    yield conn
            except psycopg.Error as exc:
                if conn.broken or isinstance(exc, psycopg.OperationalError):
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                    self._conn = None
                raise StoreUnavailable(f"{self.shown}: {_first_line(exc)}") from None
        finally:
            self._lock.release()

    def check(self) -> str:
        """Hosts running another jobs.toml are reported, every so often, while they run."""
        if time.monotonic() < self._next_notice or not self.config_fingerprint:
            return ""
        others = self.other_configs()
        if not others:
            return ""
        self._next_notice = time.monotonic() + FINGERPRINT_NOTICE_EVERY
        listed = ", ".join(f"{host} ({path}, {fp[:12]})" for host, path, fp in others)
        return (
            f"hosts on {self.shown} run a different jobs.toml than this one "
            f"({self.config_path}, {self.config_fingerprint[:12]}): {listed}; their jobs "
            "share this database's claims: make the files the same"
        )

    def journal(self, claims: list[Write]) -> None:
        raise OSError("a shared database's claims are never journaled")

    def write(self, batch: list[Write]) -> list[tuple[Write, bool]]:
        results: list[tuple[Write, bool]] = []
        with self._transaction() as conn:
            shared = sorted({w.job_id for w in batch if w.kind in SHARED_ROWS and w.job_id})
            if shared:
                # Per job, one host at a time counts its runs and claims, or writes a row other
                # hosts write too; locks are taken in one order on every host, so two batches
                # cannot deadlock.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtext(j) AS k "
                    "FROM unnest(%s::text[]) AS j ORDER BY k) AS keys",
                    (shared,),
                )
            group: list[tuple[Any, ...]] = []
            kind: Kind | None = None
            with conn.cursor() as cur:
                for write in batch:  # in order: a job's finish comes before its next claim
                    if write.kind is Kind.CLAIM:
                        if group and kind is not None:
                            cur.executemany(STATEMENTS[kind], group)
                        group, kind = [], None
                        results.append((write, self._claim(cur, write.params)))
                        continue
                    if write.kind is not kind:
                        if group and kind is not None:
                            cur.executemany(STATEMENTS[kind], group)
                        group, kind = [], write.kind
                    group.append(self._params(write))
                if group and kind is not None:
                    cur.executemany(STATEMENTS[kind], group)
        return results

    def _params(self, write: Write) -> tuple[Any, ...]:
        if write.kind is Kind.MANUAL_RUN:
            return (*write.params, self.host, self.lease)
        if write.kind in HOSTED:
            return (*write.params, self.host)
        return write.params

    def _claim(self, cur: psycopg.Cursor[Any], params: tuple[Any, ...]) -> bool:
        run_id, job_id, scheduled_for, started_at = params
        limit = self.limits.get(job_id)
        if limit is not None:
            count, hosts = cur.execute(
                "SELECT count(*), string_agg(DISTINCT host, ', ') FROM runs "
                "WHERE job_id = %s AND outcome IS NULL",
                (job_id,),
            ).fetchone() or (0, None)
            if count >= limit:
                reason = f"{count} run{'s' if count != 1 else ''} of it going on {hosts}"
                cur.execute(SKIPPED_ELSEWHERE, (run_id, job_id, scheduled_for, reason, self.host))
                return False
        going: list[tuple[str, str]] = []
        if job_id in self.queueing:
            going = cur.execute(GOING_ELSEWHERE, (job_id, self.host)).fetchall()
        cur.execute(CLAIM, (run_id, job_id, scheduled_for, started_at, self.host, self.lease))
        if cur.rowcount != 1:
            return False
        if job_id in self.replacing:
            reason = replaced_reason(scheduled_for)
            cur.execute(
                REPLACE_ELSEWHERE,
                (CHANNEL, self.host, reason, job_id, self.host, scheduled_for),
            )
        elif going:
            # The occurrence is this host's (claimed, leased) but waits its turn: not started.
            self.waiting[run_id] = going
            runs = ", ".join(f"{other} on host {host}" for other, host in going)
            cur.execute(
                "UPDATE runs SET started_at = NULL, reason = %s WHERE run_id = %s",
                (f"queued: waiting for run {runs} to end", run_id),
            )
        return True

    def prune(self) -> None:
        with self._transaction() as conn:
            if self.keep_days is not None:
                conn.execute(
                    "DELETE FROM runs WHERE finished_at < now() - %s * interval '1 day'",
                    (self.keep_days,),
                )
                conn.execute(
                    "DELETE FROM job_events WHERE at < now() - %s * interval '1 day'",
                    (self.keep_days,),
                )
                conn.execute(
                    "DELETE FROM sessions WHERE stopped_at < now() - %s * interval '1 day'",
                    (self.keep_days,),
                )
            if self.keep_runs is not None:
                conn.execute(
                    "DELETE FROM runs WHERE run_id IN (SELECT run_id FROM (SELECT run_id, "
                    "row_number() OVER (PARTITION BY job_id ORDER BY scheduled_for DESC) AS n "
                    "FROM runs WHERE outcome IS NOT NULL) AS ranked WHERE n > %s)",
                    (self.keep_runs,),
                )
                # Notes and sessions are few next to runs: a generous bound keeps them finite.
                conn.execute(
                    "DELETE FROM job_events WHERE id IN (SELECT id FROM job_events "
                    "ORDER BY at DESC OFFSET %s)",
                    (self.keep_runs * 10,),
                )
                conn.execute(
                    "DELETE FROM sessions WHERE ctid IN (SELECT ctid FROM sessions "
                    "ORDER BY started_at DESC OFFSET %s)",
                    (self.keep_runs,),
                )

    # -- leases ---------------------------------------------------------------------------
    def start_leases(self) -> None:
        self._leaser = threading.Thread(target=self._keep_leases, name="jobtui-leases", daemon=True)
        self._leaser.start()

    def _keep_leases(self) -> None:
        """Every third of a lease: renew this host's runs and its presence, and record the runs
        of hosts whose leases ran out as abandoned. On its own connection, so a long batch of
        writes never lets a lease lapse."""
        conn: psycopg.Connection | None = None
        timeout = lease_statement_timeout(self.lease)
        while not self._stop.wait(self.lease / 3):
            try:
                if conn is None or conn.closed:
                    conn = connect(self.conninfo, self.shown, statement_timeout=timeout)
                    conn.autocommit = True
                    if self._stop.is_set():  # closed while connecting: nothing more to renew
                        break
                conn.execute(RENEW, (self.lease, self.host))
                # The fingerprint too: a reload of this host's jobs.toml changes it.
                conn.execute(
                    "UPDATE hosts SET seen_at = now(), config_fingerprint = %s WHERE host = %s",
                    (self.config_fingerprint, self.host),
                )
                # Its session too: `jobtui why` reads a host that died as down from here.
                conn.execute(
                    "UPDATE sessions SET seen_at = now() WHERE host = %s AND stopped_at IS NULL",
                    (self.host,),
                )
                self.live_hosts = _live_hosts(conn, self.lease)
                found = self._reap(conn)
                if found and self.on_abandoned is not None:
                    self.on_abandoned(found)
            except Exception as exc:
                # Anything, a bug too: a thread that died would let every lease run out while
                # this host's runs go on, and the survivors would run their jobs beside them.
                if isinstance(exc, psycopg.Error | StoreUnavailable):
                    log.warning("cannot renew this host's leases on %s: %s", self.shown, exc)
                else:
                    log.exception("the lease thread failed; it goes on at the next beat")
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn = None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _reap(self, conn: psycopg.Connection) -> list[dict[str, Any]]:
        return self._found(conn.execute(REAP, (self.host, self.host)).fetchall())

    def _found(self, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        found = [
            {
                "run_id": run_id,
                "job_id": job_id,
                "scheduled_for": scheduled_for,
                "started_at": started_at,
                "host": host,
                "killed": False,
                "reason": reason,
                "detected_at": now,
            }
            for run_id, job_id, scheduled_for, started_at, host, reason, now in rows
        ]
        for run in found:
            log.warning("run %s of %s abandoned: %s", run["run_id"], run["job_id"], run["reason"])
        return found

    def close(self) -> None:
        self._closed = True
        self._stop.set()
        if self._leaser is not None:
            # The thread wakes at once unless a statement is going, which its timeout ends; a
            # connect to an unreachable database is not waited for (the thread is a daemon, and
            # stops after it without renewing anything).
            self._leaser.join(timeout=lease_statement_timeout(self.lease) + 0.5)
            self._leaser = None
        with self._lock:
            if self._conn is not None:
                # This host's presence goes: it no longer counts as running any jobs.toml.
                with contextlib.suppress(psycopg.Error), self._conn.transaction():
                    self._conn.execute("DELETE FROM hosts WHERE host = %s", (self.host,))
                with contextlib.suppress(psycopg.Error):
                    self._conn.close()
                self._conn = None
