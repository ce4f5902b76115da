"""Cancel, remove and run-now given on one host of several sharing a PostgreSQL state."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from jobtui import Outcome, RunNotFound, VirtualClock
from jobtui.config import load
from jobtui.control.controller import LocalController
from jobtui.host import Host
from jobtui.store.pgstore import PostgresStore, read_runs

from .conftest import START, Recorder

JOBS = """[scheduler]
state = "{url}"

[jobs.slow]
command = "sleep 30"
every = "1h"

[jobs.report]
command = "true"
every = "1h"
"""


async def start_hosts(url, tmp_path, names=("a", "b", "c")):
    """Hosts with a jobs.toml each (as on separate machines), the same jobs in each."""
    hosts = []
    for name in names:
        folder = tmp_path / name
        folder.mkdir()
        path = folder / "jobs.toml"
        path.write_text(JOBS.format(url=url))
        path.chmod(0o644)
        store = PostgresStore.open_database(url, host=name)
        host = Host(load(path), store=store, clock=VirtualClock(START))
        await host.start(watch=False)
        hosts.append(host)
    return hosts


async def stop_hosts(hosts):
    for host in hosts:
        await host.stop(0)


async def test_cancel_on_one_host_stops_the_run_on_the_host_that_runs_it(
    pg_cluster, pg_database, tmp_path
):
    a, b, c = await start_hosts(pg_cluster.url(pg_database), tmp_path)
    try:
        run = b.scheduler.run_now("slow", wait=False)
        recorder = Recorder(b.scheduler)
        await recorder.wait_for(lambda: run.pid is not None, 10)
        await asyncio.to_thread(b.store.flush)  # as a's console shows it: b's run written
        loop = asyncio.get_running_loop()
        began = loop.time()
        LocalController(a).cancel("slow")  # nothing of it runs on a: accepted, sent to b
        await recorder.wait_for(lambda: run.outcome is not None, 10)
        assert run.outcome is Outcome.CANCELLED
        assert run.reason == "cancelled by the user (on host a)"
        assert loop.time() - began < 1.5
    finally:
        await stop_hosts([a, b, c])


async def test_cancel_of_a_job_no_host_runs_is_refused_as_it_is_on_one_host(
    pg_cluster, pg_database, tmp_path
):
    a, b, c = await start_hosts(pg_cluster.url(pg_database), tmp_path)
    try:
        with pytest.raises(RunNotFound):
            LocalController(a).cancel("slow")
        with pytest.raises(RunNotFound):
            LocalController(a).cancel("no-such-run")
        run = b.scheduler.run_now("slow", wait=False)
        await Recorder(b.scheduler).wait_for(lambda: run.pid is not None, 10)
        await asyncio.to_thread(b.store.flush)
        LocalController(c).cancel(run.run_id)  # one run, by its id, on another host
        await Recorder(b.scheduler).wait_for(lambda: run.outcome is not None, 10)
        assert run.outcome is Outcome.CANCELLED
    finally:
        await stop_hosts([a, b, c])


async def test_remove_on_one_host_pauses_the_job_on_the_others(pg_cluster, pg_database, tmp_path):
    a, b, c = await start_hosts(pg_cluster.url(pg_database), tmp_path)
    try:
        LocalController(a).remove("report")
        assert "report" not in a.scheduler
        assert "[jobs.report]" not in a.config.path.read_text()
        await Recorder(b.scheduler).wait_for(
            lambda: b.scheduler.get("report").paused and c.scheduler.get("report").paused, 5
        )
        reason = c.scheduler.get("report").pause_reason
        assert "removed from its jobs.toml (on host a)" in reason
        assert "remove it from this host's jobs.toml too" in reason
        assert "[jobs.report]" in b.config.path.read_text()  # each host's file is its own
    finally:
        await stop_hosts([a, b, c])


async def test_run_now_on_one_host_runs_once_there(pg_cluster, pg_database, tmp_path):
    url = pg_cluster.url(pg_database)
    a, b, c = await start_hosts(url, tmp_path)
    try:
        run = await a.scheduler.run_now("report")
        assert run.outcome is Outcome.SUCCEEDED
        await asyncio.to_thread(a.store.flush)
        manual = [r for r in read_runs(url, job="report") if r["manual"]]
        assert [(r["run_id"], r["host"]) for r in manual] == [(run.run_id, "a")]
    finally:
        await stop_hosts([a, b, c])


def test_a_closed_store_asked_where_a_job_runs_opens_no_connection_again(pg_cluster, pg_database):
    """A cancel given as the host stops (or a queued occurrence's last look) asks the store
    after it closed: it answers "cannot ask", without connecting again (a connection made then
    was never closed)."""
    store = PostgresStore.open_database(pg_cluster.url(pg_database), host="a")
    store.close()
    assert store.hosts_running("slow") is None
    with psycopg.connect(pg_cluster.conninfo(pg_database)) as conn:
        (left,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'jobtui'"
        ).fetchone()
    assert left == 0


def test_a_cancel_does_not_wait_for_a_batch_holding_the_writers_connection(pg_cluster, pg_database):
    """A cancel asks which host runs the job on the writer's connection, from the loop: while
    a batch holds that connection (queued behind other hosts' locks), the cancel is sent all
    the same, instead of the console freezing until the batch ends."""
    store = PostgresStore.open_database(pg_cluster.url(pg_database), host="a")
    held, release = threading.Event(), threading.Event()

    def batch() -> None:
        with store.backend._lock:  # as the writer holds it through a batch's transaction
            held.set()
            release.wait(10)

    writer = threading.Thread(target=batch)
    writer.start()
    try:
        assert held.wait(10)
        answer = store.hosts_running("slow")  # waited out the batch: [] ten seconds later
    finally:
        release.set()
        writer.join()
        store.close()
    assert answer is None
