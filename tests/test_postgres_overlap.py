"""`replace` and `queue` hold across hosts sharing a PostgreSQL state: an occurrence claimed on
one host while a run of its job goes on on another replaces that run, or waits for it to end."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import psycopg
import pytest

from jobtui import Outcome, VirtualClock
from jobtui.config import load
from jobtui.host import Host
from jobtui.store.pgstore import PostgresStore, read_runs

from .conftest import START, Recorder

JOBS = """[scheduler]
state = "{url}"

[jobs.report]
command = "while [ ! -e '{release}' ]; do sleep 0.05; done"
every = "10s"
overlap = "{overlap}"
"""


async def start_host(url, folder, name, overlap, *, lease=30.0, start=START):
    folder.mkdir()
    path = folder / "jobs.toml"
    path.write_text(JOBS.format(url=url, release=folder.parent / "release", overlap=overlap))
    path.chmod(0o644)
    store = PostgresStore.open_database(url, host=name, lease=lease)
    host = Host(load(path), store=store, clock=VirtualClock(start))
    await host.start(watch=False)
    return host


def row(url, scheduled):
    by_time = {r["scheduled_for"][11:19]: r for r in read_runs(url, job="report", limit=100)}
    return by_time.get(scheduled)


async def wait_row(url, scheduled, check, what):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(row, url, scheduled)
        if found is not None and check(found):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{scheduled}: {what}; the row is {found}")


@pytest.fixture
def url(pg_cluster, pg_database):
    return pg_cluster.url(pg_database)


async def test_replace_cancels_the_run_going_on_another_host(url, tmp_path):
    a = await start_host(url, tmp_path / "a", "a", "replace")
    b = await start_host(url, tmp_path / "b", "b", "replace")
    try:
        await a.scheduler.clock.advance(10)  # a claims 12:00:10 and runs it
        (first,) = a.scheduler.running_runs()
        await Recorder(a.scheduler).wait_for(lambda: first.pid is not None, 10)
        await asyncio.to_thread(a.store.flush)
        await b.scheduler.clock.advance(20)  # 12:00:10 is a's; b claims 12:00:20
        await Recorder(a.scheduler).wait_for(lambda: first.outcome is not None, 5)
        assert first.outcome is Outcome.CANCELLED
        assert first.reason == ("replaced by the occurrence for 2026-01-05T12:00:20Z (on host b)")
        (second,) = b.scheduler.running_runs()  # the new run goes on
        assert second.scheduled_ts == START.timestamp() + 20 and second.started_ts is not None
    finally:
        (tmp_path / "release").touch()
        await a.stop(5)
        await b.stop(5)


async def test_replace_leaves_a_run_of_a_later_occurrence_on_another_host_alone(url, tmp_path):
    """b's claim of 12:00:10 lands after a started 12:00:20 (b's writer was held up, or its
    clock is behind): a's run is of the newer occurrence, and it goes on (the claim of an older
    one cancelled it)."""
    a = await start_host(url, tmp_path / "a", "a", "replace", start=START + timedelta(seconds=15))
    b = await start_host(url, tmp_path / "b", "b", "replace")
    try:
        await a.scheduler.clock.advance(5)  # a claims 12:00:20 and runs it
        (newer,) = a.scheduler.running_runs()
        await Recorder(a.scheduler).wait_for(lambda: newer.pid is not None, 10)
        await asyncio.to_thread(a.store.flush)
        await b.scheduler.clock.advance(10)  # b claims 12:00:10, which no host had claimed
        (older,) = b.scheduler.running_runs()
        await Recorder(b.scheduler).wait_for(lambda: older.pid is not None, 10)
        await asyncio.to_thread(b.store.flush)
        # Said after b's claim committed: a hears it after any cancel b's claim sent.
        b.tell_other_hosts("pause", "report", "checked")
        await Recorder(a.scheduler).wait_for(lambda: a.scheduler.get("report").paused, 5)
        assert newer.outcome is None
    finally:
        (tmp_path / "release").touch()
        await a.stop(5)
        await b.stop(5)


async def test_queue_waits_for_the_run_going_on_another_host(url, tmp_path):
    a = await start_host(url, tmp_path / "a", "a", "queue")
    b = await start_host(url, tmp_path / "b", "b", "queue")
    advancing = None
    try:
        await a.scheduler.clock.advance(10)
        (first,) = a.scheduler.running_runs()
        await Recorder(a.scheduler).wait_for(lambda: first.pid is not None, 10)
        await asyncio.to_thread(a.store.flush)
        # b's 12:00:20 is claimed while a's run goes on: b's clock waits on its answer.
        advancing = asyncio.create_task(b.scheduler.clock.advance(20))
        queued = await wait_row(url, "12:00:20", lambda r: r["host"] == "b", "not claimed by b")
        assert queued["reason"] == f"queued: waiting for run {first.run_id} on host a to end"
        assert queued["started_at"] is None and not Recorder(b.scheduler).started()
        (tmp_path / "release").touch()  # a's run ends: b's may start
        await advancing  # b's answer came: a's run had ended by then, not one beside it
        assert first.outcome is Outcome.SUCCEEDED
        second = await wait_row(url, "12:00:20", lambda r: r["outcome"], "b's run did not run")
        assert second["outcome"] == "succeeded" and second["host"] == "b"
    finally:
        (tmp_path / "release").touch()
        if advancing is not None:
            await advancing
        await a.stop(5)
        await b.stop(5)


async def test_a_queued_occurrence_waiting_for_a_dead_host_starts_once_its_lease_ran_out(
    url, pg_cluster, pg_database, tmp_path
):
    a = await start_host(url, tmp_path / "a", "a", "queue", lease=1.5)
    (tmp_path / "release").touch()  # a's runs end at once
    with psycopg.connect(pg_cluster.conninfo(pg_database), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, job_id, scheduled_for, started_at, host, lease_until) "
            "VALUES ('r1', 'report', now(), now(), 'dead', now() + interval '1s')"
        )
    try:
        await a.scheduler.clock.advance(10)  # answered once the dead host's run is abandoned
        (dead,) = [r for r in read_runs(url, job="report") if r["run_id"] == "r1"]
        assert dead["outcome"] == "abandoned"
        mine = await wait_row(url, "12:00:10", lambda r: r["outcome"], "a's run did not run")
        assert mine["outcome"] == "succeeded" and mine["host"] == "a"
    finally:
        await a.stop(5)


async def test_a_queued_occurrence_cancelled_while_it_waits_never_runs(url, tmp_path):
    a = await start_host(url, tmp_path / "a", "a", "queue")
    b = await start_host(url, tmp_path / "b", "b", "queue")
    advancing = None
    try:
        await a.scheduler.clock.advance(10)
        (first,) = a.scheduler.running_runs()
        await Recorder(a.scheduler).wait_for(lambda: first.pid is not None, 10)
        await asyncio.to_thread(a.store.flush)
        advancing = asyncio.create_task(b.scheduler.clock.advance(20))
        await wait_row(url, "12:00:20", lambda r: r["host"] == "b", "not claimed by b")
        (waiting,) = b.scheduler.running_runs()
        b.scheduler.cancel("report")
        await advancing
        assert waiting.outcome is Outcome.CANCELLED and waiting.started_ts is None
        await asyncio.to_thread(b.store.flush)
        ended = await asyncio.to_thread(row, url, "12:00:20")
        assert ended["outcome"] == "cancelled" and ended["host"] == "b"
        assert first.outcome is None  # a's run goes on
    finally:
        (tmp_path / "release").touch()
        if advancing is not None:
            await advancing
        await a.stop(5)
        await b.stop(5)
