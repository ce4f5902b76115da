"""Other hosts' runs, for this host's console: a thread with its own connection looks every
``poll`` seconds at the runs other hosts have going on for this host's jobs, and at each job's
newest finished run, and hands the picture to the loop only when it changed.

Progress reaches the database as soon as a host's writer commits it (each change is queued at
once and the writer does not wait to batch), so a run on another host shows here within about
one ``poll`` of its change. While the database cannot be read, the last picture stays (the
console keeps showing it) and the failure goes to the log; the thread connects again."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from .interface import PeerRun, PeerRuns
from .postgres import connect

PEER_POLL = 0.5  # seconds between looks
RETRY = 1.0  # seconds before connecting again after a failure

log = logging.getLogger("jobtui.store")

_COLUMNS = (
    "host, job_id, run_id, manual, attempt, extract(epoch FROM scheduled_for)::float8, "
    "extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8, outcome, "
    "progress, status_message, reason, error_type, error_message"
)
# Runs going on elsewhere: the partial index on unfinished runs keeps this cheap.
RUNNING = (
    f"SELECT {_COLUMNS} FROM runs WHERE outcome IS NULL AND host <> %s AND job_id = ANY(%s) "
    "ORDER BY coalesce(started_at, scheduled_for), run_id"
)
# Each job's newest run that ran (skipped and missed occurrences are not a job's last run, as
# in the engine), one index probe per job; kept only when another host ran it.
NEWEST = (
    "SELECT r.* FROM unnest(%s::text[]) AS j(job_id) CROSS JOIN LATERAL "
    f"(SELECT {_COLUMNS} FROM runs WHERE runs.job_id = j.job_id AND outcome IS NOT NULL "
    "AND outcome NOT IN ('skipped', 'missed') ORDER BY scheduled_for DESC LIMIT 1) AS r "
    "WHERE r.host <> %s"
)


def _peer_run(row: tuple[Any, ...]) -> PeerRun:
    (host, job_id, run_id, manual, attempt, scheduled, started, finished, outcome, progress,
     status, reason, error_type, error_message) = row  # fmt: skip
    return PeerRun(
        host=host,
        job_id=job_id,
        run_id=run_id,
        manual=bool(manual),
        attempt=attempt,
        scheduled_ts=scheduled,
        started_ts=started,
        finished_ts=finished,
        outcome=outcome,
        progress=progress,
        status_message=status or "",
        reason=reason or "",
        error_type=error_type,
        error_message=error_message,
    )


def look(conn: psycopg.Connection, host: str, job_ids: list[str]) -> PeerRuns:
    """One look at what hosts other than ``host`` are doing with ``job_ids``."""
    running: dict[str, list[PeerRun]] = {}
    for row in conn.execute(RUNNING, (host, job_ids)).fetchall():
        run = _peer_run(row)
        running.setdefault(run.job_id, []).append(run)
    last = {run.job_id: run for run in map(_peer_run, conn.execute(NEWEST, (job_ids, host)))}
    return PeerRuns({job: tuple(runs) for job, runs in running.items()}, last)


class PeerWatcher:
    def __init__(
        self,
        conninfo: str,
        shown: str,
        host: str,
        job_ids: Callable[[], list[str]],
        on_change: Callable[[PeerRuns], None],
        *,
        poll: float = PEER_POLL,
    ) -> None:
        self.conninfo = conninfo
        self.shown = shown
        self.host = host
        self.job_ids = job_ids  # this host's jobs, asked again at each look (reloads change them)
        self.on_change = on_change  # called from the thread
        self.poll = poll
        self.picture = PeerRuns()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jobtui-peers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        failing = False
        while True:
            try:
                if conn is None:
                    conn = connect(self.conninfo, self.shown)
                    conn.autocommit = True
                picture = look(conn, self.host, self.job_ids())
                if failing:
                    log.warning("other hosts' runs on %s are shown live again", self.shown)
                    failing = False
                if picture != self.picture:
                    self.picture = picture
                    self.on_change(picture)
            except Exception as exc:  # psycopg's, or a connect refused: try again shortly
                if not failing:  # once per outage, not once per retry
                    log.warning(
                        "cannot follow other hosts' runs on %s (the console shows the last "
                        "picture meanwhile): %s",
                        self.shown,
                        exc,
                    )
                    failing = True
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn = None
                if self._stop.wait(RETRY):
                    break
                continue
            if self._stop.wait(self.poll):
                break
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()
