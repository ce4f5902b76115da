"""Claims made a scheduling pass at a time (issue 14: a store that keeps up).

The runs one pass starts are claimed together (`claim_many`), and a claimed coroutine run with
nothing around it takes the plain path once its claim is answered. What a user sees must not
change: every run is recorded once, a run cancelled while its claim is written never starts, a
refused claim skips the run, and stop gives a run whose claim comes within its grace the rest of
it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from jobtui import Outcome, Run, RunStarted, Scheduler
from jobtui.engine.datastore import ClaimAnswer
from jobtui.store import Store, read_runs
from jobtui.store.writer import FIRST_BATCH, BatchWriter
from jobtui.store.writes import Kind, Write

from .conftest import START, Recorder, stop_within
from .test_hot_path import BODIES, record, told
from .test_store_batches import BlockingBackend


class HeldClaims:
    """A store that claims a pass at a time and answers only when the test says."""

    recorded_events = ()

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self._waiting: list[tuple[Run, ClaimAnswer, asyncio.Future[None]]] = []

    def claim(self, run: Run) -> asyncio.Future[bool]:
        raise AssertionError("a store with claim_many is asked a pass at a time")

    def claim_many(self, runs: Sequence[Run], answer: ClaimAnswer) -> asyncio.Future[None]:
        self.batches.append([run.job_id for run in runs])
        done = asyncio.get_running_loop().create_future()
        for run in runs:
            self._waiting.append((run, answer, done))
        return done

    def answer_all(self, claimed: bool) -> None:
        for run, answer, done in self._waiting:
            answer(run, claimed)
            if not done.done():
                done.set_result(None)
        self._waiting.clear()

    def record(self, event: Any) -> None:
        pass

    def save_job(self, job_id: str, snapshot: Any) -> None:
        pass


class UnheldClock:
    """Patched onto a VirtualClock: moves on without waiting for claims (a slow store)."""

    @staticmethod
    def hold(future: Any) -> None:
        pass


@pytest.fixture
def held(clock, monkeypatch) -> HeldClaims:
    monkeypatch.setattr(clock, "hold", UnheldClock.hold)
    return HeldClaims()


async def test_the_runs_due_in_one_pass_are_claimed_together_and_each_recorded(tmp_path, clock):
    store = Store.open(tmp_path / "state.db")
    asked: list[int] = []
    claim_many = store.claim_many

    def counting(runs: Sequence[Run], answer: ClaimAnswer) -> asyncio.Future[None]:
        asked.append(len(runs))
        return claim_many(runs, answer)

    store.claim_many = counting  # type: ignore[method-assign]
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)

    async def body(run: Run) -> None:
        return None

    for n in range(300):
        scheduler.add_job(body, every="1m", id=f"j{n}")
    store.start()
    async with scheduler:
        await clock.advance(60)
        await clock.advance(60)
    await asyncio.to_thread(store.close)
    assert asked == [300, 300]  # one claim per pass, not one per run
    assert recorder.outcomes().count(Outcome.SUCCEEDED) == 600
    rows = read_runs(tmp_path / "state.db", limit=1000)
    assert len(rows) == 600 and {row["outcome"] for row in rows} == {"succeeded"}


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.__name__)
async def test_a_claimed_plain_run_reports_what_a_claimed_run_with_a_timeout_reports(
    tmp_path, clock, body
):
    store = Store.open(tmp_path / "state.db")
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)
    scheduler.add_job(body, every="1m", id="plain")
    scheduler.add_job(body, every="1m", id="general", timeout="1h")  # never reached
    store.start()
    async with scheduler:
        await clock.advance(60)
    await asyncio.to_thread(store.close)
    (plain,) = recorder.finished("plain")
    (general,) = recorder.finished("general")
    assert record(plain) == record(general)
    assert told(recorder, "plain") == told(recorder, "general")
    rows = {row["job_id"]: row for row in read_runs(tmp_path / "state.db")}
    kept = ("outcome", "reason", "error_type", "error_message", "exit_code", "attempt", "progress")
    assert [rows["plain"][k] for k in kept] == [rows["general"][k] for k in kept]
    assert rows["plain"]["outcome"] == plain.outcome.value


@pytest.mark.parametrize("extra", [{}, {"timeout": "1h"}], ids=["plain", "general"])
async def test_a_run_cancelled_while_its_claim_is_written_never_starts(clock, held, extra):
    scheduler = Scheduler(timezone="UTC", clock=clock, store=held)
    recorder = Recorder(scheduler)
    ran: list[str] = []

    async def body(run: Run) -> None:
        ran.append(run.run_id)

    scheduler.add_job(body, every="1m", id="j", **extra)
    async with scheduler:
        await clock.advance(60)
        (waiting,) = scheduler.running_runs()
        assert waiting.started_ts is None
        scheduler.cancel(waiting.run_id)
        assert waiting.outcome is Outcome.CANCELLED and not scheduler.get("j").active
        held.answer_all(True)  # the claim's answer comes after all: it starts nothing
        await clock.advance(0)
    assert ran == [] and recorder.of(RunStarted) == []
    assert recorder.outcomes("j") == [Outcome.CANCELLED]


async def test_a_refused_claim_skips_its_run_and_says_why(clock, held):
    scheduler = Scheduler(timezone="UTC", clock=clock, store=held)
    recorder = Recorder(scheduler)
    ran: list[str] = []

    async def body(run: Run) -> None:
        ran.append(run.run_id)

    scheduler.add_job(body, every="1m", id="j")
    async with scheduler:
        await clock.advance(60)
        held.answer_all(False)
        await clock.advance(0)
    assert ran == []
    (skipped,) = recorder.finished("j")
    assert skipped.outcome is Outcome.SKIPPED
    assert skipped.reason == "this occurrence already ran: the state store has a record of it"


async def test_stop_gives_a_run_claimed_within_the_grace_the_rest_of_it(clock, held):
    scheduler = Scheduler(timezone="UTC", clock=clock, store=held)
    recorder = Recorder(scheduler)
    ran: list[str] = []

    async def body(run: Run) -> None:
        await clock.sleep(2)
        ran.append(run.job_id)

    scheduler.add_job(body, every="1m", id="answered")
    await scheduler.start()
    await clock.advance(60)
    stopping = asyncio.create_task(scheduler.stop(10))
    await clock.advance(1)
    held.answer_all(True)  # within the grace: it starts, and ends within it
    await clock.advance(9)
    await stopping
    assert ran == ["answered"]
    assert recorder.outcomes("answered") == [Outcome.SUCCEEDED]


async def test_stop_ends_a_run_whose_claim_never_came(clock, held):
    scheduler = Scheduler(timezone="UTC", clock=clock, store=held)
    recorder = Recorder(scheduler)

    async def body(run: Run) -> None:
        return None

    scheduler.add_job(body, every="1m", id="j")
    await scheduler.start()
    await clock.advance(60)
    await stop_within(scheduler, clock, 5)
    (run,) = recorder.finished("j")
    assert run.outcome is Outcome.CANCELLED and "grace" in run.reason
    assert run.started_ts is None


def two_minutely_jobs(store: Any, clock: Any) -> tuple[Scheduler, Recorder]:
    """Jobs "a" and "b", every minute, on a scheduler claiming through ``store``."""
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)

    async def body(run: Run) -> None:
        return None

    scheduler.add_job(body, every="1m", id="a")
    scheduler.add_job(body, every="1m", id="b")
    return scheduler, recorder


class OneAtATime:
    """A store that claims each run with its own future (as the PostgreSQL store does)."""

    def __init__(self) -> None:
        self.claims: dict[str, asyncio.Future[bool]] = {}  # by job

    def claim(self, run: Run) -> asyncio.Future[bool]:
        self.claims[run.job_id] = asyncio.get_running_loop().create_future()
        return self.claims[run.job_id]

    def record(self, event: Any) -> None:
        pass

    def save_job(self, job_id: str, snapshot: Any) -> None:
        pass


async def test_a_store_asked_a_run_at_a_time_sees_the_claim_of_a_cancelled_run_cancelled(
    clock, monkeypatch
):
    """The PostgreSQL store's hand-off to another host and its queue turn hang off the claim's
    future: cancelling the run must cancel it, and an answer must start each run."""
    monkeypatch.setattr(clock, "hold", UnheldClock.hold)
    store = OneAtATime()
    scheduler, recorder = two_minutely_jobs(store, clock)
    async with scheduler:
        await clock.advance(60)
        (run_a,) = [r for r in scheduler.running_runs() if r.job_id == "a"]
        scheduler.cancel(run_a.run_id)
        assert store.claims["a"].cancelled()
        store.claims["b"].set_result(True)
        await clock.advance(0)
    assert recorder.outcomes("a") == [Outcome.CANCELLED]
    assert recorder.outcomes("b") == [Outcome.SUCCEEDED]
    assert recorder.finished("b")[0].started_ts == (START.timestamp() + 60)


class FailingClaims(HeldClaims):
    """A store whose claim_many raises (a bug in it): the first pass's only."""

    def claim_many(self, runs: Sequence[Run], answer: ClaimAnswer) -> asyncio.Future[None]:
        if not self.batches:
            self.batches.append([run.job_id for run in runs])
            raise RuntimeError("the store broke")
        return super().claim_many(runs, answer)


class FailingOneAtATime(OneAtATime):
    """A store asked a run at a time whose claim of job "a" raises (a bug in it)."""

    def claim(self, run: Run) -> asyncio.Future[bool]:
        if run.job_id == "a":
            raise RuntimeError("the store broke")
        return super().claim(run)


async def test_a_claim_the_store_fails_to_make_fails_its_runs_and_the_job_goes_on(clock, held):
    """As when the claim was awaited in the run's task: the run fails with the store's error
    (recorded), and the job is not left with a run waiting for a claim for ever (its next
    occurrences would each be skipped as "waiting for the state store")."""
    store = FailingClaims()
    scheduler, recorder = two_minutely_jobs(store, clock)
    async with scheduler:
        await clock.advance(60)
        assert scheduler.running_runs() == []
        await clock.advance(60)
        store.answer_all(True)
        await clock.advance(0)
    for job_id in ("a", "b"):
        assert recorder.outcomes(job_id) == [Outcome.FAILED, Outcome.SUCCEEDED]
        assert "the store broke" in (recorder.finished(job_id)[0].error.message or "")
    assert recorder.skipped() == []


async def test_a_claim_the_store_fails_to_make_a_run_at_a_time_fails_that_run_only(
    clock, monkeypatch
):
    monkeypatch.setattr(clock, "hold", UnheldClock.hold)
    store = FailingOneAtATime()
    scheduler, recorder = two_minutely_jobs(store, clock)
    async with scheduler:
        await clock.advance(60)
        assert "b" in store.claims
        store.claims["b"].set_result(True)
        await clock.advance(0)
    assert recorder.outcomes("a") == [Outcome.FAILED]
    assert recorder.outcomes("b") == [Outcome.SUCCEEDED]


async def test_a_claim_the_writer_refused_is_not_let_go_ahead_by_a_late_loop(tmp_path, monkeypatch):
    """The writer answered every claim "already ran", but the loop was held up (a job's
    blocking call) past the claims' deadline before it settled those answers, which it does
    100 a turn. The deadline is for claims nobody answered: an answer waiting on the loop is
    one, and it wins. Before, the runs after the first 100 were let go ahead: run twice."""
    from jobtui.store import store as store_module

    monkeypatch.setattr(store_module, "CLAIM_WAIT", 0.01)
    path = tmp_path / "state.db"
    first = Store.open(path)
    first.start()
    loop = asyncio.get_running_loop()
    done: list[bool] = []
    runs = [Run(f"j{n}", f"first{n:04x}", 60.0) for n in range(150)]
    await first.claim_many(runs, lambda run, claimed: done.append(claimed))
    await asyncio.to_thread(first.close)
    assert done == [True] * 150

    store = Store.open(path)
    store.start()
    answers: dict[str, bool] = {}
    again = [Run(f"j{n}", f"again{n:04x}", 60.0) for n in range(150)]
    all_answered = store.claim_many(
        again, lambda run, claimed: answers.update({run.run_id: claimed})
    )
    # The loop is held up: the writer answers meanwhile, and the deadline passes.
    deadline = loop.time() + 0.01
    while len(store.writer._answers) < 150 or loop.time() <= deadline:
        time.sleep(0.001)  # blocking the loop, as the job's call does: no timing assumed
    await all_answered
    await asyncio.to_thread(store.close)
    assert set(answers.values()) == {False}


def _claims(prefix: str, count: int, loop: asyncio.AbstractEventLoop) -> list[Write]:
    return [
        Write(Kind.CLAIM, (f"{prefix}{n}", f"j{n}", 60.0, 0.0), loop.create_future(), job_id="j")
        for n in range(count)
    ]


async def test_a_pass_of_claims_pushed_together_is_kept_or_dropped_as_pushed_one_by_one():
    """A full buffer drops what it drops (progress first, else the oldest, a claim's run let
    go ahead) whether a pass's claims come together or one at a time: the buffer's bound holds
    and the same records are lost, not fewer here and more later."""
    loop = asyncio.get_running_loop()
    kept = []
    for together in (False, True):
        writer = BatchWriter(BlockingBackend(), max_buffer=10)
        writer._loop = loop  # no thread: what is queued stays queued
        for n in range(6):
            writer.push(Write(Kind.JOB_EVENT, (f"j{n}", 1.0, "paused", ""), job_id=f"j{n}"))
        claims = _claims("r", 8, loop)
        if together:
            writer.push_many(claims)
        else:
            for claim in claims:
                writer.push(claim)
        for _ in range(3):
            await asyncio.sleep(0)
        answered = [w.claim.result() for w in claims if w.claim is not None and w.claim.done()]
        kept.append(([w.params for w in writer._writes], writer.dropped, answered))
    assert kept[0] == kept[1]
    assert len(kept[0][0]) == 10 and kept[0][1] == 4


class BatchSizes(BlockingBackend):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, batch: list[Write]) -> list[tuple[Write, bool]]:
        self.sizes.append(len(batch))
        return super().write(batch)


async def _until_idle(writer: BatchWriter) -> None:
    for _ in range(5000):  # the thread idles as soon as it finds nothing to write
        if writer._idle:
            return
        await asyncio.to_thread(time.sleep, 0.001)
    raise AssertionError("the writer never went idle")


async def test_an_idle_writer_woken_by_a_pass_of_claims_answers_each_in_order_a_few_first():
    """An idle writer woken by thousands of claims writes and answers each, in order, and a
    few hundred first: the first runs of the pass start without waiting for a whole batch of
    claims to be written. Writes that no run waits for (results, notes) still go in whole
    batches."""
    loop = asyncio.get_running_loop()
    backend = BatchSizes()
    backend.go.set()
    writer = BatchWriter(backend, max_buffer=100_000)
    writer.start(loop)
    try:
        await _until_idle(writer)
        claims = _claims("r", 3000, loop)
        writer.push_many(claims)
        answers = await asyncio.gather(*(w.claim for w in claims))  # type: ignore[misc]
        assert answers == [True] * 3000
        assert [w.params[0] for w in backend.written] == [w.params[0] for w in claims]
        assert backend.sizes[0] <= FIRST_BATCH < writer.batch_size
        assert max(backend.sizes) == writer.batch_size
        await _until_idle(writer)
        backend.sizes.clear()
        writer.push_many(
            [
                Write(Kind.JOB_EVENT, (f"j{n}", 1.0, "finished", ""), job_id=f"j{n}")
                for n in range(3000)
            ]
        )
        assert await asyncio.to_thread(writer.flush, 10)
        assert sum(backend.sizes) == 3000
        assert max(backend.sizes[:2]) == writer.batch_size  # the first whole one, maybe after one
    finally:
        await asyncio.to_thread(writer.close)


class ClaimsComeWhileItWarms(BatchSizes):
    """A backend whose warm() (the writer found nothing to write) sees a pass's claims pushed
    meanwhile, as the loop does while the writer prepares its statements."""

    def __init__(self) -> None:
        super().__init__()
        self.coming: list[Write] = []
        self.writer: BatchWriter | None = None

    def warm(self) -> None:
        if self.coming and self.writer is not None:
            claims, self.coming = self.coming, []
            self.writer.push_many(claims)


async def test_claims_pushed_while_the_writer_prepares_its_statements_go_a_few_first():
    loop = asyncio.get_running_loop()
    backend = ClaimsComeWhileItWarms()
    backend.go.set()
    writer = backend.writer = BatchWriter(backend, max_buffer=100_000)
    writer.start(loop)
    try:
        await _until_idle(writer)
        claims = _claims("r", 3000, loop)
        backend.coming = claims
        writer.push(Write(Kind.JOB_EVENT, ("j", 1.0, "paused", ""), job_id="j"))  # wakes it
        answers = await asyncio.gather(*(w.claim for w in claims))  # type: ignore[misc]
        assert answers == [True] * 3000
        assert backend.sizes[0] == 1  # the note; then the claims that came as it warmed
        assert backend.sizes[1] <= FIRST_BATCH < writer.batch_size
    finally:
        await asyncio.to_thread(writer.close)


async def test_a_run_cancelled_in_the_pass_that_started_it_is_recorded_cancelled(
    tmp_path, clock, monkeypatch
):
    """Cancelled before its claim was even sent (in the scheduling pass that started it): the
    history still has it, as cancelled; not nothing, and not a row left "running" that the
    next start would call abandoned."""
    store = Store.open(tmp_path / "state.db")
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)
    recorder = Recorder(scheduler)
    ran: list[str] = []

    async def body(run: Run) -> None:
        ran.append(run.run_id)

    runner = scheduler._runner
    start = runner.start

    def start_then_cancel(job: Any, ts: float, **options: Any) -> Run:
        run = start(job, ts, **options)
        scheduler.cancel(run.run_id, "cancelled by the user")
        return run

    monkeypatch.setattr(runner, "start", start_then_cancel)
    scheduler.add_job(body, every="1m", id="j")
    store.start()
    async with scheduler:
        await clock.advance(60)
    await asyncio.to_thread(store.close)
    assert ran == [] and recorder.outcomes("j") == [Outcome.CANCELLED]
    (row,) = read_runs(tmp_path / "state.db", job="j")
    assert row["outcome"] == "cancelled" and row["reason"] == "cancelled by the user"
