"""The state store: claims before runs, restarts, abandoned runs, one owner, faults, retention."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
from datetime import timedelta

import pytest

from jobtui import Outcome, Run, RunFinished, Scheduler, VirtualClock
from jobtui.store import Store, StoreError, read_runs
from jobtui.store.schema import VERSION
from jobtui.store.writes import StoreUnavailable

from .conftest import START, Recorder


async def noop(run: Run) -> None:
    return None


async def session(stores, clock, setup, *, seconds=0.0, fingerprints=None, before_stop=None):
    """One life of a process: open the store, restore, run for ``seconds``, stop, close."""
    store = stores.open()
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store, stop_grace=0)
    setup(scheduler)
    store.restore(scheduler, fingerprints or {})
    recorder = Recorder(scheduler)
    store.start()
    await scheduler.start()
    await clock.advance(0)
    await asyncio.to_thread(store.flush)
    await clock.advance(seconds)
    await asyncio.to_thread(store.flush)
    if before_stop:
        await before_stop(scheduler, store)
    await scheduler.stop(0)
    await asyncio.to_thread(store.close)
    return recorder, store


class RefusingBackend:
    """Stands between the store's writer and its backend, refusing writes (as a full disk or
    a read-only folder does) until told to stop: faults go through the backend interface."""

    def __init__(self, store: Store, message: str) -> None:
        self.backend = store.writer.backend
        self.error: Exception = StoreUnavailable(message)
        self.refusing = True
        store.writer.backend = self

    def write(self, batch):
        if self.refusing:
            raise self.error
        return self.backend.write(batch)

    def prune(self):
        if self.refusing:
            raise self.error
        self.backend.prune()

    def journal(self, claims):
        self.backend.journal(claims)

    def check(self):
        return self.backend.check()


def runs_of(db, job=None):
    return sorted(read_runs(db, job=job, limit=10_000), key=lambda r: r["scheduled_for"])


async def test_runs_and_their_records_are_written(stores, clock):

    async def fails(run: Run) -> None:
        run.status_message = "about to fail"
        raise ValueError("bad row 7")

    def setup(s):
        s.add_job(noop, every="1m", id="ok")
        s.add_job(fails, every="1m", id="bad")

    await session(stores, clock, setup, seconds=60)
    rows = {r["job_id"]: r for r in stores.runs()}
    assert rows["ok"]["outcome"] == "succeeded" and rows["ok"]["duration"] == 0.0
    assert rows["ok"]["scheduled_for"] == (START + timedelta(minutes=1)).isoformat()
    assert rows["bad"]["outcome"] == "failed"
    assert rows["bad"]["error_type"] == "ValueError" and rows["bad"]["error_message"] == "bad row 7"
    assert rows["bad"]["status_message"] == "about to fail"


async def test_a_runs_record_holds_what_it_ended_with_not_what_it_cleared(stores, clock):
    """Most runs succeed with nothing more to say, and their record is written short
    (Kind.SUCCEEDED); it must still say no progress and no status message when the run set
    them, had them written, and cleared them before it ended."""
    release = asyncio.Event()

    async def cleared(run: Run) -> None:
        run.progress, run.status_message = 0.5, "half way"
        await release.wait()
        run.progress, run.status_message = None, ""

    def setup(s):
        s.add_job(noop, every="1m", id="plain")
        s.add_job(cleared, every="1m", id="cleared")

    async def before_stop(scheduler: Scheduler, store: Store) -> None:
        (going,) = stores.runs("cleared")
        assert (going["progress"], going["status_message"]) == (0.5, "half way")
        finished = asyncio.get_running_loop().create_future()

        def on_event(event: object) -> None:
            if isinstance(event, RunFinished) and not finished.done():
                finished.set_result(None)

        scheduler.subscribe(on_event)
        release.set()
        await finished
        await asyncio.to_thread(store.flush)

    await session(stores, clock, setup, seconds=60, before_stop=before_stop)
    rows = {r["job_id"]: r for r in stores.runs()}
    for job in ("plain", "cleared"):
        record = rows[job]
        assert record["outcome"] == "succeeded", job
        assert (record["progress"], record["status_message"]) == (None, ""), job
        assert (record["error_type"], record["exit_code"], record["signal"]) == (None, None, None)
        assert record["started_at"] is not None and record["finished_at"] is not None


async def test_an_occurrence_runs_at_most_once_across_restarts_and_clock_steps(stores):
    ran = []

    async def body(run: Run) -> None:
        ran.append(run.scheduled_for)

    def setup(s):
        s.add_job(body, cron="*/10 * * * *", id="cron")

    clock = VirtualClock(START)
    await session(stores, clock, setup, seconds=3600)
    assert len(ran) == 6
    # The machine's clock is set back an hour and jobtui restarts: the repeated hour must not
    # run anything again, even though this process never saw those runs.
    clock = VirtualClock(START)
    await session(stores, clock, setup, seconds=3600)
    assert len(ran) == 6
    clock = VirtualClock(START + timedelta(hours=1))
    await session(stores, clock, setup, seconds=3600)
    assert len(ran) == 12 and len(set(ran)) == 12
    rows = stores.runs("cron")
    assert len(rows) == len({r["scheduled_for"] for r in rows}) == 12


async def test_claims_are_refused_for_an_occurrence_already_recorded(stores, clock):
    store = stores.open()
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)
    scheduler.add_job(noop, every="1m", id="j")
    store.start()
    # as if another process had run 12:01 already
    stores.insert_finished(
        "elsewhere", "j", (START + timedelta(minutes=1)).timestamp(), "succeeded"
    )
    async with scheduler:
        await clock.advance(60)
        await recorder.wait_for(lambda: recorder.finished("j"))
    (run,) = recorder.finished("j")
    assert run.outcome is Outcome.SKIPPED and "already ran" in run.reason
    await asyncio.to_thread(store.close)


async def test_paused_and_disabled_jobs_stay_so_after_a_restart(stores, clock):

    async def broken() -> None:
        raise OSError("unreachable")

    def setup(s):
        s.add_job(noop, every="1m", id="paused")
        s.add_job(broken, every="1m", id="broken", max_failures=2)

    async def pause(scheduler, store):
        scheduler.pause("paused", reason="maintenance window")
        await clock.advance(0)
        await asyncio.to_thread(store.flush)

    await session(stores, clock, setup, seconds=180, before_stop=pause)
    store = stores.open()
    scheduler = Scheduler(timezone="UTC", clock=clock)
    setup(scheduler)
    store.restore(scheduler, {})
    store.close()
    assert scheduler.get("paused").state.value == "paused"
    assert scheduler.get("paused").pause_reason == "maintenance window"
    assert scheduler.get("broken").state.value == "disabled"
    assert scheduler.get("broken").disabled_reason.startswith("2 consecutive failures")


@pytest.mark.parametrize(
    ("catchup", "ran", "missed"), [("latest", 1, 2), ("all", 3, 0), ("none", 0, 3)]
)
async def test_downtime_goes_through_catchup_and_records_misses(stores, catchup, ran, missed):

    def setup(s):
        s.add_job(noop, cron="0 * * * *", id="hourly", catchup=catchup)

    await session(stores, VirtualClock(START), setup, seconds=3600 + 60)  # runs 13:00
    # down from 13:01 until 16:30: 14:00, 15:00 and 16:00 fell due while jobtui was down
    later = VirtualClock(START + timedelta(hours=4, minutes=30))
    recorder, _ = await session(stores, later, setup)
    assert len(recorder.finished("hourly")) == ran
    assert len(recorder.missed("hourly")) == missed
    rows = stores.runs("hourly")
    assert [r["scheduled_for"][11:16] for r in rows] == ["13:00", "14:00", "15:00", "16:00"]


async def test_a_changed_job_keeps_history_but_does_not_catch_up(stores):

    def setup(s):
        s.add_job(noop, cron="0 * * * *", id="hourly")

    await session(
        stores, VirtualClock(START), setup, seconds=3600 + 60, fingerprints={"hourly": "v1"}
    )
    recorder, _ = await session(
        stores,
        VirtualClock(START + timedelta(hours=4, minutes=30)),
        setup,
        fingerprints={"hourly": "v2"},
    )
    assert recorder.finished("hourly") == [] and recorder.missed("hourly") == []
    assert len(stores.runs("hourly")) == 1


async def test_a_job_reloaded_with_a_new_definition_is_kept_under_it(stores):
    # A reload while running tells the store the job's new fingerprint: its row is written
    # again with it, so the next start knows the job as it is now and catches it up.
    def setup(s):
        s.add_job(noop, cron="0 * * * *", id="hourly")

    async def reload_changed_it(scheduler, store):
        store.set_fingerprint("hourly", "v2")
        await asyncio.to_thread(store.flush)

    await session(
        stores,
        VirtualClock(START),
        setup,
        seconds=3600 + 60,
        fingerprints={"hourly": "v1"},
        before_stop=reload_changed_it,
    )
    recorder, _ = await session(
        stores,
        VirtualClock(START + timedelta(hours=4, minutes=30)),
        setup,
        fingerprints={"hourly": "v2"},
    )
    # Its own, unchanged: the two hours it was down are missed, the latest runs (catch-up).
    assert [r.scheduled_ts for r in recorder.missed("hourly")] == [
        (START + timedelta(hours=h)).timestamp() for h in (2, 3)
    ]
    assert [r.scheduled_ts for r in recorder.finished("hourly")] == [
        (START + timedelta(hours=4)).timestamp()
    ]


async def test_sessions_and_job_notes_are_kept_for_why(stores, clock):
    """What `jobtui why` reads besides the runs: when jobtui was up, the job's notes (pauses,
    a failed hook) newest first, and its kept state."""

    def setup(scheduler):
        scheduler.add_job(noop, every="10m", id="tick")

    async def pause_and_note(scheduler, store):
        scheduler.pause("tick", reason="paused from the console")
        store.note_job_event("tick", "hook_failed", "on_failure: webhook answered 500")
        await asyncio.to_thread(store.flush)

    await session(stores, clock, setup, seconds=60, before_stop=pause_and_note)
    first_stop = clock.now().timestamp()
    await clock.advance(3600)  # down for an hour
    await session(stores, clock, setup, seconds=60)

    context = stores.context("tick")
    sessions = context["sessions"]
    assert [(s["started_at"], s["stopped_at"]) for s in sessions] == [
        (first_stop + 3600, first_stop + 3660),
        (first_stop - 60, first_stop),
    ]
    assert all(s["last_seen"] == s["stopped_at"] for s in sessions)
    assert [(e["kind"], e["detail"]) for e in context["events"]] == [
        ("hook_failed", "on_failure: webhook answered 500"),
        ("paused", "paused from the console"),
    ]
    assert context["job"]["paused"] and context["job"]["pause_reason"] == "paused from the console"
    assert stores.context("never-saved") == {**context, "events": [], "job": None}


def test_one_owner_per_state_file(tmp_path):
    db = tmp_path / "state.db"
    first = Store.open(db)
    try:
        with pytest.raises(StoreError, match=rf"another jobtui \(pid {os.getpid()}\) owns {db}"):
            Store.open(db)
        assert read_runs(db) == []  # readers need no lock
    finally:
        first.close()
    Store.open(db).close()  # free again


def test_a_corrupt_database_is_refused_with_what_to_do(tmp_path):
    db = tmp_path / "state.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as info:
        Store.open(db)
    assert "is damaged" in str(info.value)
    assert f"mv {db} {db}.corrupt" in str(info.value)
    assert db.read_bytes().startswith(b"this is not a database")  # never recreated silently


def test_schema_carries_a_version_and_a_newer_one_is_refused(tmp_path):
    db = tmp_path / "state.db"
    Store.open(db).close()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == VERSION
    conn.execute(f"PRAGMA user_version = {VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer than this jobtui understands"):
        Store.open(db)


async def test_a_locked_database_buffers_and_writes_later(tmp_path, clock):
    db = tmp_path / "state.db"
    Store.open(db).close()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    store = Store.open(db, busy_timeout=0.05)
    statuses = []
    store.on_status = statuses.append
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)
    scheduler.add_job(noop, every="1m", id="j")
    store.start()
    async with scheduler:
        await recorder.wait_for(lambda: store.status)
        await clock.advance(180)  # scheduling goes on meanwhile
        await recorder.wait_for(lambda: len(recorder.finished("j")) == 3)
        assert "cannot write the state database (database is locked)" in statuses[0]
        blocker.execute("ROLLBACK")
        await recorder.wait_for(lambda: not store.status)
    await asyncio.to_thread(store.close)
    assert [r["outcome"] for r in runs_of(db, "j")] == ["succeeded"] * 3


def test_retention_keeps_the_newest_runs(tmp_path):
    db = tmp_path / "state.db"
    Store.open(db).close()
    with sqlite3.connect(db) as conn:  # ten runs from an earlier life, kept without a limit
        for n in range(10):
            conn.execute(
                "INSERT INTO runs (run_id, job_id, scheduled_for, finished_at, outcome) "
                "VALUES (?, 'j', ?, ?, 'succeeded')",
                (f"r{n}", 1000.0 + n, 1000.0 + n),
            )
    Store.open(db, keep_runs=3).close()  # the limit applies from the start
    assert [r["run_id"] for r in read_runs(db)] == ["r9", "r8", "r7"]


async def test_an_unfinished_run_is_abandoned_and_its_process_group_killed(tmp_path, clock):
    db = tmp_path / "state.db"
    orphan = subprocess.Popen(["sleep", "300"], start_new_session=True)
    with open(f"/proc/{orphan.pid}/stat") as stat:
        start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    Store.open(db).close()
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO runs (run_id, job_id, scheduled_for, manual, started_at, pid, pid_start) "
        "VALUES ('r1', 'dump', 100.0, 0, 101.0, ?, ?)",
        (orphan.pid, start_ticks),
    )
    conn.commit()
    conn.close()
    store = Store.open(db)
    store.close()
    assert orphan.wait(timeout=10) == -9  # killed, not left behind
    (run,) = read_runs(db)
    assert run["outcome"] == "abandoned" and run["detected_at"] is not None
    assert "was still running and was killed" in run["reason"]
    assert store.abandoned[0]["job_id"] == "dump"


async def test_a_full_disk_keeps_scheduling_and_writes_when_there_is_room(tmp_path, clock):
    db = tmp_path / "state.db"
    store = Store.open(db)
    disk = RefusingBackend(store, "database or disk is full")  # SQLite's own words
    statuses = []
    store.on_status = statuses.append
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)

    async def chatty(run: Run) -> None:
        run.log("x" * 50_000)

    scheduler.add_job(chatty, every="1m", id="j")
    store.start()
    async with scheduler:
        await clock.advance(180)
        await recorder.wait_for(lambda: len(recorder.finished("j")) == 3 and store.status)
        assert "database or disk is full" in store.status
        disk.refusing = False  # room again
        await recorder.wait_for(lambda: not store.status)
    await asyncio.to_thread(store.close)
    assert [r["outcome"] for r in runs_of(db, "j")] == ["succeeded"] * 3
    assert statuses[-1] == ""


async def two_runs_while_refused(tmp_path, clock, error: Exception) -> tuple[str, list]:
    """Two scheduled runs while the backend refuses writes with ``error``, then writing
    again: the status seen meanwhile, and the outcomes recorded in the end."""
    db = tmp_path / "state.db"
    store = Store.open(db)
    backend = RefusingBackend(store, "")
    backend.error = error
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)
    scheduler.add_job(noop, every="1m", id="j")
    store.start()
    async with scheduler:
        await clock.advance(120)
        await recorder.wait_for(lambda: len(recorder.finished("j")) == 2 and store.status)
        status = store.status
        backend.refusing = False
        await recorder.wait_for(lambda: not store.status)
    await asyncio.to_thread(store.close)
    return status, [r["outcome"] for r in runs_of(db, "j")]


async def test_a_read_only_database_keeps_scheduling_and_catches_up_later(tmp_path, clock):
    # SQLite's words for a read-only folder
    refused = StoreUnavailable("attempt to write a readonly database")
    status, outcomes = await two_runs_while_refused(tmp_path, clock, refused)
    assert "readonly" in status or "read-only" in status
    assert outcomes == ["succeeded"] * 2


async def test_a_backend_bug_does_not_stop_the_writer(tmp_path, clock):
    # Not the backend saying "not now" but an error nobody expected: the writer thread must
    # live on, say so, and write everything once the backend works again.
    bug = KeyError("a statement the backend does not know")
    status, outcomes = await two_runs_while_refused(tmp_path, clock, bug)
    assert "a statement the backend does not know" in status
    assert outcomes == ["succeeded"] * 2
