"""The engine's hot paths report exactly what its general paths report.

A plain coroutine run (no claim, slot, middleware, timeout or retry) skips the runner's attempt
loop, and a one-shot job due on time skips the catch-up decision (issue 14: per-run cost). A
job given a timeout it never reaches takes the general path, so each case runs both ways side by
side and the records must match."""

from __future__ import annotations

import gc
from datetime import timedelta
from typing import Any

import pytest

from jobtui import Outcome, Run, RunFinished, RunProgress, RunStarted
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
    # The pass pauses the collector (scheduler.collector_paused): not past its end, not even
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
