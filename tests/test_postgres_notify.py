"""What one host says to the others (pause, resume, cancel, remove) survives a connection
lost while it is being sent."""

from __future__ import annotations

import threading

import psycopg
import pytest

from jobtui.store import pgnotify
from jobtui.store.pgnotify import Notifier
from jobtui.store.pgstore import PostgresStore


@pytest.fixture(autouse=True)
def schema(pg_cluster, pg_database):
    """The notifier catches up from the shared notes (job_events) when it connects again."""
    PostgresStore.open_database(pg_cluster.url(pg_database), host="setup").close()


def test_a_pause_sent_while_the_connection_breaks_is_sent_again(
    pg_cluster, pg_database, monkeypatch
):
    conninfo = pg_cluster.conninfo(pg_database)
    heard: list[tuple[str, str, str]] = []
    got = threading.Event()

    def on_remote(action: str, job_id: str, reason: str, host: str) -> None:
        heard.append((action, job_id, host))
        got.set()

    listener = Notifier(conninfo, "db", "b", on_remote)
    listener.start()
    real_connect = pgnotify.connect
    broken = threading.Event()

    def connect_once_breaking(conninfo: str, shown: str) -> psycopg.Connection:
        conn = real_connect(conninfo, shown)
        if broken.is_set():
            return conn
        real_execute = conn.execute

        def execute(query, params=None):
            if "pg_notify" in str(query) and not broken.is_set():
                broken.set()
                raise psycopg.OperationalError("server closed the connection unexpectedly")
            return real_execute(query, params)

        conn.execute = execute  # type: ignore[method-assign]
        return conn

    monkeypatch.setattr(pgnotify, "connect", connect_once_breaking)
    monkeypatch.setattr(pgnotify, "RETRY", 0.05)
    sender = Notifier(conninfo, "db", "a", lambda *_: None)
    sender.start()
    try:
        sender.send("pause", "backup")
        assert got.wait(10), "the pause never reached the other host"
    finally:
        sender.close()
        listener.close()
    assert broken.is_set()
    assert heard == [("pause", "backup", "a")]


def test_a_notice_the_server_refuses_does_not_hold_back_the_next(pg_cluster, pg_database):
    conninfo = pg_cluster.conninfo(pg_database)
    heard: list[tuple[str, str]] = []
    got = threading.Event()

    def on_remote(action: str, job_id: str, reason: str, host: str) -> None:
        heard.append((action, job_id))
        got.set()

    listener = Notifier(conninfo, "db", "b", on_remote)
    listener.start()
    sender = Notifier(conninfo, "db", "a", lambda *_: None)
    sender.start()
    try:
        sender.send("pause", "backup", "x" * 9000)  # over NOTIFY's 8000-byte payload limit
        sender.send("pause", "report")
        assert got.wait(10), "the second pause never reached the other host"
    finally:
        sender.close()
        listener.close()
    assert heard == [("pause", "report")]
