"""The state database's schema, with a version and forward migrations."""

from __future__ import annotations

import sqlite3

# Each entry moves the schema from version N to N+1; never edit a released step, add one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        paused INTEGER NOT NULL DEFAULT 0,
        pause_reason TEXT NOT NULL DEFAULT '',
        disabled_reason TEXT NOT NULL DEFAULT '',
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        run_count INTEGER NOT NULL DEFAULT 0,
        last_fired REAL,
        next_fire REAL,
        grid_anchor REAL,
        finished INTEGER NOT NULL DEFAULT 0,
        fingerprint TEXT NOT NULL DEFAULT '',
        updated_at REAL NOT NULL
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        scheduled_for REAL NOT NULL,
        manual INTEGER NOT NULL DEFAULT 0,
        attempt INTEGER NOT NULL DEFAULT 0,
        started_at REAL,
        finished_at REAL,
        outcome TEXT,
        reason TEXT NOT NULL DEFAULT '',
        progress REAL,
        status_message TEXT NOT NULL DEFAULT '',
        error_type TEXT,
        error_message TEXT,
        error_traceback TEXT,
        exit_code INTEGER,
        signal TEXT,
        pid INTEGER,
        pid_start INTEGER,
        output TEXT,
        output_dropped_bytes INTEGER NOT NULL DEFAULT 0,
        detected_at REAL
    );
    -- An occurrence runs at most once, whatever happens: written before the run starts.
    CREATE UNIQUE INDEX runs_occurrence ON runs (job_id, scheduled_for) WHERE manual = 0;
    CREATE INDEX runs_by_job ON runs (job_id, scheduled_for DESC);
    CREATE INDEX runs_unfinished ON runs (outcome) WHERE outcome IS NULL;
    """,
    # `jobtui why` explains occurrences missed while jobtui was down (it needs to know when it
    # was up), when and by whom a job was paused or disabled, and hooks that failed.
    """
    CREATE TABLE sessions (
        started_at REAL NOT NULL,
        stopped_at REAL,
        pid INTEGER NOT NULL
    );
    CREATE TABLE job_events (
        job_id TEXT NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX job_events_by_job ON job_events (job_id, at DESC);
    """,
]
VERSION = len(MIGRATIONS)


class NewerSchema(Exception):
    pass


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the database to VERSION; a newer database than this jobtui knows is refused."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > VERSION:
        raise NewerSchema(
            f"the state database has schema version {current}, newer than this jobtui "
            f"understands ({VERSION}); upgrade jobtui"
        )
    for version in range(current, VERSION):
        # The step and the new version number commit together, or not at all.
        step = MIGRATIONS[version]
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{step}\nPRAGMA user_version = {version + 1};\nCOMMIT;"
        )
