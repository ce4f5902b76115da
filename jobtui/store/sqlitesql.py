"""The statements the SQLite backend (sqlite.py) writes the writer's batches with: one for
each kind of write (INSERTs end in their VALUES tuple, which sqlrows.py repeats for many rows),
which of them are prepared ahead, and the order in which a batch's kinds are written."""

from __future__ import annotations

from .writes import SUCCEEDED_PLAINLY, Kind

STATEMENTS: dict[Kind, str] = {
    Kind.CLAIM: (
        "INSERT OR IGNORE INTO runs (run_id, job_id, scheduled_for, manual, attempt, "
        "started_at) VALUES (?, ?, ?, 0, 1, ?)"
    ),
    Kind.MANUAL_RUN: (
        "INSERT OR IGNORE INTO runs (run_id, job_id, scheduled_for, manual, attempt, "
        "started_at) VALUES (?, ?, ?, 1, ?, ?)"
    ),
    Kind.PROGRESS: (
        "UPDATE runs SET progress = ?, status_message = ?, attempt = ?, "
        "pid = coalesce(?, pid), pid_start = coalesce(?, pid_start) WHERE run_id = ?"
    ),
    Kind.FINISH: (
        "UPDATE runs SET finished_at = ?, outcome = ?, reason = ?, attempt = ?, progress = ?, "
        "status_message = ?, error_type = ?, error_message = ?, error_traceback = ?, "
        "exit_code = ?, signal = ?, output = ?, output_dropped_bytes = ?, "
        "started_at = coalesce(?, started_at) WHERE run_id = ?"
    ),
    Kind.SUCCEEDED: (
        f"UPDATE runs SET finished_at = ?, attempt = ?, {SUCCEEDED_PLAINLY}, "
        "started_at = coalesce(?, started_at) WHERE run_id = ?"
    ),
    Kind.OCCURRENCE: (
        "INSERT OR IGNORE INTO runs (run_id, job_id, scheduled_for, manual, finished_at, "
        "outcome, reason) VALUES (?, ?, ?, 0, ?, ?, ?)"
    ),
    # An upsert, not INSERT OR REPLACE: the row is changed where it is, not deleted and
    # inserted again with its key (a third less work for SQLite, every run).
    Kind.SAVE_JOB: (
        "INSERT INTO jobs (job_id, paused, pause_reason, disabled_reason, "
        "consecutive_failures, run_count, last_fired, next_fire, grid_anchor, finished, "
        "fingerprint, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (job_id) DO UPDATE SET paused = excluded.paused, "
        "pause_reason = excluded.pause_reason, disabled_reason = excluded.disabled_reason, "
        "consecutive_failures = excluded.consecutive_failures, "
        "run_count = excluded.run_count, last_fired = excluded.last_fired, "
        "next_fire = excluded.next_fire, grid_anchor = excluded.grid_anchor, "
        "finished = excluded.finished, fingerprint = excluded.fingerprint, "
        "updated_at = excluded.updated_at"
    ),
    Kind.DELETE_JOB: "DELETE FROM jobs WHERE job_id = ?",
    Kind.SESSION_START: "INSERT INTO sessions (started_at, pid) VALUES (?, ?)",
    Kind.SESSION_STOP: "UPDATE sessions SET stopped_at = ? WHERE started_at = ? AND pid = ?",
    Kind.JOB_EVENT: "INSERT INTO job_events (job_id, at, kind, detail) VALUES (?, ?, ?, ?)",
}
# Written for every run (a claim, its result, its job's state, a one-shot's note; progress
# reported): their many-row statements are prepared before the first burst (warm).
WARMED = (Kind.CLAIM, Kind.SUCCEEDED, Kind.FINISH, Kind.SAVE_JOB, Kind.JOB_EVENT, Kind.PROGRESS)
# The order in which a batch's kinds are written, each in a few many-row statements (claims
# before these, a job's deletion where it comes). Not the order the kinds first came in: a
# run's row must be there before it is updated, and its progress is older than its result,
# so a manual run that started and finished in a batch after another run's result kept no
# result (the update came first and found no row), and a run's progress written after its
# result put its last progress and status message back.
GROUP_ORDER = (
    Kind.MANUAL_RUN,
    Kind.OCCURRENCE,
    Kind.PROGRESS,
    Kind.FINISH,
    Kind.SUCCEEDED,
    Kind.SAVE_JOB,
    Kind.JOB_EVENT,
    Kind.SESSION_START,
    Kind.SESSION_STOP,
)
# Never grouped: claims go first, a job's deletion where it comes.
_UNGROUPED = frozenset({Kind.CLAIM, Kind.DELETE_JOB})
if set(GROUP_ORDER) != set(Kind) - _UNGROUPED:  # a kind without a place would not be written
    missing = ", ".join(k.name for k in set(Kind) - _UNGROUPED - set(GROUP_ORDER))
    raise RuntimeError(f"Kind.{missing}: no place in sqlitesql.GROUP_ORDER")
