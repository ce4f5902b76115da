"""The state store under faults: a crash mid-run, a locked or deleted database, a full disk."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtui import Run, Scheduler, VirtualClock
from jobtui.config import load
from jobtui.console.app import JobtuiApp
from jobtui.console.widgets.job_table import JobTable
from jobtui.host import open_store
from jobtui.store import Store, StoreError, read_runs, writer
from jobtui.store.writes import Kind, StoreUnavailable, Write

from .conftest import START, Recorder
from .test_cli import Headless, jobtui, write
from .test_store import RefusingBackend
from .test_store_batches import BlockingBackend


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


def minutely_job_on_a_store(tmp_path, clock) -> tuple[Path, Store, list[str], Scheduler, Recorder]:
    """Job "j" every minute on a started store in a folder of its own (so that a test can
    delete the folder), with every status the store reported."""
    db = tmp_path / "state" / "state.db"
    store = Store.open(db)
    statuses: list[str] = []
    store.on_status = statuses.append
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)
    scheduler.add_job(noop, every="1m", id="j")
    store.start()
    return db, store, statuses, scheduler, recorder


async def runs_across_a_deletion(tmp_path, clock, delete) -> tuple[Store, list[str]]:
    """Two runs, ``delete(db)`` while jobtui runs, two more runs; the store still open."""
    db, store, statuses, scheduler, recorder = minutely_job_on_a_store(tmp_path, clock)
    async with scheduler:
        await clock.advance(120)
        await asyncio.to_thread(store.flush)
        delete(db)
        await clock.advance(120)
        await recorder.wait_for(lambda: len(recorder.finished("j")) == 4 and store.status)
        await asyncio.to_thread(store.flush)
    return store, statuses


@pytest.mark.parametrize(
    "delete",
    [
        lambda db: db.unlink(),
        lambda db: shutil.rmtree(db.parent),  # the lock file goes too
    ],
    ids=["the-file", "its-folder"],
)
async def test_a_deleted_database_is_written_again_with_everything(
    tmp_path, clock, delete, monkeypatch
):
    monkeypatch.setattr(writer, "CHECK_EVERY", 0.1)  # looks at the file more often than 2 s
    store, statuses = await runs_across_a_deletion(tmp_path, clock, delete)
    try:
        assert any("was deleted while jobtui ran; it was written again" in s for s in statuses)
        runs = read_runs(store.path, job="j")
        assert [r["outcome"] for r in runs] == ["succeeded"] * 4  # before and after
        with pytest.raises(StoreError, match="another jobtui"):
            Store.open(store.path)  # still owned, under the lock at the path now
    finally:
        await asyncio.to_thread(store.close)


async def test_a_database_taken_over_while_gone_is_left_alone_and_runs_nothing(
    tmp_path, clock, monkeypatch
):
    monkeypatch.setattr(writer, "CHECK_EVERY", 0.1)
    taken: list[int] = []

    def delete_and_take_over(db) -> None:
        shutil.rmtree(db.parent)
        db.parent.mkdir()
        fd = os.open(db.with_name(db.name + ".lock"), os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a second jobtui started meanwhile does
        taken.append(fd)

    db, store, _, scheduler, recorder = minutely_job_on_a_store(tmp_path, clock)
    try:
        async with scheduler:
            await clock.advance(60)
            await asyncio.to_thread(store.flush)
            delete_and_take_over(db)
            await recorder.wait_for(lambda: "another jobtui" in store.status)
            await clock.advance(120)
        assert len(recorder.started("j")) == 1  # the other owns the occurrences now
        assert not db.exists()  # nothing written where the other jobtui keeps its state
    finally:
        await asyncio.to_thread(store.close)
        os.close(taken[0])


def test_headless_writes_a_deleted_database_again_and_history_has_the_runs_after(tmp_path):
    config = write(
        tmp_path / "jobs.toml",
        """
        [jobs.tick]
        command = "true"
        every = "1s"
        """,
    )
    db = tmp_path / ".jobtui" / "state.db"
    headless = Headless(config)
    try:
        headless.wait_for(lambda ev: len([e for e in ev if e["event"] == "run_finished"]) >= 1)
        for path in tmp_path.glob(".jobtui/state.db*"):
            path.unlink()  # rm .jobtui/state.db*
        seen = len(headless.events())
        events = headless.wait_for(
            lambda ev: (
                len([e for e in ev[seen:] if e["event"] == "run_finished"]) >= 2
                and any("was deleted" in e.get("status", "") for e in ev)
            )
        )
        after = {e["run"] for e in events[seen:] if e["event"] == "run_finished"}
        headless.proc.send_signal(signal.SIGTERM)
        assert headless.proc.wait(timeout=30) == 0
    finally:
        if headless.proc.poll() is None:
            headless.proc.kill()
    done = jobtui("history", str(config), "--json", "--limit", "100")
    recorded = {r["run_id"] for r in json.loads(done.stdout)}
    assert after <= recorded
    assert db.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("planted", ["another user's file", "a symlink"])
def test_a_claims_journal_someone_else_put_beside_the_database_is_not_read(tmp_path, planted):
    # In a shared folder (state = "/tmp/..."), anyone can put a journal there: its claims
    # would mark occurrences as run, and they would never run.
    db = tmp_path / "state.db"
    Store.open(db).close()
    journal = tmp_path / "state.db.claims"
    claim = json.dumps(["r-planted", "tick", 1_000_000.0, 1_000_000.0]) + "\n"
    if planted == "a symlink":
        (tmp_path / "elsewhere").write_text(claim)
        journal.symlink_to(tmp_path / "elsewhere")
    else:
        journal.write_text(claim)
        os.chown(journal, 65534, 65534)
    with pytest.raises(StoreError, match=r"claims journal .*state\.db\.claims.*not this user"):
        Store.open(db)
    assert read_runs(db) == [] and journal.is_symlink() == (planted == "a symlink")


class RetentionFails(BlockingBackend):
    """A shared backend (as PostgreSQL's) whose writes go in and whose retention fails, as a
    statement timeout on a big DELETE does."""

    shared = True

    def __init__(self) -> None:
        super().__init__()
        self.go.set()
        self.prunes = 0

    def prune(self) -> None:
        self.prunes += 1
        raise StoreUnavailable("canceling statement due to statement timeout")


async def test_retention_failing_after_a_batch_went_in_neither_refuses_its_claims_nor_rewrites_it(
    monkeypatch,
):
    """The batch committed: its claims are this host's, and its runs must go ahead (a refused
    claim whose row went in left the occurrence run nowhere, its row open for good)."""
    monkeypatch.setattr(writer, "PRUNE_EVERY", 0.0)
    backend = RetentionFails()
    batch_writer = writer.BatchWriter(backend, max_buffer=1000)
    loop = asyncio.get_running_loop()
    batch_writer.start(loop)
    try:
        claimed: asyncio.Future[bool] = loop.create_future()
        batch_writer.push(Write(Kind.CLAIM, ("run1", "job", 1.0, 1.0), claimed, job_id="job"))
        assert await asyncio.wait_for(claimed, 10) is True
        batch_writer.push(Write(Kind.JOB_EVENT, ("job", 2.0, "finished", ""), job_id="job"))
        assert await asyncio.to_thread(batch_writer.flush, 10)
        assert backend.prunes >= 1
        assert [w.kind for w in backend.written] == [Kind.CLAIM, Kind.JOB_EVENT]  # once each
        assert batch_writer.status == ""
    finally:
        await asyncio.to_thread(batch_writer.close)
