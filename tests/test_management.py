"""The management API and its events and errors: add, decorator, remove, pause, resume,
run_now, modify, cancel, get, jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobtui import (
    DuplicateJob,
    InvalidJobOption,
    InvalidTrigger,
    JobAdded,
    JobModified,
    JobNotFound,
    JobRemoved,
    JobState,
    JobStateChanged,
    Outcome,
    Run,
    RunNotFound,
    Scheduler,
    SchedulerNotRunning,
)

from .conftest import START


async def noop(run: Run) -> None:
    return None


async def test_decorator_registers_and_returns_the_function(scheduler, clock, recorder):
    @scheduler.job(every="1m", id="sync", name="Sync files")
    async def sync(run: Run) -> None:
        run.status_message = "synced"

    assert callable(sync)
    job = scheduler.get("sync")
    assert job.name == "Sync files" and job.describe_trigger() == "every 1m"
    async with scheduler:
        await clock.advance(60)
    assert recorder.finished("sync")[0].status_message == "synced"


async def test_ids_default_to_the_function_or_program_name(scheduler):
    assert scheduler.add_job(noop, every="1m").id == "noop"
    assert scheduler.add_job(["pg_dump", "-f", "db.sql"], cron="@daily").id == "pg_dump"
    assert {j.id for j in scheduler.jobs()} == {"noop", "pg_dump"}


def test_typed_errors_say_what_to_do(scheduler):
    scheduler.add_job(noop, every="1m", id="a")
    with pytest.raises(DuplicateJob, match='a job with id "a" already exists'):
        scheduler.add_job(noop, every="1m", id="a")
    with pytest.raises(JobNotFound, match='no job with id "nope"'):
        scheduler.get("nope")
    with pytest.raises(InvalidTrigger, match="a job takes one trigger, got every and cron"):
        scheduler.add_job(noop, every="1m", cron="* * * * *", id="b")
    with pytest.raises(InvalidTrigger, match="never fires: February has no 31st") as info:
        scheduler.add_job(noop, cron="0 0 31 2 *", id="c")
    assert info.value.job_id == "c" and info.value.key == "cron"
    with pytest.raises(InvalidTrigger, match='"2d": a period is written in s, m or h'):
        scheduler.add_job(noop, every="2d", id="d")
    with pytest.raises(InvalidJobOption, match='cannot read "ten minutes" as a duration'):
        scheduler.add_job(noop, every="1m", timeout="ten minutes", id="e")
    with pytest.raises(InvalidJobOption, match="must be greater than zero"):
        scheduler.add_job(noop, every="0s", id="f")
    with pytest.raises(
        InvalidJobOption, match='expected "skip", "queue", "replace" or "parallel:N"'
    ):
        scheduler.add_job(noop, every="1m", overlap="parallel:0", id="g")
    with pytest.raises(
        InvalidJobOption,
        match='unknown timezone "Europe/Berln" \\(did you mean "Europe/Berlin"\\?\\)',
    ):
        scheduler.add_job(noop, every="1m", timezone="Europe/Berln", id="h")
    with pytest.raises(InvalidJobOption, match="unknown option; accepted:") as info:
        scheduler.add_job(noop, every="1m", retires=3, id="i")
    assert info.value.key == "retires"
    with pytest.raises(InvalidJobOption, match="does not exist"):
        scheduler.add_job("true", every="1m", cwd="/no/such/folder", id="j")
    with pytest.raises(SchedulerNotRunning):
        scheduler.run_now("a")
    assert [j.id for j in scheduler.jobs()] == ["a"]  # failed adds changed nothing


async def test_pause_and_resume_from_now_without_a_burst(scheduler, clock, recorder):
    scheduler.add_job(noop, every="1m", id="j")
    async with scheduler:
        await clock.advance(60)
        scheduler.pause("j", reason="maintenance")
        job = scheduler.get("j")
        assert job.state is JobState.PAUSED and job.pause_reason == "maintenance"
        assert job.next_run_time is None
        await clock.advance(10 * 60 + 30)
        scheduler.resume("j")
        assert job.next_run_time == START + timedelta(minutes=12)
        await clock.advance(30)
    assert [r.scheduled_for - START for r in recorder.finished("j")] == [
        timedelta(minutes=1),
        timedelta(minutes=12),
    ]
    assert recorder.missed("j") == []
    states = [(e.state, e.reason) for e in recorder.of(JobStateChanged)]
    assert states == [("paused", "maintenance"), ("scheduled", "resumed")]


async def test_added_paused_does_not_run_until_resumed(scheduler, clock, recorder):
    scheduler.add_job(noop, every="1m", id="j", paused=True)
    async with scheduler:
        await clock.advance(600)
        assert recorder.finished("j") == []
        scheduler.resume("j")
        await clock.advance(60)
    assert len(recorder.finished("j")) == 1


async def test_run_now_is_manual_and_does_not_move_the_schedule(scheduler, clock, recorder):
    scheduler.add_job(noop, every="1h", id="j", paused=True)
    async with scheduler:
        await clock.advance(600)
        run = scheduler.run_now("j")
        await clock.advance(0)
        assert run.manual and run.outcome is Outcome.SUCCEEDED
        assert run.scheduled_for == START + timedelta(minutes=10)
        scheduler.resume("j")
        next_time = scheduler.get("j").next_run_time
        scheduler.run_now("j")
        await clock.advance(0)
        assert scheduler.get("j").next_run_time == next_time
    assert [r.manual for r in recorder.finished("j")] == [True, True]


async def test_remove_lets_a_running_run_finish(scheduler, clock, recorder):
    async def slow() -> None:
        await clock.sleep(30)

    scheduler.add_job(slow, every="1m", id="j")
    async with scheduler:
        await clock.advance(60)
        scheduler.remove("j")
        assert "j" not in scheduler
        await clock.advance(120)
    assert recorder.outcomes("j") == [Outcome.SUCCEEDED]
    assert [e.job_id for e in recorder.of(JobRemoved)] == ["j"]


async def test_modify_changes_trigger_and_options_and_keeps_counters(scheduler, clock, recorder):
    scheduler.add_job(noop, every="1m", id="j")
    async with scheduler:
        await clock.advance(120)
        job = scheduler.modify("j", every="10m", timeout="5s", name="Renamed")
        assert job.run_count == 2
        assert job.options.timeout == 5 and job.name == "Renamed"
        assert job.next_run_time == START + timedelta(minutes=12)
        await clock.advance(10 * 60)
        scheduler.modify("j", cron="0 13 * * *")
        assert job.next_run_time == START + timedelta(hours=1)
        with pytest.raises(InvalidTrigger):
            scheduler.modify("j", cron="61 * * * *")
        assert job.describe_trigger() == "at 13:00 every day"  # a failed modify changes nothing
    assert len(recorder.finished("j")) == 3
    assert [e.job_id for e in recorder.of(JobModified)] == ["j", "j"]
    assert [e.job_id for e in recorder.of(JobAdded)] == ["j"]


async def test_cancel_a_running_run(scheduler, clock, recorder):
    async def slow() -> None:
        await clock.sleep(3600)

    scheduler.add_job(slow, every="1h", id="j", retries=3)
    async with scheduler:
        with pytest.raises(RunNotFound):
            scheduler.cancel("j")
        await clock.advance(3600)
        (run,) = scheduler.cancel("j")
        await clock.advance(0)
    assert run.outcome is Outcome.CANCELLED and run.reason == "cancelled by the user"
    assert run.attempt == 1  # a cancel is not retried


async def test_cancel_during_a_retry_wait(scheduler, clock, recorder):
    async def fails() -> None:
        raise RuntimeError("x")

    scheduler.add_job(fails, every="1h", id="j", retries=3, retry_backoff="1m", retry_max="1m")
    async with scheduler:
        await clock.advance(3600)
        assert scheduler.get("j").state is JobState.RETRYING
        scheduler.cancel("j")
        await clock.advance(0)
    (run,) = recorder.finished("j")
    assert run.outcome is Outcome.CANCELLED


async def test_stop_gives_running_runs_their_grace_then_cancels(clock, recorder_factory):
    scheduler = Scheduler(timezone="UTC", clock=clock, stop_grace=10)
    recorder = recorder_factory(scheduler)

    async def short() -> None:
        await clock.sleep(5)

    async def long() -> None:
        await clock.sleep(60)

    scheduler.add_job(short, every="1h", id="short")
    scheduler.add_job(long, every="1h", id="long")
    await scheduler.start()
    await clock.advance(3600)
    import asyncio

    stopping = asyncio.create_task(scheduler.stop())
    await clock.advance(10)
    await stopping
    assert recorder.outcomes("short") == [Outcome.SUCCEEDED]
    (run,) = recorder.finished("long")
    assert run.outcome is Outcome.CANCELLED
    assert "grace of 10s ran out" in run.reason
    assert not scheduler.running


async def test_event_stream_delivers_in_order(scheduler, clock):
    seen = []

    async def consume() -> None:
        async for event in scheduler.stream():
            seen.append(type(event).__name__)
            if len(seen) == 4:
                return

    import asyncio

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    scheduler.add_job(noop, every="1m", id="j")
    async with scheduler:
        await clock.advance(60)
        await consumer
    assert seen == ["JobAdded", "SchedulerStarted", "RunStarted", "RunFinished"]
