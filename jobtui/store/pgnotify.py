"""Pause, resume, cancel and remove on one host take effect on every host sharing the database,
within a second: each host LISTENs on one channel and NOTIFYs what its users did. A thread with
its own connection does both, so neither the loop nor the writer waits on it; a lost connection
is made again (what was said meanwhile is not replayed: the shared jobs table has the pause for
the next start)."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Callable

import psycopg

from .postgres import connect

CHANNEL = "jobtui"
POLL = 0.1  # seconds between looks at what to send; notifications wake the thread at once
RETRY = 1.0

log = logging.getLogger("jobtui.store")

# (action, job id, reason, the host it came from)
Remote = Callable[[str, str, str, str], None]


class Notifier:
    def __init__(self, conninfo: str, shown: str, host: str, on_remote: Remote) -> None:
        self.conninfo = conninfo
        self.shown = shown
        self.host = host
        self.on_remote = on_remote
        self._outgoing: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobtui-notify", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)  # listening before the scheduler starts, or given up on for now

    def send(self, action: str, job_id: str, reason: str = "") -> None:
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
                self._stop.wait(RETRY)
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _received(self, payload: str) -> None:
        try:
            notice = json.loads(payload)
            host, action, job_id = notice["host"], notice["action"], notice["job"]
            reason = str(notice.get("reason", ""))
        except (ValueError, KeyError, TypeError):
            return  # not one of ours
        if host != self.host:
            self.on_remote(action, job_id, reason, host)
