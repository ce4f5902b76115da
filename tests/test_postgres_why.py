"""`jobtui why` with the state on PostgreSQL: it reads every host's notes and sessions."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from jobtui.config import load
from jobtui.host import Host
from jobtui.store.pgstore import PostgresStore, read_context

from .conftest import Recorder


async def test_why_reads_a_shared_state_and_a_pause_is_noted_once(
    pg_cluster, pg_database, tmp_path
):
    url = pg_cluster.url(pg_database)
    path = tmp_path / "jobs.toml"
    path.write_text(
        f'[scheduler]\nstate = "{url}"\n\n[jobs.report]\ncommand = "true"\nevery = "1h"\n'
    )
    path.chmod(0o644)
    hosts = []
    for name in ("a", "b"):
        config = load(path)
        hosts.append(Host(config, store=PostgresStore.open_database(url, host=name)))
        await hosts[-1].start(watch=False)
    a, b = hosts
    a.scheduler.pause("report", reason="maintenance")
    await Recorder(b.scheduler).wait_for(lambda: b.scheduler.get("report").paused, 5)
    await a.stop()  # b outlives a: one span of jobtui being up, not two
    await b.stop()

    context = read_context(url, "report")
    # Heard by b from a, the pause is a's note alone: not one per host.
    assert [(e["kind"], e["detail"], e["host"]) for e in context["events"]] == [
        ("paused", "maintenance", "a")
    ]
    assert len(context["sessions"]) == 1 and context["sessions"][0]["stopped_at"] is not None

    result = subprocess.run(
        [sys.executable, "-m", "jobtui", "why", "report", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["state"] == "paused"
    assert "maintenance" in answer["lines"][0]["text"]
    assert answer["next_text"].startswith("next: none while paused")


def test_why_names_an_unreachable_database(tmp_path):
    path = tmp_path / "jobs.toml"
    path.write_text(
        '[scheduler]\nstate = "postgresql://jobs@/jobs?host=/nonexistent"\n\n'
        '[jobs.report]\ncommand = "true"\nevery = "1h"\n'
    )
    path.chmod(0o644)
    result = subprocess.run(
        [sys.executable, "-m", "jobtui", "why", "report", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "jobtui why: cannot" in result.stderr and "Traceback" not in result.stderr


async def test_a_version_1_database_migrates_forward_keeping_its_runs(pg_cluster, pg_database):
    """A database written before sessions and job notes were kept (schema 1) gains them at
    the next start; the runs it holds stay."""
    import psycopg

    from jobtui.store.pgschema import MIGRATIONS
    from jobtui.store.pgstore import read_runs

    url = pg_cluster.url(pg_database)
    with psycopg.connect(pg_cluster.conninfo(pg_database)) as conn:
        conn.execute(MIGRATIONS[0].encode())
        conn.execute("UPDATE jobtui_schema SET version = 1")
        conn.execute(
            "INSERT INTO runs (run_id, job_id, scheduled_for, outcome, host) "
            "VALUES ('old', 'report', to_timestamp(1000), 'succeeded', 'a')"
        )
    store = PostgresStore.open_database(url, host="b")
    store.start()
    store.note_job_event("report", "hook_failed", "on_failure: exit status 2", at=2000.0)
    await asyncio.to_thread(store.close)
    with psycopg.connect(pg_cluster.conninfo(pg_database)) as conn:
        assert conn.execute("SELECT version FROM jobtui_schema").fetchone() == (len(MIGRATIONS),)
    assert [r["run_id"] for r in read_runs(url, job="report")] == ["old"]
    assert [(e["kind"], e["host"]) for e in read_context(url, "report")["events"]] == [
        ("hook_failed", "b")
    ]
