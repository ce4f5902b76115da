"""When runs happen: interval grids, cron and `at` in the scheduler, bounds, jitter, soft start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from jobtui import JobState, Run, Scheduler, VirtualClock

from .conftest import START


async def noop(run: Run) -> None:
    return None


async def test_interval_job_runs_one_period_in_then_on_a_fixed_grid(scheduler, clock, recorder):
    scheduler.add_job(noop, every="10s", id="tick")
    async with scheduler:
        await clock.advance(9.9)
        assert recorder.started("tick") == []
        await clock.advance(0.1 + 30)
    fired = [run.scheduled_for for run in recorder.finished("tick")]
    assert fired == [START + timedelta(seconds=s) for s in (10, 20, 30, 40)]


async def test_one_second_job_for_an_hour_never_drifts(scheduler, clock, recorder):
    durations = iter(range(3600))

    async def slow_ish(run: Run) -> None:
        # Each run takes a different share of its second; the grid must not care.
        await clock.sleep((next(durations) % 9) / 10)

    scheduler.add_job(slow_ish, every="1s", id="tick", end=START + timedelta(hours=1))
    async with scheduler:
        await clock.advance(3601)
    runs = recorder.finished("tick")
    assert len(runs) == 3600
    assert [r.scheduled_for for r in runs] == [START + timedelta(seconds=s) for s in range(1, 3601)]
    assert all(r.started_at == r.scheduled_for for r in runs)
    assert recorder.skipped("tick") == [] and recorder.missed("tick") == []


async def test_run_immediately_fires_at_start(scheduler, clock, recorder):
    scheduler.add_job(noop, every="1h", id="sync", run_immediately=True)
    async with scheduler:
        await clock.advance(0)
        assert [r.scheduled_for for r in recorder.finished("sync")] == [START]
        await clock.advance(3600)
    assert len(recorder.finished("sync")) == 2


async def test_start_in_the_past_keeps_its_phase_without_an_immediate_run(
    scheduler, clock, recorder
):
    """Occurrences before the job was first seen are not misses (APScheduler 3 behaviour)."""
    start = START - timedelta(hours=6, minutes=24)  # phase :36
    scheduler.add_job(noop, every="1h", id="hourly", start=start)
    async with scheduler:
        assert scheduler.get("hourly").next_run_time == START + timedelta(minutes=36)
        await clock.advance(3600)
    assert [r.scheduled_for for r in recorder.finished("hourly")] == [START + timedelta(minutes=36)]
    assert recorder.missed("hourly") == []


async def test_start_and_end_bound_an_interval(scheduler, clock, recorder):
    scheduler.add_job(
        noop,
        every="1m",
        id="bounded",
        start=START + timedelta(minutes=10),
        end=START + timedelta(minutes=13),
    )
    async with scheduler:
        await clock.advance(3600)
    assert [r.scheduled_for for r in recorder.finished("bounded")] == [
        START + timedelta(minutes=m) for m in (11, 12, 13)
    ]
    assert scheduler.get("bounded").state is JobState.FINISHED


async def test_cron_job_in_its_timezone(clock, recorder_factory):
    scheduler = Scheduler(timezone="Europe/Berlin", clock=clock)
    recorder = recorder_factory(scheduler)
    scheduler.add_job(noop, cron="30 2 * * *", id="nightly")
    async with scheduler:
        await clock.advance(3 * 86400)
    assert [r.scheduled_for.isoformat() for r in recorder.finished("nightly")] == [
        "2026-01-06T01:30:00+00:00",
        "2026-01-07T01:30:00+00:00",
        "2026-01-08T01:30:00+00:00",
    ]


async def _berlin_days(recorder_factory, first_day: datetime) -> list[Run]:
    """Run a nightly and an hourly cron job in Berlin for two days from noon on first_day."""
    clock = VirtualClock(first_day.replace(hour=12, tzinfo=UTC))
    scheduler = Scheduler(timezone="Europe/Berlin", clock=clock)
    recorder = recorder_factory(scheduler)
    scheduler.add_job(noop, cron="30 2 * * *", id="nightly")
    scheduler.add_job(noop, cron="0 * * * *", id="hourly")
    async with scheduler:
        await clock.advance(2 * 86400)
    runs = recorder.finished()
    assert len({(r.job_id, r.scheduled_for) for r in runs}) == len(runs)  # nothing twice
    return runs


async def test_cron_job_runs_once_right_after_a_dst_gap(recorder_factory):
    runs = await _berlin_days(recorder_factory, datetime(2026, 3, 28))
    assert [r.scheduled_for for r in runs if r.job_id == "nightly"] == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 03:00 CEST: the first instant after the gap
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]
    sunday = [r for r in runs if r.job_id == "hourly" and r.scheduled_for.day == 29]
    assert len(sunday) == 24  # every real hour of the (UTC) day, the skipped one included


async def test_cron_job_runs_once_in_a_repeated_hour(recorder_factory):
    runs = await _berlin_days(recorder_factory, datetime(2026, 10, 24))
    assert [r.scheduled_for for r in runs if r.job_id == "nightly"] == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),  # 02:30 CEST, the first of the two
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]
    local = [r.scheduled_for.astimezone(ZoneInfo("Europe/Berlin")) for r in runs]
    long_day = [
        t.strftime("%H%z")
        for t, r in zip(local, runs, strict=True)
        if r.job_id == "hourly" and t.day == 25
    ]
    assert len(long_day) == 25
    assert long_day.count("02+0200") == long_day.count("02+0100") == 1  # both folds run


async def test_at_job_runs_once_then_finishes(scheduler, clock, recorder):
    scheduler.add_job(noop, at=START + timedelta(minutes=5), id="launch")
    async with scheduler:
        await clock.advance(3600)
    assert [r.scheduled_for for r in recorder.finished("launch")] == [START + timedelta(minutes=5)]
    assert scheduler.get("launch").state is JobState.FINISHED
    assert scheduler.get("launch").next_run_time is None


async def test_naive_at_is_read_in_the_job_timezone(scheduler, clock, recorder):
    job = scheduler.add_job(noop, at=datetime(2026, 1, 5, 14, 0), timezone="Europe/Berlin", id="x")
    async with scheduler:
        assert job.next_run_time == datetime(2026, 1, 5, 13, 0, tzinfo=UTC)


async def test_jitter_delays_within_bounds_and_is_reproducible_with_a_seed(clock, recorder_factory):
    starts = []
    for _ in range(2):
        c = VirtualClock(START)
        scheduler = Scheduler(timezone="UTC", clock=c, seed=42)
        recorder = recorder_factory(scheduler)
        scheduler.add_job(noop, every="1m", id="j", jitter="20s")
        async with scheduler:
            await c.advance(630)
        runs = recorder.finished("j")
        delays = [(r.started_at - r.scheduled_for).total_seconds() for r in runs]
        assert len(runs) == 10
        assert all(0 <= d <= 20 for d in delays)
        assert len(set(delays)) > 5  # drawn per run
        assert [r.scheduled_for for r in runs] == [
            START + timedelta(minutes=m) for m in range(1, 11)
        ]
        starts.append(delays)
    assert starts[0] == starts[1]


async def test_soft_start_spreads_jobs_due_at_startup(scheduler, clock, recorder):
    for n in range(4):
        scheduler.add_job(noop, every="1h", id=f"job{n}", run_immediately=True, soft_start="40s")
    scheduler.add_job(noop, every="1h", id="eager", run_immediately=True)
    async with scheduler:
        await clock.advance(60)
    starts = sorted(
        (r.started_at - START).total_seconds()
        for r in recorder.finished()
        if r.job_id.startswith("job")
    )
    assert starts == [0, 10, 20, 30]
    assert recorder.finished("eager")[0].started_at == START


async def test_next_times(scheduler, clock):
    scheduler.add_job(noop, cron="0 9 * * mon-fri", id="weekday", timezone="Europe/Berlin")
    scheduler.add_job(noop, every="90m", id="every")
    times = scheduler.next_times("weekday", 3, after=datetime(2026, 1, 9, 12, tzinfo=UTC))
    assert [t.isoformat() for t in times] == [
        "2026-01-12T09:00:00+01:00",
        "2026-01-13T09:00:00+01:00",
        "2026-01-14T09:00:00+01:00",
    ]
    assert scheduler.next_times("every", 2) == [
        START + timedelta(minutes=90),
        START + timedelta(minutes=180),
    ]


async def test_a_jittered_at_job_runs_before_it_finishes(scheduler, clock, recorder):
    scheduler.add_job(noop, at=START + timedelta(minutes=5), id="launch", jitter="30s")
    async with scheduler:
        await clock.advance(5 * 60)
        if not recorder.finished("launch"):  # waiting out its jitter: not finished yet
            assert scheduler.get("launch").state is JobState.SCHEDULED
        await clock.advance(31)
    (run,) = recorder.finished("launch")
    assert 0 <= (run.started_at - run.scheduled_for).total_seconds() <= 30
    assert scheduler.get("launch").state is JobState.FINISHED
