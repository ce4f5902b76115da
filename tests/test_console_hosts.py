"""The console of one host of several sharing a PostgreSQL state: every host's runs, live, with
a Host column; cancelling a run that goes on another host."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from jobtui import Outcome, VirtualClock
from jobtui.config import load
from jobtui.console.app import JobtuiApp
from jobtui.console.screens.confirm import ConfirmScreen
from jobtui.console.screens.detail import JobDetailScreen
from jobtui.console.widgets.job_table import JobTable
from jobtui.control.client import RemoteController
from jobtui.control.controller import LocalController
from jobtui.control.server import ControlServer
from jobtui.host import Host
from jobtui.store.pgstore import PostgresStore

from .conftest import START, Recorder
from .test_console import select, table_rows, write

# Cron times away from START: nothing of this host's own runs by itself in these pictures.
JOBS = """
[scheduler]
timezone = "UTC"

[jobs.backup]
command = "echo backing up"
cron = "30 2 * * *"

[jobs.sync]
command = "echo synced"
cron = "5 * * * *"

[jobs.copy]
command = "echo '::progress 40%'; echo '::status copying 4 of 10'; sleep 30"
cron = "45 * * * *"
"""
POLL = 0.05
SIZE = (120, 24)


def open_store(url: str, name: str) -> PostgresStore:
    store = PostgresStore.open_database(url, host=name)
    store.peer_poll = POLL
    return store


def console(folder: Path, url: str, name: str = "web-1") -> JobtuiApp:
    folder.mkdir(exist_ok=True)
    path = write(folder / "jobs.toml", JOBS)
    return JobtuiApp(
        load(path), clock=VirtualClock(START), store=open_store(url, name), watch_file=False,
        grace=0,
    )  # fmt: skip


async def until(pilot, check, timeout: float = 10.0) -> None:
    """Poll, with a deadline, for what another host's thread brings in."""
    async with asyncio.timeout(timeout):
        while not check():
            await pilot.pause(POLL)


async def test_a_run_on_another_host_shows_in_the_table_with_its_host_and_is_cancelled_there(
    pg_cluster, pg_database, tmp_path
):
    url = pg_cluster.url(pg_database)
    (tmp_path / "b").mkdir()
    path = write(tmp_path / "b" / "jobs.toml", JOBS)
    other = Host(load(path), store=open_store(url, "web-2"), clock=VirtualClock(START))
    await other.start(watch=False)
    app = console(tmp_path / "a", url)
    try:
        async with app.run_test(size=(140, 30)) as pilot:
            table = app.screen.query_one(JobTable)
            assert [c.label for c in table.columns][4:7] == ["Last run", "Host", "Progress"]
            run = other.scheduler.run_now("copy", wait=False)
            await until(pilot, lambda: "40%" in " ".join(table_rows(app)["copy"]))
            row = table_rows(app)["copy"]
            assert row[2] == "▶ running" and row[5] == "web-2"
            assert row[7] == "copying 4 of 10"
            assert table_rows(app)["sync"][5] == "—"  # never ran anywhere
            header = str(app.screen.query_one("#summary").render())
            assert "host web-1" in header and "1 running (1 on other hosts)" in header

            await select(pilot, app, "copy")
            await pilot.press("enter")
            assert isinstance(app.screen, JobDetailScreen)
            await pilot.pause()
            title = str(app.screen.query_one("#run-title").render())
            assert title.startswith("Running on web-2 for")
            assert app.screen.query_one("#log").lines[0].startswith("(this run is on web-2")
            await pilot.press("escape")

            await pilot.press("x")
            assert isinstance(app.screen, ConfirmScreen)
            assert app.screen.question.endswith("(it runs on web-2)")
            await pilot.press("y")
            await Recorder(other.scheduler).wait_for(lambda: run.outcome is not None, 10)
            assert run.outcome is Outcome.CANCELLED
            await until(pilot, lambda: table_rows(app)["copy"][4].startswith("■"))
            row = table_rows(app)["copy"]
            assert row[5] == "web-2" and row[6] == ""  # where the last run ran; none runs now
    finally:
        # run_test leaves without the console's quit, which would stop its host.
        for each in (app.host, other):
            if each is not None:
                await each.stop(0)


async def test_a_single_host_console_has_no_host_column(tmp_path):
    path = write(tmp_path / "jobs.toml", JOBS)
    app = JobtuiApp(load(path), clock=VirtualClock(START), watch_file=False, grace=0)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        assert "Host" not in [c.label for c in app.screen.query_one(JobTable).columns]
        assert "host" not in str(app.screen.query_one("#summary").render())


def insert_runs(url: str) -> None:
    """Another host's runs, as that host writes them: one going on, one that ended."""
    start = START.timestamp()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO runs (run_id, job_id, scheduled_for, attempt, started_at, host, "
            "progress, status_message) VALUES ('b1', 'copy', to_timestamp(%s), 1, "
            "to_timestamp(%s), 'web-2', 0.4, 'copying 4 of 10')",
            (start - 900, start - 890),
        )
        conn.execute(
            "INSERT INTO runs (run_id, job_id, scheduled_for, attempt, started_at, finished_at, "
            "outcome, host) VALUES ('b0', 'sync', to_timestamp(%s), 1, to_timestamp(%s), "
            "to_timestamp(%s), 'succeeded', 'web-3')",
            (start - 3300, start - 3300, start - 3288),
        )


async def test_an_attached_console_shows_the_other_hosts_run_and_its_host(
    pg_cluster, pg_database, tmp_path
):
    """The daemon of host web-1 in this process, a console attached to it over its socket."""
    url = pg_cluster.url(pg_database)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    other = Host(
        load(write(tmp_path / "b" / "jobs.toml", JOBS)), store=open_store(url, "web-2"),
        clock=VirtualClock(START),
    )  # fmt: skip
    config = load(write(tmp_path / "a" / "jobs.toml", JOBS))
    host = Host(config, store=open_store(url, "web-1"), clock=VirtualClock(START))
    local = LocalController(host)
    server = ControlServer(local, flush_interval=0.02)
    for each in (other, host):
        await each.start(watch=False)
    await server.start()
    remote = RemoteController(config.path, config.timezone, state_path=config.state_path)
    app = JobtuiApp(config, attach=remote, refresh_interval=0.1)
    try:
        async with app.run_test(size=(140, 30)) as pilot:
            await until(pilot, lambda: bool(remote.jobs()))
            other.scheduler.run_now("copy", wait=False)
            await until(pilot, lambda: "40%" in " ".join(table_rows(app)["copy"]))
            assert table_rows(app)["copy"][5] == "web-2"
            (run,) = remote.job("copy").running
            assert (run.host, run.status_message) == ("web-2", "copying 4 of 10")
            # The summary follows within the daemon's full pass (a second).
            await until(pilot, lambda: remote.summary().running_elsewhere == 1)
            assert remote.summary().host == "web-1"
            assert "host web-1" in str(app.screen.query_one("#summary").render())
    finally:
        await server.close()
        local.close()
        for each in (host, other):
            await each.stop(0)
