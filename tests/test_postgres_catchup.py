"""A host whose connection for other hosts' word was cut catches up on it once it is back:
what lasts (a pause, a remove) is applied as if it had been heard."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest

from jobtui.control.controller import LocalController
from jobtui.store import pgnotify

from .conftest import Recorder
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
