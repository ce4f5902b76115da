"""The PostgreSQL state database's schema, with a version and forward migrations (as schema.py
for SQLite). Hosts starting together migrate one at a time under an advisory lock. Moments are
`timestamptz` (UTC); `every` grid anchors are plain seconds (a grid parameter, not a moment)."""

from __future__ import annotations

import psycopg

MIGRATION_LOCK = 0x6A6F6274  # pg_advisory_xact_lock key: "jobt"

# Each entry moves the schema from version N to N+1; never edit a released step, add one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE jobtui_schema (version integer NOT NULL);
    INSERT INTO jobtui_schema VALUES (0);
    CREATE TABLE jobs (
        job_id text PRIMARY KEY,
        paused boolean NOT NULL DEFAULT false,
        pause_reason text NOT NULL DEFAULT '',
        disabled_reason text NOT NULL DEFAULT '',
        consecutive_failures integer NOT NULL DEFAULT 0,
        run_count integer NOT NULL DEFAULT 0,
        last_fired timestamptz,
        next_fire timestamptz,
        grid_anchor double precision,
        finished boolean NOT NULL DEFAULT false,
        fingerprint text NOT NULL DEFAULT '',
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE runs (
        run_id text PRIMARY KEY,
        job_id text NOT NULL,
        scheduled_for timestamptz NOT NULL,
        manual boolean NOT NULL DEFAULT false,
        attempt integer NOT NULL DEFAULT 0,
        started_at timestamptz,
        finished_at timestamptz,
        outcome text,
        reason text NOT NULL DEFAULT '',
        progress double precision,
        status_message text NOT NULL DEFAULT '',
        error_type text,
        error_message text,
        error_traceback text,
        exit_code integer,
        signal text,
        pid integer,
        pid_start bigint,
        output text,
        output_dropped_bytes integer NOT NULL DEFAULT 0,
        detected_at timestamptz,
        host text NOT NULL,
        lease_until timestamptz
    );
    -- An occurrence runs at most once, on whichever host claims it first.
    CREATE UNIQUE INDEX runs_occurrence ON runs (job_id, scheduled_for) WHERE NOT manual;
    CREATE INDEX runs_by_job ON runs (job_id, scheduled_for DESC);
    CREATE INDEX runs_unfinished ON runs (job_id) WHERE outcome IS NULL;
    CREATE TABLE hosts (
        host text PRIMARY KEY,
        config_fingerprint text NOT NULL,
        config_path text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        seen_at timestamptz NOT NULL DEFAULT now()
    );
    """,
    # As SQLite's step 2, for `jobtui why`: when jobtui was up (here per host; a host that died
    # was last seen at its last lease beat), and a job's notes (pauses, disabling, failed
    # hooks), each with the host it happened on.
    """
    CREATE TABLE sessions (
        host text NOT NULL,
        started_at timestamptz NOT NULL,
        stopped_at timestamptz,
        seen_at timestamptz NOT NULL DEFAULT now(),
        pid integer NOT NULL
    );
    CREATE INDEX sessions_by_start ON sessions (started_at DESC);
    CREATE TABLE job_events (
        id bigserial PRIMARY KEY,
        job_id text NOT NULL,
        at timestamptz NOT NULL,
        kind text NOT NULL,
        detail text NOT NULL DEFAULT '',
        host text NOT NULL
    );
    CREATE INDEX job_events_by_job ON job_events (job_id, at DESC);
    """,
]
VERSION = len(MIGRATIONS)


class NewerSchema(Exception):
    pass


def migrate(conn: psycopg.Connection) -> None:
    """Bring the database to VERSION; a newer database than this jobtui knows is refused."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        exists = conn.execute("SELECT to_regclass('jobtui_schema') IS NOT NULL").fetchone()
        current = 0
        if exists and exists[0]:
            row = conn.execute("SELECT version FROM jobtui_schema").fetchone()
            current = row[0] if row else 0
        if current > VERSION:
            raise NewerSchema(
                f"the state database has schema version {current}, newer than this jobtui "
                f"understands ({VERSION}); upgrade jobtui on this host"
            )
        for version in range(current, VERSION):
            conn.execute(MIGRATIONS[version].encode())
            conn.execute("UPDATE jobtui_schema SET version = %s", (version + 1,))
