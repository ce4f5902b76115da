"""The state store under faults: a crash mid-run, a locked or deleted database, a full disk."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from jobtui import Run, Scheduler, VirtualClock
from jobtui.config import load
from jobtui.console.app import JobtuiApp
from jobtui.console.widgets.job_table import JobTable
from jobtui.host import open_store
from jobtui.store import Store, read_runs, writer

from .conftest import START, Recorder
from .test_cli import Headless, write
from .test_store import RefusingBackend


async def noop(run: Run) -> None:
    return None


def kill_mid_run(config) -> None:
    """Start `jobtui --headless`, wait until the job's run is going, SIGKILL jobtui."""
    first = Headless(config)
    try:
        first.wait_for(lambda ev: any(e["event"] == "run_started" for e in ev))
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()


async def test_a_run_left_by_a_killed_jobtui_shows_as_abandoned_in_the_table(tmp_path):
    config = write(
        tmp_path / "jobs.toml",
        """
        [jobs.dump]
        command = "sleep 300"
        every = "1h"
        run_immediately = true
        """,
    )
    kill_mid_run(config)
    loaded = load(config)
    app = JobtuiApp(loaded, store=open_store(loaded), watch_file=False, grace=0)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        row = " ".join(app.screen.query_one(JobTable).rows_text()["dump"])
        assert "☠" in row and "↷" not in row  # abandoned, not skipped
        # The killed run's occurrence fired already: it does not come round again.
        assert app.scheduler.get("dump").active == []


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


@contextlib.contextmanager
def locked(db) -> Iterator[None]:
    """Another process holds the database's write lock (as a sqlite3 shell mid-transaction)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


async def test_a_locked_database_makes_no_run_late_and_loses_no_record(tmp_path, clock):
    db = tmp_path / "state.db"
    store = Store.open(db)  # the production busy timeout, not a test's short one
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)
    scheduler.add_job(noop, every="1s", id="j")
    store.start()
    async with scheduler:
        await clock.advance(0)
        await asyncio.to_thread(store.flush)
        with locked(db):
            for _ in range(5):
                began = time.monotonic()
                # The clock waits for the run's claim: real seconds here are how late it is.
                await clock.advance(1)
                assert time.monotonic() - began < 0.75
            assert "database is locked" in store.status
        await recorder.wait_for(lambda: not store.status)
    await asyncio.to_thread(store.close)
    assert recorder.skipped("j") == []
    assert len(recorder.started("j")) == 5
    assert [r["outcome"] for r in read_runs(db, job="j")] == ["succeeded"] * 5


class UnheldClock(VirtualClock):
    """Moves on without waiting for a store's claims: a store slower than the schedule."""

    def hold(self, future) -> None:
        pass


class SlowStore:
    """Claims that the store has not recorded yet (they never are)."""

    def claim(self, run):
        return asyncio.get_running_loop().create_future()

    def record(self, event) -> None:
        pass

    def save_job(self, job_id, snapshot) -> None:
        pass


async def test_an_occurrence_skipped_behind_an_unrecorded_claim_says_so():
    clock = UnheldClock(START)
    scheduler = Scheduler(timezone="UTC", clock=clock, store=SlowStore(), stop_grace=0)
    recorder = Recorder(scheduler)
    scheduler.add_job(noop, every="1s", id="j")
    async with scheduler:
        await clock.advance(2)
    reasons = [run.reason for run in recorder.skipped("j")]
    assert reasons and all(
        r.startswith("waiting for the state store to record its claim: run ") for r in reasons
    )


def test_a_run_let_go_while_the_database_was_locked_does_not_run_again_after_a_crash(tmp_path):
    config = write(
        tmp_path / "jobs.toml",
        """
        [jobs.tick]
        command = "sleep 0.3"
        every = "1s"
        run_immediately = true
        catchup = "all"
        """,
    )
    db = tmp_path / ".jobtui" / "state.db"
    first = Headless(config)
    try:
        first.wait_for(lambda ev: len([e for e in ev if e["event"] == "run_finished"]) >= 1)
        with locked(db):
            seen = len(first.events())
            events = first.wait_for(lambda ev: any(e["event"] == "run_started" for e in ev[seen:]))
            (let_go,) = [e for e in events[seen:] if e["event"] == "run_started"]
            first.proc.send_signal(signal.SIGKILL)  # before the database took its claim
            first.proc.wait(timeout=10)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()

    second = Headless(config)
    try:
        # catchup = "all" would run every occurrence since the last one recorded
        second.wait_for(lambda ev: len([e for e in ev if e["event"] == "run_finished"]) >= 2)
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=30) == 0
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    again = [
        e
        for e in second.events()
        if e["event"] == "run_started" and e["scheduled_for"] == let_go["scheduled_for"]
    ]
    assert again == []  # at most once, though the database was locked when it started
    (abandoned,) = [e for e in second.events() if e["event"] == "run_abandoned"]
    assert abandoned["run"] == let_go["run"]


async def test_closing_with_the_disk_still_full_says_how_many_records_are_lost_and_whose(
    tmp_path, clock, monkeypatch
):
    monkeypatch.setattr(writer, "CLOSE_RETRIES_FOR", 0.2)
    store = Store.open(tmp_path / "state.db")
    RefusingBackend(store, "database or disk is full")
    statuses: list[str] = []
    store.on_status = statuses.append
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)
    scheduler.add_job(noop, every="1m", id="backup")
    scheduler.add_job(noop, every="1h", id="report")
    store.start()
    async with scheduler:
        await clock.advance(60)
        await recorder.wait_for(lambda: recorder.finished("backup") and store.status)
    await asyncio.to_thread(store.close)
    await asyncio.sleep(0)  # the status reaches its listener on the loop
    last = statuses[-1]
    assert "wait in memory" not in last
    assert re.search(r"closed with \d+ records lost \(jobs: backup, report\)", last)
    assert "database or disk is full" in last
