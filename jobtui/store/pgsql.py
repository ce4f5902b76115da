"""The statements the PostgreSQL backend (postgres.py) runs: each write's, the claim and what
holds a job's overlap policy across hosts, and the leases' renewal and reaping."""

from __future__ import annotations

from .writes import SUCCEEDED_PLAINLY, Kind

_TS = "to_timestamp(%s)"
# A claim's lease counts from when the row is written (clock_timestamp), not from its
# transaction's start (now()): a batch that waited seconds for other hosts' advisory locks
# wrote leases already past, and a survivor took the runs, just started, for abandoned.
_LEASE_END = "clock_timestamp() + %s * interval '1s'"
STATEMENTS: dict[Kind, str] = {
    Kind.MANUAL_RUN: (
        "INSERT INTO runs (run_id, job_id, scheduled_for, manual, attempt, started_at, host, "
        f"lease_until) VALUES (%s, %s, {_TS}, true, %s, {_TS}, %s, {_LEASE_END}) "
        "ON CONFLICT DO NOTHING"
    ),
    Kind.PROGRESS: (
        "UPDATE runs SET progress = %s, status_message = %s, attempt = %s, "
        "pid = coalesce(%s, pid), pid_start = coalesce(%s, pid_start) WHERE run_id = %s"
    ),
    # A run another host found abandoned (this host lost the database longer than its lease)
    # still gets its true result when this host writes it.
    Kind.FINISH: (
        f"UPDATE runs SET finished_at = {_TS}, outcome = %s, reason = %s, attempt = %s, "
        "progress = %s, status_message = %s, error_type = %s, error_message = %s, "
        "error_traceback = %s, exit_code = %s, signal = %s, output = %s, "
        f"output_dropped_bytes = %s, started_at = coalesce({_TS}, started_at), "
        "lease_until = NULL WHERE run_id = %s AND (outcome IS NULL OR outcome = 'abandoned')"
    ),
    Kind.SUCCEEDED: (
        f"UPDATE runs SET finished_at = {_TS}, attempt = %s, {SUCCEEDED_PLAINLY}, "
        f"started_at = coalesce({_TS}, started_at), lease_until = NULL "
        "WHERE run_id = %s AND (outcome IS NULL OR outcome = 'abandoned')"
    ),
    Kind.OCCURRENCE: (
        "INSERT INTO runs (run_id, job_id, scheduled_for, manual, finished_at, outcome, reason, "
        f"host) VALUES (%s, %s, {_TS}, false, {_TS}, %s, %s, %s) "
        "ON CONFLICT (job_id, scheduled_for) WHERE NOT manual DO NOTHING"
    ),
    # The jobs' rows are shared: the first grid anchor written stays (every host's grid is
    # the same one), and last_fired only moves forward.
    Kind.SAVE_JOB: (
        "INSERT INTO jobs (job_id, paused, pause_reason, disabled_reason, consecutive_failures, "
        "run_count, last_fired, next_fire, grid_anchor, finished, fingerprint, updated_at) "
        f"VALUES (%s, %s::int <> 0, %s, %s, %s, %s, {_TS}, {_TS}, %s, %s::int <> 0, %s, {_TS}) "
        "ON CONFLICT (job_id) DO UPDATE SET paused = excluded.paused, "
        "pause_reason = excluded.pause_reason, disabled_reason = excluded.disabled_reason, "
        "consecutive_failures = excluded.consecutive_failures, run_count = excluded.run_count, "
        "last_fired = greatest(jobs.last_fired, excluded.last_fired), "
        "next_fire = excluded.next_fire, "
        "grid_anchor = coalesce(jobs.grid_anchor, excluded.grid_anchor), "
        "finished = excluded.finished, fingerprint = excluded.fingerprint, "
        "updated_at = excluded.updated_at"
    ),
    Kind.DELETE_JOB: "DELETE FROM jobs WHERE job_id = %s",
    Kind.SESSION_START: f"INSERT INTO sessions (started_at, pid, host) VALUES ({_TS}, %s, %s)",
    Kind.SESSION_STOP: (
        f"UPDATE sessions SET stopped_at = {_TS}, seen_at = now() "
        f"WHERE started_at = {_TS} AND pid = %s AND host = %s"
    ),
    Kind.JOB_EVENT: (
        f"INSERT INTO job_events (job_id, at, kind, detail, host) VALUES (%s, {_TS}, %s, %s, %s)"
    ),
}
# Kinds whose rows say which host wrote them: the host goes last among their parameters.
HOSTED = frozenset({Kind.OCCURRENCE, Kind.SESSION_START, Kind.SESSION_STOP, Kind.JOB_EVENT})
# Kinds that write rows every host writes (an occurrence's, under UNIQUE(job_id,
# scheduled_for), and the job's shared row): a batch takes their jobs' claim locks first.
# Without them, two hosts writing the same rows in other orders (a's skipped occurrences,
# b's claims of them) waited on each other, and the one rolled back as a deadlock refused
# its claims.
SHARED_ROWS = frozenset({Kind.CLAIM, Kind.OCCURRENCE, Kind.SAVE_JOB, Kind.DELETE_JOB})
CLAIM = (
    "INSERT INTO runs (run_id, job_id, scheduled_for, manual, attempt, started_at, host, "
    f"lease_until) VALUES (%s, %s, {_TS}, false, 1, {_TS}, %s, {_LEASE_END}) "
    "ON CONFLICT (job_id, scheduled_for) WHERE NOT manual DO NOTHING"
)
SKIPPED_ELSEWHERE = (
    "INSERT INTO runs (run_id, job_id, scheduled_for, manual, finished_at, outcome, reason, "
    f"host) VALUES (%s, %s, {_TS}, false, now(), 'skipped', %s, %s) "
    "ON CONFLICT (job_id, scheduled_for) WHERE NOT manual DO NOTHING"
)
# A `replace` job's claim cancels its runs going on on other hosts: told as a user's cancel
# is (pgnotify's payload), and only if the claim commits (NOTIFY is sent at commit). Only runs
# of earlier occurrences: a claim that lands late (its writer held up, its host's clock
# behind) must not cancel a run of a newer occurrence that another host started meanwhile.
REPLACE_ELSEWHERE = (
    "SELECT run_id, pg_notify(%s, json_build_object('host', %s::text, 'action', 'cancel', "
    "'job', run_id, 'reason', %s::text)::text) FROM runs "
    f"WHERE job_id = %s AND outcome IS NULL AND host <> %s AND scheduled_for < {_TS}"
)
GOING_ELSEWHERE = (
    "SELECT run_id, host FROM runs WHERE job_id = %s AND outcome IS NULL AND host <> %s "
    "ORDER BY started_at NULLS LAST, run_id"
)
# Rows locked just now are skipped, not waited for: their locker is this host's writer
# finishing them or writing their progress (another host's reap locks only leases already
# out). Waiting on it, the renewal hit its timeout whenever the writer's transaction queued
# behind other hosts' locks, renewed none of the host's runs, and a survivor took them, still
# going, for abandoned. A skipped row is renewed at the next beat, a third of a lease later.
RENEW = (
    "UPDATE runs SET lease_until = now() + %s * interval '1s' WHERE run_id = ANY(ARRAY("
    "SELECT run_id FROM runs WHERE host = %s AND outcome IS NULL FOR UPDATE SKIP LOCKED))"
)
REAP = (
    "UPDATE runs SET outcome = 'abandoned', finished_at = now(), detected_at = now(), "
    "lease_until = NULL, reason = 'host ' || host || ' stopped renewing its lease (it died or "
    "lost the database); found by host ' || %s "
    "WHERE outcome IS NULL AND lease_until < now() AND host <> %s "
    "RETURNING run_id, job_id, extract(epoch FROM scheduled_for)::float8, "
    "extract(epoch FROM started_at)::float8, host, reason, extract(epoch FROM now())::float8"
)
# At start this process runs nothing yet: a run still open under its own host name is from
# its last life (JOBTUI_HOST names a host across restarts), which died with it. Left open, the
# lease thread would renew it for ever and its job's overlap limit would never free up.
REAP_AT_START = (
    "UPDATE runs SET outcome = 'abandoned', finished_at = now(), detected_at = now(), "
    "lease_until = NULL, reason = CASE WHEN host = %s THEN 'host ' || host || ' started again "
    "while this run was going on (it died or was killed)' ELSE 'host ' || host || ' stopped "
    "renewing its lease (it died or lost the database); found by host ' || %s END "
    "WHERE outcome IS NULL AND (host = %s OR lease_until < now()) "
    "RETURNING run_id, job_id, extract(epoch FROM scheduled_for)::float8, "
    "extract(epoch FROM started_at)::float8, host, reason, extract(epoch FROM now())::float8"
)
JOB_NAMES = (
    "job_id", "paused", "pause_reason", "disabled_reason", "consecutive_failures", "run_count",
    "last_fired", "grid_anchor", "finished", "fingerprint",
)  # fmt: skip
JOB_COLUMNS = (
    "job_id, paused::int, pause_reason, disabled_reason, consecutive_failures, run_count, "
    "extract(epoch FROM last_fired)::float8, grid_anchor, finished::int, fingerprint"
)

# The other hosts with a run of a job (or the run, by its id) going on, for a cancel.
HOSTS_RUNNING = (
    "SELECT DISTINCT host FROM runs WHERE outcome IS NULL AND host <> %s "
    "AND (job_id = %s OR run_id = %s) ORDER BY host"
)
# A queued occurrence's turn: the runs it waits for still going, and its start once none is.
STILL_GOING = "SELECT count(*) FROM runs WHERE run_id = ANY(%s) AND outcome IS NULL"
TURN_CAME = "UPDATE runs SET started_at = now(), reason = '' WHERE run_id = %s"
