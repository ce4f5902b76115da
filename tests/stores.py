"""The state store's backends behind one face, so one set of contract tests runs against
SQLite and PostgreSQL alike (the `stores` fixture in conftest.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from jobtui.store import Store, read_context, read_runs


class SQLiteStores:
    name = "sqlite"

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "state.db"

    def open(self, **options: Any) -> Store:
        return Store.open(self.db, **options)

    def runs(self, job: str | None = None) -> list[dict[str, Any]]:
        return sorted(read_runs(self.db, job=job, limit=10_000), key=lambda r: r["scheduled_for"])

    def context(self, job: str) -> dict[str, Any]:
        return read_context(self.db, job)

    def insert_finished(self, run_id: str, job_id: str, scheduled_for: float, outcome: str) -> None:
        """A record as another process would have written it."""
        with sqlite3.connect(self.db) as conn:
            conn.execute(
                "INSERT INTO runs (run_id, job_id, scheduled_for, manual, outcome) "
                "VALUES (?, ?, ?, 0, ?)",
                (run_id, job_id, scheduled_for, outcome),
            )
        conn.close()


class PostgresStores:
    name = "postgres"

    def __init__(self, cluster: Any, database: str) -> None:
        self.cluster = cluster
        self.database = database
        self.url = cluster.url(database)

    def open(self, **options: Any) -> Store:
        from jobtui.store.pgstore import PostgresStore

        return PostgresStore.open_database(self.url, **options)

    def runs(self, job: str | None = None) -> list[dict[str, Any]]:
        from jobtui.store.pgstore import read_runs as read_shared_runs

        found = read_shared_runs(self.url, job=job, limit=10_000)
        return sorted(found, key=lambda r: r["scheduled_for"])

    def context(self, job: str) -> dict[str, Any]:
        from jobtui.store.pgstore import read_context as read_shared_context

        return read_shared_context(self.url, job)

    def insert_finished(self, run_id: str, job_id: str, scheduled_for: float, outcome: str) -> None:
        import psycopg

        with psycopg.connect(self.cluster.conninfo(self.database)) as conn:
            conn.execute(
                "INSERT INTO runs (run_id, job_id, scheduled_for, outcome, host) "
                "VALUES (%s, %s, to_timestamp(%s), %s, 'elsewhere')",
                (run_id, job_id, scheduled_for, outcome),
            )
