"""Clock steps and a suspended machine: nothing runs twice, nothing is lost silently."""

from __future__ import annotations

from datetime import timedelta

from jobtui import ClockJumped, Run

from .conftest import START


async def noop(run: Run) -> None:
    return None


async def test_backward_step_repeats_no_occurrence_and_leaves_intervals_alone(
    scheduler, clock, recorder
):
    scheduler.add_job(noop, cron="*/10 * * * *", id="cron")
    scheduler.add_job(noop, every="5m", id="every")
    async with scheduler:
        await clock.advance(3600)
        assert len(recorder.finished("cron")) == 6
        await clock.step_wall(-3600)  # NTP (or a person) sets the clock back an hour
        await clock.advance(3600)
        assert len(recorder.finished("cron")) == 6  # the repeated hour runs nothing again
        await clock.advance(3600)
    cron_runs = [r.scheduled_for for r in recorder.finished("cron")]
    assert len(cron_runs) == len(set(cron_runs)) == 12
    assert cron_runs == sorted(cron_runs)
    every = recorder.finished("every")
    assert len(every) == 36  # 3 hours of real time at 5 minutes, unaffected by the step
    assert [(j.kind, j.seconds) for j in recorder.of(ClockJumped)] == [("backward", -3600)]


async def test_forward_step_catches_up_cron_by_policy(scheduler, clock, recorder):
    scheduler.add_job(noop, cron="0 * * * *", id="hourly")  # catchup="latest"
    scheduler.add_job(noop, every="1h", id="every")
    async with scheduler:
        await clock.advance(30 * 60)
        await clock.step_wall(3 * 3600)  # 12:30 -> 15:30
        await clock.advance(60)
    assert [r.scheduled_for.hour for r in recorder.finished("hourly")] == [15]
    assert [r.scheduled_for.hour for r in recorder.missed("hourly")] == [13, 14]
    assert recorder.finished("every") == []  # only 31 real minutes have passed
    assert [j.kind for j in recorder.of(ClockJumped)] == ["forward"]


async def test_suspended_machine_catches_up_on_resume(scheduler, clock, recorder):
    scheduler.add_job(noop, every="10m", id="every")
    scheduler.add_job(noop, cron="0 * * * *", id="hourly")
    async with scheduler:
        await clock.advance(15 * 60)
        await clock.suspend(2 * 3600)  # laptop lid closed at 12:15, opened at 14:15
        await clock.advance(30)  # the loop wakes within MAX_SLEEP
    every = recorder.finished("every")
    assert [r.scheduled_for - START for r in every] == [
        timedelta(minutes=10),
        timedelta(hours=2, minutes=10),  # the newest missed grid point, once
    ]
    assert len(recorder.missed("every")) == 11
    assert [r.scheduled_for.hour for r in recorder.finished("hourly")] == [14]
    assert [r.scheduled_for.hour for r in recorder.missed("hourly")] == [13]
    assert recorder.of(ClockJumped)[0].kind == "suspend"
    assert scheduler.get("every").next_run_time == START + timedelta(hours=2, minutes=20)
