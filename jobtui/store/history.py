"""Reading run history without owning the state file (for `jobtui history` and the console)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .statefile import UnusableStatePath, check_kind

COLUMNS = (
    "run_id", "job_id", "scheduled_for", "manual", "attempt", "started_at", "finished_at",
    "outcome", "reason", "progress", "status_message", "error_type", "error_message",
    "exit_code", "signal", "output_dropped_bytes", "detected_at",
)  # fmt: skip
TIMES = ("scheduled_for", "started_at", "finished_at", "detected_at")  # epoch in the database


def read_runs(db: Path, *, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` runs (of one job, or all), newest first. Opens read-only."""
    if not check_kind(db):
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
        try:
            where, params = ("WHERE job_id = ?", (job,)) if job else ("", ())
            rows = conn.execute(
                f"SELECT {', '.join(COLUMNS)} FROM runs {where} "
                "ORDER BY coalesce(started_at, finished_at, scheduled_for) DESC, rowid DESC "
                "LIMIT ?",
                (*params, limit),
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise UnusableStatePath(f"cannot read the run history in {db}: {exc}") from None
    return [as_record(COLUMNS, row) for row in rows]


def as_record(names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """One run as `jobtui history` shows it, from its columns (times in epoch seconds) on
    either backend: times in ISO 8601 UTC, its duration, manual as a bool."""
    record = dict(zip(names, row, strict=True))
    started, finished = record["started_at"], record["finished_at"]
    record["duration"] = (
        max(0.0, finished - started) if started is not None and finished is not None else None
    )
    for key in TIMES:
        if record[key] is not None:
            record[key] = datetime.fromtimestamp(record[key], UTC).isoformat()
    record["manual"] = bool(record["manual"])
    return record


def read_context(db: Path, job: str, *, limit: int = 200) -> dict[str, Any]:
    """What `jobtui why` needs besides the runs, as plain values (times in epoch seconds):
    when jobtui was up (``sessions``: started_at, stopped_at or None, last_seen), the job's
    notes (``events``: at, kind, detail; newest first) and its kept state (``job``: paused,
    pause_reason, disabled_reason, consecutive_failures, last_fired, next_fire; None if never
    saved)."""
    empty: dict[str, Any] = {"sessions": [], "events": [], "job": None}
    if not check_kind(db):  # a named pipe would hang the open, as in read_runs
        return empty
    try:  # not a database, or not jobtui's: said as for read_runs, without a traceback
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < 2:
                return empty  # written by a jobtui from before sessions were kept
            sessions = conn.execute(
                "SELECT started_at, stopped_at FROM sessions ORDER BY started_at DESC LIMIT ?",
                (limit,),
            ).fetchall()
            events = conn.execute(
                "SELECT at, kind, detail FROM job_events WHERE job_id = ? "
                "ORDER BY at DESC, rowid DESC LIMIT ?",
                (job, limit),
            ).fetchall()
            row = conn.execute(
                "SELECT paused, pause_reason, disabled_reason, consecutive_failures, last_fired, "
                "next_fire FROM jobs WHERE job_id = ?",
                (job,),
            ).fetchone()
            # A session that ended without a stop (a crash, SIGKILL) was last seen at its newest
            # record: the newest run it started or finished before the next session began.
            seen = []
            later: float | None = None
            for started, stopped in sessions:
                last = stopped
                if last is None:
                    bound = later if later is not None else float("inf")
                    found = conn.execute(
                        "SELECT max(max(coalesce(started_at, 0), coalesce(finished_at, 0))) "
                        "FROM runs WHERE coalesce(finished_at, started_at) BETWEEN ? AND ?",
                        (started, bound),
                    ).fetchone()[0]
                    last = max(started, found or started)
                seen.append({"started_at": started, "stopped_at": stopped, "last_seen": last})
                later = started
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise UnusableStatePath(f"cannot read the history in {db}: {exc}") from None
    names = (
        "paused", "pause_reason", "disabled_reason", "consecutive_failures", "last_fired",
        "next_fire",
    )  # fmt: skip
    return {
        "sessions": seen,
        "events": [{"at": at, "kind": kind, "detail": detail} for at, kind, detail in events],
        "job": None if row is None else dict(zip(names, row, strict=True)),
    }
