"""The engine's hot paths report exactly what its general paths report.

A plain coroutine run (no claim, slot, middleware, timeout or retry) skips the runner's attempt
loop, and a one-shot job due on time skips the catch-up decision (issue 14: per-run cost). A
job given a timeout it never reaches takes the general path, so each case runs both ways side by
side and the records must match."""

from __future__ import annotations

import asyncio
import gc
from datetime import timedelta
from typing import Any

import pytest

from jobtui import Outcome, Run, RunFinished, RunProgress, RunStarted, Scheduler
from jobtui.engine.job import JobSnapshot
from jobtui.engine.plans import IntervalPlan

from .conftest import START, stop_within


async def returns_none(run: Run) -> None:
    return None


async def returns_a_value(run: Run) -> int:
    return 42


async def raises(run: Run) -> None:
    raise ValueError("the input file is empty")


async def exits(run: Run) -> None:
    raise SystemExit(3)


async def reports_and_prints(run: Run) -> None:
    run.progress = 0.5
    run.status_message = "halfway"
    run.log("a logged line")
    print("a printed line")
    print("a line without its end", end="")


BODIES = [returns_none, returns_a_value, raises, exits, reports_and_prints]


def record(run: Run) -> tuple[Any, ...]:
    error = (run.error.type, run.error.message) if run.error else None
    lines = [(line.stream, line.text) for line in run.output.lines()] if run.has_output else []
    value = run.result if run.outcome is Outcome.SUCCEEDED else None
    return (
        run.outcome,
        run.reason,
        error,
        run.attempt,
        lines,
        run.progress,
        run.status_message,
        run.scheduled_ts,
        run.started_ts,
        run.finished_ts,
        value,
    )


def told(recorder: Any, job_id: str) -> list[str]:
    kinds = (RunStarted, RunProgress, RunFinished)
    return [
        type(e).__name__ for e in recorder.events if isinstance(e, kinds) and e.run.job_id == job_id
    ]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: b.__name__)
async def test_a_plain_run_reports_what_a_run_with_a_timeout_reports(
    scheduler, clock, recorder, body
):
    scheduler.add_job(body, every="1m", id="plain")
    scheduler.add_job(body, every="1m", id="general", timeout="1h")  # never reached
    async with scheduler:
        await clock.advance(60)
    (plain,) = recorder.finished("plain")
    (general,) = recorder.finished("general")
    assert record(plain) == record(general)
    assert told(recorder, "plain") == told(recorder, "general")
    assert plain.started_ts == (START + timedelta(minutes=1)).timestamp()


async def test_a_plain_run_cancelled_while_it_runs_reports_what_the_general_path_reports(
    scheduler, clock, recorder
):
    async def slow(run: Run) -> None:
        run.log("started")
        await clock.sleep(30)

    scheduler.add_job(slow, every="1m", id="plain")
    scheduler.add_job(slow, every="1m", id="general", timeout="1h")
    async with scheduler:
        await clock.advance(61)
        scheduler.cancel("plain")
        scheduler.cancel("general")
        await clock.advance(1)
    (plain,) = recorder.finished("plain")
    (general,) = recorder.finished("general")
    assert plain.outcome is Outcome.CANCELLED
    assert plain.reason == "cancelled by the user"
    assert record(plain) == record(general)
    assert scheduler.get("plain").state == scheduler.get("general").state


@pytest.mark.parametrize("extra", [{}, {"timeout": "1h"}], ids=["plain", "general"])
async def test_a_run_cancelled_in_the_turn_it_started_ends_cancelled(
    scheduler, clock, recorder, extra
):
    """A task cancelled before its first step never runs its coroutine: the run must still
    end (before, it stayed "running" for good, even after stop)."""

    async def slow(run: Run) -> None:
        await clock.sleep(30)

    scheduler.add_job(slow, every="1h", id="j", **extra)
    async with scheduler:
        run = scheduler.run_now("j", wait=False)
        scheduler.cancel("j")  # the same turn: its task has not started
        finished = await asyncio.wait_for(run, 5)
        assert finished.outcome is Outcome.CANCELLED and finished.finished_ts is not None
        assert scheduler.get("j").state.value == "scheduled" and not scheduler.get("j").active
    assert [r.outcome for r in recorder.finished("j")] == [Outcome.CANCELLED]


async def test_a_plain_run_cut_short_by_stop_reports_what_the_general_path_reports(
    scheduler, clock, recorder
):
    async def slow(run: Run) -> None:
        await clock.sleep(300)

    scheduler.add_job(slow, every="1m", id="plain")
    scheduler.add_job(slow, every="1m", id="general", timeout="1h")
    await scheduler.start()
    await clock.advance(61)
    await stop_within(scheduler, clock, 5)
    (plain,) = recorder.finished("plain")
    (general,) = recorder.finished("general")
    assert plain.outcome is Outcome.CANCELLED
    assert "grace" in plain.reason
    assert record(plain) == record(general)


@pytest.mark.parametrize(
    ("catchup", "late_by", "runs"),
    [
        ("latest", 0.0, True),  # on time: the fast path
        ("none", 0.5, True),  # late within the tolerance of catchup="none": the fast path
        ("none", 90.0, False),  # too late for catchup="none": the general path, missed
        ("latest", 90.0, True),  # late, but catch-up runs it: the general path
    ],
)
async def test_a_one_shot_job_runs_once_when_due_unless_too_late(
    scheduler, clock, recorder, catchup, late_by, runs
):
    async def once() -> None:
        return None

    scheduler.add_job(once, at=START + timedelta(minutes=1), id="once", catchup=catchup)
    async with scheduler:
        await clock.step_wall(late_by)  # the wall clock jumps ahead while it waits
        await clock.advance(60)
        await clock.advance(3600)
    job = scheduler.get("once")
    assert job.finished
    if runs:
        (run,) = recorder.finished("once")
        assert run.outcome is Outcome.SUCCEEDED
        assert run.scheduled_ts == (START + timedelta(minutes=1)).timestamp()
        assert job.finish_reason == "it ran at its `at` time"
        assert recorder.missed("once") == []
    else:
        assert recorder.finished("once") == []
        (missed,) = recorder.missed("once")
        assert 'catchup="none"' in missed.reason


@pytest.mark.parametrize("enabled", [True, False], ids=["collector on", "collector off"])
async def test_a_scheduling_pass_leaves_the_garbage_collector_as_it_found_it(
    scheduler, clock, monkeypatch, enabled
):
    # The pass pauses the collector (engine/collector.py): not past its end, not even
    # when a bug in a job's planning ends it, and never on when the program turned it off.
    seen = []

    async def body() -> None:
        seen.append(gc.isenabled())

    def broken(self: IntervalPlan, job: Any, wall: float, waiting: Any) -> None:
        raise RuntimeError("a bug in planning")

    scheduler.add_job(body, every="1m", id="j")
    (gc.enable if enabled else gc.disable)()
    try:
        async with scheduler:
            await clock.advance(60)
            assert gc.isenabled() is enabled
            monkeypatch.setattr(IntervalPlan, "after_due", broken)
            await clock.advance(60)  # this pass raises: logged, and the loop goes on
            assert gc.isenabled() is enabled
    finally:
        gc.enable()
    assert seen == [enabled, enabled]


async def test_who_hears_of_a_plain_run_follows_subscribers_as_they_come_and_go(scheduler, clock):
    # Whether a run's start and finish are built at all is a flag kept current as subscribers
    # come and go (EventBroker.interest), not asked per run: each change must reach it.
    async def body() -> None:
        return None

    scheduler.add_job(body, every="1m", id="j")
    heard: list[str] = []
    async with scheduler:
        await clock.advance(60)  # nobody listens: the run still runs
        assert scheduler.get("j").last_run is not None
        unsubscribe = scheduler.subscribe(
            lambda e: heard.append(type(e).__name__), RunStarted, RunFinished
        )
        await clock.advance(60)
        assert heard == ["RunStarted", "RunFinished"]
        unsubscribe()
        await clock.advance(60)
        assert heard == ["RunStarted", "RunFinished"]

        streamed: list[str] = []

        async def read() -> None:
            async for event in scheduler.stream():
                if isinstance(event, RunStarted | RunFinished):
                    streamed.append(type(event).__name__)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0)  # the stream is open
        await clock.advance(60)
        for _ in range(3):
            await asyncio.sleep(0)
        assert streamed == ["RunStarted", "RunFinished"]
        reader.cancel()
    assert scheduler.get("j").run_count == 4


async def test_a_line_a_plain_run_printed_without_its_end_is_in_its_output(scheduler, clock):
    async def half_a_line() -> None:
        print("first line")
        print("no end", end="")

    async def quiet() -> None:
        return None

    scheduler.add_job(half_a_line, every="1m", id="half")
    scheduler.add_job(quiet, every="1m", id="quiet")
    async with scheduler:
        await clock.advance(60)
        await clock.advance(60)
    half, quiet_job = scheduler.get("half"), scheduler.get("quiet")
    assert half.last_run is not None and quiet_job.last_run is not None
    assert [line.text for line in half.last_run.output.lines()] == ["first line", "no end"]
    assert not quiet_job.last_run.has_output


async def test_middleware_added_while_the_scheduler_runs_wraps_the_next_plain_run(scheduler, clock):
    async def body() -> None:
        return None

    wrapped: list[str] = []

    async def note(run: Run, call_next: Any) -> Any:
        wrapped.append(run.job_id)
        return await call_next()

    scheduler.add_job(body, every="1m", id="j")
    async with scheduler:
        await clock.advance(60)
        scheduler.add_middleware(note)
        await clock.advance(60)
    assert wrapped == ["j"]


class Recording:
    """A store that claims every occurrence and names the events it records."""

    recorded_events = (RunFinished,)

    def __init__(self) -> None:
        self.got: list[str] = []

    def claim(self, run: Run) -> asyncio.Future[bool]:
        claimed = asyncio.get_running_loop().create_future()
        claimed.set_result(True)
        return claimed

    def record(self, event: Any) -> None:
        self.got.append(type(event).__name__)

    def save_job(self, job_id: str, snapshot: Any) -> None:
        pass


async def test_a_store_that_names_the_events_it_records_is_handed_those_only(clock):
    store = Recording()
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store)

    async def body() -> None:
        return None

    scheduler.add_job(body, every="1m", id="j")
    async with scheduler:
        await clock.advance(60)
        scheduler.pause("j")
    assert store.got == ["RunFinished"]
    assert scheduler.events.wants(RunStarted) is False


@pytest.mark.parametrize("takes_run", [True, False], ids=["with run", "without run"])
@pytest.mark.parametrize("kwargs", [{}, {"offset": 1}], ids=["no keywords", "keywords"])
async def test_a_plain_run_is_given_its_arguments_as_the_general_path_gives_them(
    scheduler, clock, recorder, takes_run, kwargs
):
    # The plain path calls the body itself (Runner._execute_plain), not through the execution.
    calls: list[tuple[str, Any, int, int]] = []

    async def with_run(run: Run, factor: int, offset: int = 0) -> int:
        calls.append((run.job_id, type(run).__name__, factor, offset))
        return factor + offset

    async def without_run(factor: int, offset: int = 0) -> int:
        calls.append(("?", None, factor, offset))
        return factor + offset

    body = with_run if takes_run else without_run
    scheduler.add_job(body, every="1m", id="plain", args=[41], kwargs=kwargs)
    scheduler.add_job(body, every="1m", id="general", args=[41], kwargs=kwargs, timeout="1h")
    async with scheduler:
        await clock.advance(60)
    (plain,) = recorder.finished("plain")
    (general,) = recorder.finished("general")
    assert record(plain) == record(general)
    assert plain.result == 41 + kwargs.get("offset", 0)
    expected = ("plain", "Run") if takes_run else ("?", None)
    assert calls[0] == (*expected, 41, kwargs.get("offset", 0))


async def test_a_due_job_with_a_run_still_going_or_a_jitter_is_not_started_at_once(
    scheduler, clock, recorder
):
    # The scheduling pass starts a due run itself when nothing stands in the way; a run still
    # going (overlap policy) or a jitter still goes through the dispatcher.
    async def slow() -> None:
        await clock.sleep(70)  # the run due at 1 min is still going at 2 min

    async def quick() -> None:
        return None

    scheduler.add_job(slow, every="1m", id="slow")  # overlap "skip" by default
    scheduler.add_job(quick, every="1m", id="jittered", jitter="30s")
    async with scheduler:
        await clock.advance(155)  # both jittered runs have started, the slow run has ended
        (skipped,) = recorder.skipped("slow")
        assert skipped.reason.startswith("still running")
        assert [run.outcome for run in recorder.finished("slow")] == [Outcome.SUCCEEDED]
        jittered = recorder.started("jittered")
        assert len(jittered) == 2
        assert all(run.started_ts > run.scheduled_ts for run in jittered)


def test_a_jobs_snapshot_made_by_position_holds_each_field_under_its_name(scheduler):
    # Job.snapshot() passes its ten fields by position (a store makes one every run): each
    # value distinct, so two swapped would show.
    scheduler.add_job(returns_none, every="1h", id="j")
    job = scheduler.restore(
        "j",
        JobSnapshot(
            paused=True,
            pause_reason="paused from the console",
            disabled_reason="3 consecutive failures",
            consecutive_failures=3,
            run_count=7,
            last_fired=START.timestamp() - 3600,
        ),
    )
    job.next_fire = START.timestamp() + 60
    assert job.snapshot() == JobSnapshot(
        paused=job.paused,
        pause_reason=job.pause_reason,
        disabled_reason=job.disabled_reason,
        consecutive_failures=job.consecutive_failures,
        run_count=job.run_count,
        last_fired=job.last_fired,
        grid_anchor=job.grid_anchor,
        finished=job.finished,
        catch_up=True,
        next_fire=job.next_fire,
    )
    assert (job.snapshot().pause_reason, job.snapshot().run_count) == (
        "paused from the console",
        7,
    )
