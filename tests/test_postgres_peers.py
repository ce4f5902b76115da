"""A console on any host shows every host's runs live: host A's controller sees the run going
on host B, with B's name and progress, and then as the job's last run once it ended."""

from __future__ import annotations

import asyncio
import logging

import psycopg

from jobtui import Outcome, VirtualClock
from jobtui.config import load
from jobtui.control.controller import JobsChanged, LocalController
from jobtui.engine import JobState
from jobtui.host import Host
from jobtui.store import pgpeers
from jobtui.store.interface import PeerRuns
from jobtui.store.pgpeers import PeerWatcher
from jobtui.store.pgstore import PostgresStore
from jobtui.store.writes import StoreUnavailable

from .conftest import START, Recorder

JOBS = """[jobs.copy]
command = "echo '::progress 40%'; echo '::status copying'; sleep 30"
every = "1h"

[jobs.report]
command = "true"
every = "1h"
"""
POLL = 0.05


async def start_hosts(url, tmp_path, names=("a", "b")):
    hosts = []
    for name in names:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "jobs.toml").write_text(JOBS)
        store = PostgresStore.open_database(url, host=name)
        store.peer_poll = POLL
        host = Host(load(folder / "jobs.toml"), store=store, clock=VirtualClock(START))
        await host.start(watch=False)
        hosts.append(host)
    return hosts


async def until(check, timeout: float = 10.0) -> None:
    """Poll what another host's thread brings in, with a deadline (no timing assumption)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(POLL / 2)


async def test_a_run_on_another_host_shows_live_with_its_host_then_as_the_last_run(
    pg_cluster, pg_database, tmp_path
):
    a, b = await start_hosts(pg_cluster.url(pg_database), tmp_path)
    controller = LocalController(a)
    notices: list[JobsChanged] = []
    controller.subscribe(lambda n: notices.append(n) if isinstance(n, JobsChanged) else None)
    try:
        assert controller.summary().host == "a"
        run = b.scheduler.run_now("copy", wait=False)
        await Recorder(b.scheduler).wait_for(lambda: run.status_message == "copying", 10)

        def seen_on_a():
            view = controller.job("copy")
            return view is not None and view.running and view.running[0].status_message

        await until(seen_on_a)
        view = controller.job("copy")
        assert view is not None
        assert view.state is JobState.RUNNING  # running elsewhere is running
        (shown,) = view.running
        assert (shown.run_id, shown.host, shown.progress) == (run.run_id, "b", 0.4)
        assert shown.status_message == "copying"
        assert any("copy" in n.job_ids for n in notices)
        summary = controller.summary()
        assert (summary.running, summary.running_elsewhere) == (1, 1)
        assert controller.job("report").running == ()

        controller.cancel("copy")  # from host A's console: the run is on B
        await until(lambda: not controller.job("copy").running)
        view = controller.job("copy")
        assert view.last_run is not None
        assert (view.last_run.run_id, view.last_run.host) == (run.run_id, "b")
        assert view.last_run.outcome is Outcome.CANCELLED
        assert view.state is JobState.SCHEDULED
        assert controller.summary().running_elsewhere == 0

        # A's own run, newer, is the last run again, with A's name.
        mine = await a.scheduler.run_now("report")
        assert controller.job("report").last_run.host == "a"
        assert mine.outcome is Outcome.SUCCEEDED
    finally:
        controller.close()
        for host in (a, b):
            await host.stop(0)


async def test_a_single_host_sqlite_state_shows_no_hosts(tmp_path):
    path = tmp_path / "jobs.toml"
    path.write_text(JOBS)
    from jobtui.store import Store

    host = Host(load(path), store=Store.open(tmp_path / "state.db"), clock=VirtualClock(START))
    await host.start(watch=False)
    controller = LocalController(host)
    try:
        await host.scheduler.run_now("report")
        view = controller.job("report")
        assert view.last_run is not None and view.last_run.host == ""
        assert (controller.summary().host, controller.summary().running_elsewhere) == ("", 0)
    finally:
        controller.close()
        await host.stop(0)


def test_the_watcher_keeps_its_picture_while_the_database_is_away_and_comes_back(
    pg_cluster, pg_database, monkeypatch, caplog
):
    """A lost connection is made again; meanwhile nothing changes hands but a log line."""
    url = pg_cluster.url(pg_database)
    store = PostgresStore.open_database(url, host="b")  # makes the schema
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, job_id, scheduled_for, host, started_at, progress) "
            "VALUES ('r1', 'copy', now(), 'b', now(), 0.25)"
        )
    pictures: list[PeerRuns] = []
    real_connect = pgpeers.connect
    cut = {"on": False}

    def connect(conninfo: str, shown: str) -> psycopg.Connection:
        if cut["on"]:
            raise StoreUnavailable("cannot connect to db: refused")
        return real_connect(conninfo, shown)

    monkeypatch.setattr(pgpeers, "connect", connect)
    monkeypatch.setattr(pgpeers, "RETRY", POLL)
    watcher = PeerWatcher(url, "db", "a", lambda: ["copy"], pictures.append, poll=POLL)
    caplog.set_level(logging.WARNING, "jobtui.store")
    watcher.start()
    try:
        wait(lambda: pictures)
        assert pictures[-1].running["copy"][0].progress == 0.25
        cut["on"] = True
        with psycopg.connect(url, autocommit=True) as conn:  # drop the watcher's connection
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'jobtui' AND pid <> pg_backend_pid()"
            )
            conn.execute("UPDATE runs SET progress = 0.5")
        wait(lambda: "cannot follow other hosts' runs" in caplog.text)
        assert watcher.picture.running["copy"][0].progress == 0.25  # the last picture stays
        assert len(pictures) == 1
        cut["on"] = False
        wait(lambda: len(pictures) == 2)
        assert pictures[-1].running["copy"][0].progress == 0.5
        assert "shown live again" in caplog.text
    finally:
        watcher.close()


def wait(check, timeout: float = 10.0) -> None:
    from .conftest import wait_until

    wait_until(check, timeout, "the watcher")
