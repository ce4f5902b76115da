"""Pause, resume, cancel and remove on one host take effect on every host sharing the database,
within a second: each host LISTENs on one channel and NOTIFYs what its users did. A thread with
its own connection does both, so neither the loop nor the writer waits on it. A lost connection
is made again, and what lasts of what was said meanwhile is caught up from the shared notes
(job_events): the newest pause, resume or remove another host's user gave each job while this
host was not listening is applied as if it had been heard. A cancel said meanwhile is not: it has
nothing lasting to read back (the run was on the host that was told, or it ends on its own)."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable

import psycopg

from .postgres import CHANNEL, connect

POLL = 0.1  # seconds between looks at what to send; notifications wake the thread at once
RETRY = 1.0

log = logging.getLogger("jobtui.store")

# (action, job id, reason, the host it came from)
Remote = Callable[[str, str, str, str], None]


# Per job, the newest of the users' pauses, resumes and removes (on any host) noted after a
# given note: what a host that was not listening may have missed. A resume is noted as the
# job's new state with "resumed" as its detail; a remove as "removed" (the jobs row goes).
# Not the jobs table's `paused`: a host that heard nothing goes on saving its own view of the
# row (each run's end saves it), so the row may say "not paused" when a user paused the job.
MISSED = (
    "SELECT DISTINCT ON (job_id) job_id, kind, detail, host FROM job_events "
    "WHERE id > %s AND (kind IN ('paused', 'removed') OR detail = 'resumed') "
    "ORDER BY job_id, id DESC"
)
ACTIONS = ("pause", "resume", "remove")


class Notifier:
    def __init__(
        self,
        conninfo: str,
        shown: str,
        host: str,
        on_remote: Remote,
        *,
        retry: float | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.shown = shown
        self.host = host
        self.on_remote = on_remote
        self.retry = RETRY if retry is None else retry  # seconds between connection attempts
        self.backend_pid: int | None = None  # the listening connection's, while connected
        self._last_note: int | None = None  # the newest job_events id when last listening
        self._broke_at = 0.0  # monotonic: when the connection was last lost
        self._acted_at: dict[str, float] = {}  # job -> when this host's user last acted on it
        # job -> the last pause, resume or remove heard from another host: (host, action, when).
        # The notes caught up on go back to the connection before the break, so they hold what
        # was heard live too; applied again, an old resume would undo what happened here since
        # (a disable after failures, which is this host's own).
        self._heard: dict[str, tuple[str, str, float]] = {}
        self._outgoing: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobtui-notify", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)  # listening before the scheduler starts, or given up on for now

    def send(self, action: str, job_id: str, reason: str = "") -> None:
        if action in ACTIONS:
            self._acted_at[job_id] = time.monotonic()
        payload = {"host": self.host, "action": action, "job": job_id, "reason": reason}
        self._outgoing.put(json.dumps(payload))

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        pending: str | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = connect(self.conninfo, self.shown)
                    conn.autocommit = True
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    self._catch_up(conn)  # listening first: nothing falls between the two
                    self._ready.set()
                while pending is not None or not self._outgoing.empty():
                    # Kept until sent: a connection lost mid-send sends it again once made anew.
                    pending = pending if pending is not None else self._outgoing.get()
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, pending))
                    pending = None
                for notice in conn.notifies(timeout=POLL):
                    self._received(notice.payload)
            except Exception as exc:  # psycopg's, or a connect refused: try again shortly
                log.warning("cannot follow other hosts' pauses on %s: %s", self.shown, exc)
                self._ready.set()
                if pending is not None and not isinstance(exc, psycopg.OperationalError):
                    # Refused by the server itself (a payload too long): sent again it would
                    # be refused for ever and hold back every notice after it.
                    log.warning("not sent to the other hosts: %s", pending)
                    pending = None
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn = None
                if self.backend_pid is not None:
                    self._broke_at = time.monotonic()
                self.backend_pid = None
                self._stop.wait(self.retry)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _catch_up(self, conn: psycopg.Connection) -> None:
        """After a break, what other hosts' users did meanwhile that lasts (pauses, resumes,
        removes) is handed on as if heard; at the first connection there is nothing to catch
        up (the host read the jobs' shared state as it started)."""
        with conn.transaction():
            row = conn.execute("SELECT coalesce(max(id), 0) FROM job_events").fetchone()
            newest = int(row[0]) if row else 0
            missed = (
                conn.execute(MISSED, (self._last_note,)).fetchall()
                if self._last_note is not None
                else []
            )
        self._last_note = newest
        for job_id, kind, detail, host in missed:
            # This host's own word stands: it goes out to the others now that it can.
            acted = self._acted_at.get(job_id, 0.0)
            if host == self.host or acted > self._broke_at:
                continue
            action = "remove" if kind == "removed" else "pause" if kind == "paused" else "resume"
            heard = self._heard.get(job_id)
            if heard is not None and heard[:2] == (host, action) and heard[2] > acted:
                continue  # heard live already, and nothing a user did here since
            self.on_remote(action, job_id, "" if action == "resume" else detail, host)

    def _received(self, payload: str) -> None:
        try:
            notice = json.loads(payload)
            host, action, job_id = notice["host"], notice["action"], notice["job"]
            reason = str(notice.get("reason", ""))
        except (ValueError, KeyError, TypeError):
            return  # not one of ours
        if host != self.host:
            if action in ACTIONS and isinstance(job_id, str):
                self._heard[job_id] = (host, action, time.monotonic())
            self.on_remote(action, job_id, reason, host)
