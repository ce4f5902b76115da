"""A host whose connection for other hosts' word was cut catches up on it once it is back:
what lasts (a pause, a remove) is applied as if it had been heard."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest

from jobtui import VirtualClock
from jobtui.config import load
from jobtui.control.controller import LocalController
from jobtui.host import Host
from jobtui.store import pgnotify
from jobtui.store.pgstore import PostgresStore

from .conftest import START, Recorder
from .test_postgres_remote import start_hosts, stop_hosts


@pytest.fixture
def gated_notifier(monkeypatch):
    """Lets the test hold one notifier's new connections until it opens the gate."""
    gate = threading.Event()
    held: list[threading.Thread] = []
    real = pgnotify.connect

    def connect(conninfo, shown):
        if threading.current_thread() in held:
            gate.wait(30)
        return real(conninfo, shown)

    monkeypatch.setattr(pgnotify, "connect", connect)
    return gate, held


def cut(conninfo, pid):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def heard(listener, action, job):
    """Wait until the database has delivered one host's notice (so it was said while the
    other host could not hear it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for notice in listener.notifies(timeout=0.1, stop_after=1):
            if f'"action": "{action}"' in notice.payload and f'"job": "{job}"' in notice.payload:
                return
    raise AssertionError(f"no {action} of {job} was sent")


async def test_a_resume_given_while_a_host_was_cut_off_reaches_it_when_back(
    pg_cluster, pg_database, tmp_path, gated_notifier
):
    gate, held = gated_notifier
    conninfo = pg_cluster.conninfo(pg_database)
    a, b = await start_hosts(pg_cluster.url(pg_database), tmp_path, names=("a", "b"))
    notifier = b.store._notifier
    try:
        LocalController(a).pause("report")  # heard by b as it happens
        await Recorder(b.scheduler).wait_for(lambda: b.scheduler.get("report").paused, 5)
        with psycopg.connect(conninfo, autocommit=True) as listener:
            listener.execute("LISTEN jobtui")
            held.append(notifier._thread)
            cut(conninfo, notifier.backend_pid)
            LocalController(a).resume("report")
            heard(listener, "resume", "report")
        await asyncio.to_thread(a.store.flush)
        assert b.scheduler.get("report").paused  # b heard nothing
        gate.set()
        await Recorder(b.scheduler).wait_for(lambda: not b.scheduler.get("report").paused, 5)
    finally:
        gate.set()
        await stop_hosts([a, b])


@pytest.mark.parametrize("action", ["pause", "remove"])
async def test_a_pause_or_remove_given_while_a_host_was_cut_off_reaches_it_when_back(
    pg_cluster, pg_database, tmp_path, gated_notifier, action
):
    gate, held = gated_notifier
    conninfo = pg_cluster.conninfo(pg_database)
    a, b = await start_hosts(pg_cluster.url(pg_database), tmp_path, names=("a", "b"))
    notifier = b.store._notifier
    try:
        with psycopg.connect(conninfo, autocommit=True) as listener:
            listener.execute("LISTEN jobtui")
            held.append(notifier._thread)
            cut(conninfo, notifier.backend_pid)
            if action == "pause":
                LocalController(a).pause("report")
            else:
                LocalController(a).remove("report")
            heard(listener, action, "report")
        await asyncio.to_thread(a.store.flush)
        assert not b.scheduler.get("report").paused  # b heard nothing
        back = time.monotonic()
        gate.set()
        await Recorder(b.scheduler).wait_for(lambda: b.scheduler.get("report").paused, 5)
        assert time.monotonic() - back < 1.5
        reason = b.scheduler.get("report").pause_reason
        expected = "paused from the console" if action == "pause" else "removed from its jobs.toml"
        assert f"{expected} (on host a)" in reason
    finally:
        gate.set()
        await stop_hosts([a, b])


FLAKY = """[scheduler]
state = "{url}"

[jobs.flaky]
command = "false"
every = "1h"
max_failures = 1

[jobs.report]
command = "true"
every = "1h"
"""


async def test_what_a_host_heard_before_its_connection_broke_is_not_applied_again(
    pg_cluster, pg_database, tmp_path
):
    """b heard a's resume as it happened; then b's own failures disabled the job. When b's
    connection comes back, that old resume is not caught up as if missed (a resume clears a
    disable: the job would run again, unasked, on b)."""
    conninfo = pg_cluster.conninfo(pg_database)
    url = pg_cluster.url(pg_database)
    hosts = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        path = folder / "jobs.toml"
        path.write_text(FLAKY.format(url=url))
        path.chmod(0o644)
        store = PostgresStore.open_database(url, host=name)
        host = Host(load(path), store=store, clock=VirtualClock(START))
        await host.start(watch=False)
        hosts.append(host)
    a, b = hosts
    try:
        LocalController(a).pause("flaky")
        await Recorder(b.scheduler).wait_for(lambda: b.scheduler.get("flaky").paused, 5)
        LocalController(a).resume("flaky")  # heard by b as it happens
        await Recorder(b.scheduler).wait_for(lambda: not b.scheduler.get("flaky").paused, 5)
        await asyncio.to_thread(a.store.flush)
        run = b.scheduler.run_now("flaky", wait=False)  # fails: b disables the job
        await Recorder(b.scheduler).wait_for(lambda: run.outcome is not None, 10)
        assert b.scheduler.get("flaky").disabled_reason
        notifier = b.store._notifier
        before = notifier.backend_pid
        cut(conninfo, before)
        await Recorder(b.scheduler).wait_for(lambda: notifier.backend_pid not in (None, before), 10)
        # Said after b listens again: heard after whatever b's catch-up applied.
        LocalController(a).pause("report")
        await Recorder(b.scheduler).wait_for(lambda: b.scheduler.get("report").paused, 5)
        assert b.scheduler.get("flaky").disabled_reason  # still disabled
    finally:
        await stop_hosts([a, b])
