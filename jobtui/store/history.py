"""Reading run history without owning the state file (for `jobtui history` and the console)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .statefile import UnusableStatePath, check_kind

COLUMNS = (
    "run_id", "job_id", "scheduled_for", "manual", "attempt", "started_at", "finished_at",
    "outcome", "reason", "progress", "status_message", "error_type", "error_message",
    "exit_code", "signal", "output_dropped_bytes", "detected_at",
)  # fmt: skip


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
    result = []
    for row in rows:
        record = dict(zip(COLUMNS, row, strict=True))
        started, finished = record["started_at"], record["finished_at"]
        record["duration"] = (
            max(0.0, finished - started) if started is not None and finished is not None else None
        )
        for key in ("scheduled_for", "started_at", "finished_at", "detected_at"):
            if record[key] is not None:
                record[key] = datetime.fromtimestamp(record[key], UTC).isoformat()
        record["manual"] = bool(record["manual"])
        result.append(record)
    return result
