"""The store's hot paths (issue 14): big batches are written as one write at a time would be,
the loop never waits on the writer thread's lock, claims are answered a slice per loop turn,
and a claim nobody answers still lets its run go ahead in time."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from jobtui import Scheduler, VirtualClock
from jobtui.store import Store, read_runs, sqlrows
from jobtui.store import writer as writer_module
from jobtui.store.claimwait import ClaimDeadlines
from jobtui.store.sqlite import SQLiteBackend
from jobtui.store.sqlitesql import WARMED
from jobtui.store.writer import ANSWER_SLICE, BatchWriter
from jobtui.store.writes import Kind, StoreUnavailable, Write

from .conftest import START


def backend(tmp_path: Path) -> SQLiteBackend:
    return SQLiteBackend(tmp_path / "state.db", keep_runs=None, keep_days=None)


def claim(n: int, job: str = "", at: float = 1000.0) -> Write:
    return Write(Kind.CLAIM, (f"run{n:06d}", job or f"job{n}", at + n, at), job_id=job)


def save(job: str, run_count: int) -> Write:
    """A job's saved state (its run count; the rest as a new job's)."""
    row = (job, 0, "", "", 0, run_count, None, None, None, 0, "", 1.0)
    return Write(Kind.SAVE_JOB, row, job_id=job)


def finish(n: int, outcome: str = "succeeded", output: str | None = None) -> Write:
    params = (2000.0 + n, outcome, "", 1, 1.0, "", None, None, None, 0, None, output, 0)
    return Write(Kind.FINISH, (*params, None, f"run{n:06d}"))


def test_thousands_of_claims_in_one_batch_are_each_answered_as_one_alone_would_be(tmp_path):
    db = backend(tmp_path)
    try:
        # Another process ran every third occurrence already (its rows are there).
        db.write([claim(n) for n in range(0, 3000, 3)])
        retried = [
            Write(Kind.CLAIM, (f"again{n:06d}", f"job{n}", 1000.0 + n, 1000.0)) for n in range(3000)
        ]
        answers = db.write(retried)
        assert [claimed for _, claimed in answers] == [n % 3 != 0 for n in range(3000)]
        # None of them refused: the quick answer (every row went in) holds for all of them.
        fresh = db.write([claim(n, at=9000.0) for n in range(3000)])
        assert all(claimed for _, claimed in fresh) and len(fresh) == 3000
    finally:
        db.close()


def test_a_big_batch_of_results_lands_on_each_run_and_nothing_else(tmp_path):
    db = backend(tmp_path)
    try:
        db.write([claim(n) for n in range(2500)])
        # Odd sizes on purpose: the rows go in statements of 1024, 512, ... rows.
        db.write(
            [finish(n, "failed" if n % 7 == 0 else "succeeded", f"out {n}") for n in range(2345)]
        )
    finally:
        db.close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        runs = {
            run_id: (outcome, output, finished_at)
            for run_id, outcome, output, finished_at in conn.execute(
                "SELECT run_id, outcome, output, finished_at FROM runs"
            )
        }
    conn.close()
    assert runs["run000007"] == ("failed", "out 7", 2007.0)
    assert runs["run002344"] == ("succeeded", "out 2344", 4344.0)
    assert runs["run002345"] == (None, None, None)  # never finished: untouched
    assert sum(outcome == "failed" for outcome, _, _ in runs.values()) == len(range(0, 2345, 7))


def test_what_a_big_batch_leaves_unset_is_null_and_keeps_what_the_row_had(tmp_path):
    """Many-row statements bind a None as NaN (quicker; sqlite3.py's hot path): it must read
    back as NULL, as one row alone would, and coalesce() must keep what the row had."""
    db = backend(tmp_path)
    try:
        db.write([claim(n) for n in range(600)])
        db.write(
            [Write(Kind.PROGRESS, (0.5, "", 1, 4000 + n, 70, f"run{n:06d}")) for n in range(600)]
        )
        # No error, no output, no exit code, no start time (the row keeps the claim's), and
        # no pid in this progress (the row keeps the earlier one).
        db.write([finish(n) for n in range(0, 600, 2)])
        db.write(
            [
                Write(Kind.PROGRESS, (0.7, "", 1, None, None, f"run{n:06d}"))
                for n in range(1, 600, 2)
            ]
        )
    finally:
        db.close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        finished = conn.execute(
            "SELECT typeof(error_type), typeof(error_message), typeof(error_traceback), "
            "typeof(signal), typeof(output), started_at, count(*) FROM runs "
            "WHERE outcome IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
        ).fetchall()
        going = conn.execute(
            "SELECT count(*) FROM runs WHERE outcome IS NULL AND progress = 0.7 "
            "AND pid = 4000 + CAST(substr(run_id, 4) AS INTEGER) AND pid_start = 70"
        ).fetchone()[0]
    conn.close()
    assert finished == [("null", "null", "null", "null", "null", 1000.0, 300)]
    assert going == 300
    (record,) = read_runs(tmp_path / "state.db", job="job0")
    assert (record["outcome"], record["error_type"], record["signal"]) == ("succeeded", None, None)


def test_progress_twice_for_a_run_in_one_batch_keeps_the_later_and_the_pid(tmp_path):
    db = backend(tmp_path)
    try:
        db.write([claim(1), claim(2)])
        db.write(
            [
                Write(Kind.PROGRESS, (0.1, "starting", 1, 4242, 77, "run000001")),
                Write(Kind.PROGRESS, (0.5, "half", 1, 5151, 88, "run000002")),
                Write(Kind.PROGRESS, (0.9, "nearly", 1, None, None, "run000001")),
            ]
        )
    finally:
        db.close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        rows = dict(
            (run_id, rest)
            for run_id, *rest in conn.execute(
                "SELECT run_id, progress, status_message, pid, pid_start FROM runs"
            )
        )
    conn.close()
    assert rows["run000001"] == [0.9, "nearly", 4242, 77]
    assert rows["run000002"] == [0.5, "half", 5151, 88]


def test_a_manual_run_started_and_finished_after_another_runs_result_keeps_its_result(
    tmp_path,
):
    """A batch holds what came while the last one was written: here one run's result, then a
    manual run's start and its result. The manual run's row must be there for its result."""
    failed = (1501.0, "failed", "", 1, None, "", "E", "boom", None, 3, None, "out", 0)
    db = backend(tmp_path)
    try:
        db.write([claim(1)])
        db.write(
            [
                finish(1),
                Write(Kind.MANUAL_RUN, ("manual01", "job9", 1500.0, 1, 1500.0), job_id="job9"),
                Write(Kind.FINISH, (*failed, 1500.0, "manual01")),
            ]
        )
    finally:
        db.close()
    (record,) = read_runs(tmp_path / "state.db", job="job9")
    assert (record["outcome"], record["error_message"], record["exit_code"]) == (
        "failed",
        "boom",
        3,
    )
    assert record["finished_at"] == "1970-01-01T00:25:01+00:00"


def test_a_runs_progress_and_its_result_in_one_batch_leave_the_result(tmp_path):
    """Another run's result first in the batch must not put this run's result before its
    progress: the row ends with what the run finished with."""
    db = backend(tmp_path)
    try:
        db.write([claim(1), claim(2)])
        db.write(
            [
                finish(2),
                Write(Kind.PROGRESS, (0.5, "half way", 1, None, None, "run000001")),
                finish(1),  # progress 1.0, no status message
            ]
        )
    finally:
        db.close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        row = conn.execute(
            "SELECT outcome, progress, status_message FROM runs WHERE run_id = 'run000001'"
        ).fetchone()
    conn.close()
    assert row == ("succeeded", 1.0, "")


def test_a_plain_success_in_its_short_row_is_recorded_as_its_whole_result_would_be(tmp_path):
    """Kind.SUCCEEDED leaves out the values that are always the same for a run that succeeded
    with nothing more to say; the row must end as FINISH with those values leaves it, over
    earlier progress too, in a statement of many rows and of one."""
    db = backend(tmp_path)
    plain = (2500.0, "succeeded", "", 2, None, "", None, None, None, None, None, None, 0)
    try:
        for count in (300, 1):
            short, whole = range(0, 2 * count, 2), range(1, 2 * count, 2)
            db.write([claim(n) for n in range(2 * count)])
            db.write(
                [
                    Write(Kind.PROGRESS, (0.5, "half", 1, 77, 8, f"run{n:06d}"))
                    for n in range(2 * count)
                ]
            )
            db.write([Write(Kind.SUCCEEDED, (2500.0, 2, 1900.0, f"run{n:06d}")) for n in short])
            db.write([Write(Kind.FINISH, (*plain, 1900.0, f"run{n:06d}")) for n in whole])
            with sqlite3.connect(tmp_path / "state.db") as conn:
                conn.row_factory = sqlite3.Row
                rows = [dict(row) for row in conn.execute("SELECT * FROM runs ORDER BY run_id")]
            conn.close()
            for row in rows:
                del row["run_id"], row["job_id"], row["scheduled_for"]
            assert rows[0]["outcome"] == "succeeded" and rows[0]["progress"] is None
            assert rows[0]["pid"] == 77  # what the result does not speak of is kept
            assert all(row == rows[0] for row in rows)
            with sqlite3.connect(tmp_path / "state.db") as conn:
                conn.execute("DELETE FROM runs")
            conn.close()
    finally:
        db.close()


def test_a_job_saved_twice_in_one_batch_keeps_the_later_state(tmp_path):
    db = backend(tmp_path)
    try:
        db.write([save("j", n) for n in range(1, 1500)])
        assert [row["run_count"] for row in db.load_jobs()] == [1499]
    finally:
        db.close()


def test_many_saves_of_a_job_in_one_batch_write_its_row_once(tmp_path):
    """Only a job's latest state matters: a burst of saves of one job (the writes that waited
    while the database was locked) costs the database one row's work, not one each."""
    db = backend(tmp_path)
    try:
        before = db._conn.total_changes
        db.write([save("a", 1), save("b", 1)] + [save("a", n) for n in range(2, 1000)])
        assert db._conn.total_changes - before == 2  # one row for each job
        assert {row["job_id"]: row["run_count"] for row in db.load_jobs()} == {"a": 999, "b": 1}
    finally:
        db.close()


def test_a_batch_of_saves_and_notes_of_many_jobs_writes_each_once_and_nothing_else(tmp_path):
    """Counts that are no power of two: the rows go in a statement of a multiple of 256 rows and
    one of a power of two with rows of NULLs after them, which must leave nothing behind."""
    db = backend(tmp_path)

    def note(n: int) -> Write:
        return Write(Kind.JOB_EVENT, (f"job{n}", 5.0, "paused", f"note {n}"))

    try:
        db.write([save(f"job{n}", 1) for n in range(300)] + [note(n) for n in range(301)])
        db.write(
            [save(f"job{n}", 2) for n in range(0, 300, 3)]
            + [save(f"job{n}", 3) for n in range(300, 337)]
        )
        jobs = {row["job_id"]: row["run_count"] for row in db.load_jobs()}
    finally:
        db.close()
    assert jobs == {f"job{n}": 3 if n >= 300 else 2 if n % 3 == 0 else 1 for n in range(337)}
    with sqlite3.connect(tmp_path / "state.db") as conn:
        notes = conn.execute("SELECT job_id, detail FROM job_events ORDER BY rowid").fetchall()
    conn.close()
    assert notes == [(f"job{n}", f"note {n}") for n in range(301)]


class BlockingBackend:
    """A backend whose writes wait until the test lets them go."""

    shared = False

    def __init__(self) -> None:
        self.go = threading.Event()
        self.writing = threading.Event()
        self.written: list[Write] = []

    def write(self, batch: list[Write]) -> list[tuple[Write, bool]]:
        self.writing.set()
        self.go.wait(30)
        self.written += batch
        return [(w, True) for w in batch if w.kind is Kind.CLAIM]

    def prune(self) -> None: ...

    def check(self) -> str:
        return ""

    def journal(self, claims: list[Write]) -> None: ...


async def test_queueing_a_write_never_waits_for_the_writer_threads_lock():
    store_backend = BlockingBackend()
    writer = BatchWriter(store_backend, max_buffer=1000)
    writer.start(asyncio.get_running_loop())
    try:
        writer.push(Write(Kind.JOB_EVENT, ("j", 1.0, "paused", "")))
        assert await asyncio.to_thread(store_backend.writing.wait, 10)
        # The writer thread holds its lock while it takes a batch (and may lose the GIL then):
        # a write queued meanwhile must not wait for it.
        held = threading.Event()
        release = threading.Event()

        def hold_the_lock() -> None:
            with writer._cond:
                held.set()
                release.wait(30)

        holder = threading.Thread(target=hold_the_lock)
        holder.start()
        held.wait(10)
        pushed = threading.Event()
        pusher = threading.Thread(
            target=lambda: (
                writer.push(Write(Kind.JOB_EVENT, ("j", 2.0, "resumed", ""))),
                pushed.set(),
            )
        )
        pusher.start()
        try:
            assert pushed.wait(5), "push waited for the writer's lock"
        finally:
            release.set()
            holder.join()
            pusher.join()
        store_backend.go.set()
        assert await asyncio.to_thread(writer.flush, 10)
        assert [w.params[2] for w in store_backend.written] == ["paused", "resumed"]
    finally:
        store_backend.go.set()
        await asyncio.to_thread(writer.close)


async def test_claims_answered_together_are_settled_a_slice_per_loop_turn():
    loop = asyncio.get_running_loop()
    writer = BatchWriter(BlockingBackend(), max_buffer=10)
    writer._loop = loop  # answers only: no thread
    claims: list[asyncio.Future[bool]] = [loop.create_future() for _ in range(ANSWER_SLICE * 2 + 5)]
    writer._answer([(future, True) for future in claims])
    settled = []
    for _ in range(10):  # loop turns, a few more than three slices need: never a hang
        await asyncio.sleep(0)
        count = sum(future.done() for future in claims)
        if not settled or count != settled[-1]:
            settled.append(count)
    # Each slice's runs start in the turn after it, before the next slice is settled.
    assert settled == [ANSWER_SLICE, ANSWER_SLICE * 2, ANSWER_SLICE * 2 + 5]


async def test_claims_of_two_batches_are_settled_in_the_order_they_were_answered():
    """Runs start in the order of their claims: a second batch answered while the first is
    still being settled waits for all of it (a catch-up's occurrences of one job run in order)."""
    loop = asyncio.get_running_loop()
    writer = BatchWriter(BlockingBackend(), max_buffer=10)
    writer._loop = loop  # answers only: no thread
    first = [loop.create_future() for _ in range(ANSWER_SLICE + 50)]
    second = [loop.create_future() for _ in range(ANSWER_SLICE)]
    order: list[int] = []
    for index, future in enumerate(first + second):
        future.add_done_callback(lambda _f, i=index: order.append(i))
    writer._answer([(future, True) for future in first])
    writer._answer([(future, True) for future in second])
    for _ in range(10):
        await asyncio.sleep(0)
    assert order == list(range(len(first) + len(second)))


class FakeLoop:
    """Time a test moves, and the one timer ClaimDeadlines sets."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> object:
        self.timers.append((when, callback))
        return object()

    def fire(self, until: float) -> None:
        self.now = until
        while self.timers and self.timers[0][0] <= until:
            _, callback = self.timers.pop(0)
            callback()


async def test_a_claim_nobody_answers_lets_its_run_go_ahead_after_the_wait_and_no_sooner():
    loop = asyncio.get_running_loop()
    clock = FakeLoop()
    deadlines = ClaimDeadlines(clock, 2.0)  # type: ignore[arg-type]
    first, answered, later = (loop.create_future() for _ in range(3))
    deadlines.watch(first)
    clock.now = 101.0
    deadlines.watch(answered)
    deadlines.watch(later)
    answered.set_result(False)  # the database said no: the deadline must not change that
    assert len(clock.timers) == 1  # one timer for all of them
    clock.fire(101.9)
    assert not first.done()
    clock.fire(102.0)
    assert first.result() is True and not later.done()
    clock.fire(103.0)
    assert later.result() is True and answered.result() is False
    assert clock.timers == []  # nothing left waiting: no timer either


async def test_a_store_at_full_speed_records_every_run_once(tmp_path):
    """Thousands of runs due at once, through the real writer and SQLite: each run's row is
    claimed once and finished, however the writes were batched."""
    store = Store.open(tmp_path / "state.db")
    clock = VirtualClock(START)
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store, stop_grace=0)

    async def body() -> None:
        return None

    for n in range(3000):
        scheduler.add_job(body, id=f"j{n}", at=START + timedelta(minutes=1))
    store.start()
    await scheduler.start()
    await clock.advance(60)
    await scheduler.stop()
    await asyncio.to_thread(store.close)
    runs = read_runs(tmp_path / "state.db", limit=10_000)
    assert len(runs) == 3000
    assert {r["outcome"] for r in runs} == {"succeeded"}
    assert len({r["job_id"] for r in runs}) == 3000


TABLES = ("runs", "jobs", "job_events", "sessions")


def _tables(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
    conn.close()
    return counts


def test_the_statements_a_burst_writes_are_prepared_ahead_and_preparing_writes_nothing(tmp_path):
    """A burst's first statements of each size took milliseconds each to prepare while the
    runs waited (a 1,024-row result 14 ms). Once a batch has had many rows of a kind (at
    start, every job's state is saved), warm() prepares every size write() makes for up to
    that many rows, for the writes made for every run; the database is left as it was."""
    db = backend(tmp_path)
    try:
        db.write([claim(n) for n in range(1500)])  # a pass of 1,500 jobs, say
        before = _tables(tmp_path / "state.db")
        db.warm()
        assert _tables(tmp_path / "state.db") == before
        prepared = set(db._rows._texts)
        assert {kind for kind, _ in prepared} == set(WARMED)
        # Batches of every size up to that: none needs a statement of a size not prepared.
        run = 1500
        for count in (*range(2, 300), 511, 767, 1023, 1024, 1025, 1500):
            db.write([claim(n) for n in range(run, run + count)])
            db.write([finish(n) for n in range(run, run + count)])
            db.write(
                [Write(Kind.JOB_EVENT, (f"job{n}", 1.0, "finished", "")) for n in range(count)]
            )
            run += count
        assert set(db._rows._texts) == prepared
        assert _tables(tmp_path / "state.db")["runs"] == run
    finally:
        db.close()


def test_a_store_of_a_few_jobs_prepares_only_the_few_rows_it_writes(tmp_path):
    """The statements for a thousand rows take megabytes; a store whose batches never had
    more than a dozen rows of a kind does not prepare them."""
    db = backend(tmp_path)
    try:
        db.write([claim(n) for n in range(12)])
        db.warm()
        assert {size for _, size in db._rows._texts} == {1, 2, 4, 8, 16}
        db.write([claim(n) for n in range(12, 312)])  # then a pass of 300 jobs
        db.warm()
        assert {size for _, size in db._rows._texts} == {1, 2, 4, 8, 16, 32, 64, 128, 256}
    finally:
        db.close()


def test_an_sqlite_without_update_from_prepares_only_what_it_writes_in_many_rows(
    tmp_path, monkeypatch
):
    """Before SQLite 3.33 there is no UPDATE ... FROM: updates go a row at a time, and
    preparing one would fail there and leave the kinds after it unprepared."""
    monkeypatch.setattr(sqlrows, "UPDATE_FROM", False)
    db = backend(tmp_path)
    try:
        db.write([claim(n) for n in range(300)])
        db.warm()
        assert {kind for kind, _ in db._rows._texts} == set(WARMED) - set(sqlrows.UPDATES)
        db.write([finish(n) for n in range(300)])
    finally:
        db.close()
    runs = read_runs(tmp_path / "state.db", limit=1000)
    assert len(runs) == 300 and {r["outcome"] for r in runs} == {"succeeded"}


def test_a_database_locked_while_statements_are_prepared_is_written_all_the_same(tmp_path):
    db = backend(tmp_path)
    try:
        with sqlite3.connect(tmp_path / "state.db", isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")
            db.warm()  # waits its busy timeout, then leaves them to be prepared when used
            other.execute("ROLLBACK")
        other.close()
        db.write([claim(n) for n in range(700)])
        db.write([finish(n) for n in range(700)])
    finally:
        db.close()
    runs = read_runs(tmp_path / "state.db", limit=1000)
    assert len(runs) == 700 and {r["outcome"] for r in runs} == {"succeeded"}


class FullDisk(BlockingBackend):
    def write(self, batch: list[Write]) -> list[tuple[Write, bool]]:
        raise StoreUnavailable("database or disk is full")


async def test_records_of_thousands_of_jobs_lost_at_close_name_ten_and_count_the_rest(
    monkeypatch,
):
    """The status line that says whose records were lost stays a line: with thousands of
    jobs, it named every one (20,000 names in one log line)."""
    monkeypatch.setattr(writer_module, "CLOSE_RETRIES_FOR", 0.1)
    writer = BatchWriter(FullDisk(), max_buffer=100_000)
    writer.start(asyncio.get_running_loop())
    writer.push_many(
        [
            Write(Kind.JOB_EVENT, (f"job{n:04d}", 1.0, "finished", ""), job_id=f"job{n:04d}")
            for n in range(2500)
        ]
    )
    await asyncio.to_thread(writer.close)
    jobs = ", ".join(f"job{n:04d}" for n in range(10))
    assert f"closed with 2500 records lost (jobs: {jobs} and 2,490 more)" in writer.status
