"""Occurrences due at the same instant start in the order their jobs were planned, each once.

The heaps keep one entry per deadline with the jobs waiting for it (engine/heaps.py: a tie
no longer walks the heap); these pin what the one-entry-per-job heap did."""

from __future__ import annotations

from datetime import timedelta

from jobtui import Scheduler, VirtualClock
from jobtui.engine.heaps import DueHeaps

from .conftest import START


async def test_jobs_due_together_start_in_the_order_they_were_planned(scheduler, clock, recorder):
    async def body() -> None:
        return None

    for name in "abcde":
        scheduler.add_job(body, every="1m", id=name)
    async with scheduler:
        await clock.advance(60)
        assert [run.job_id for run in recorder.started()] == list("abcde")
        # Re-planned (paused, then resumed) it waits behind the others for the same instant,
        # and the entry it had before is dropped: it runs once, last.
        scheduler.pause("b")
        scheduler.resume("b")
        await clock.advance(60)
    second = [run.job_id for run in recorder.started()][5:]
    assert second == list("acdeb")
    assert all(run.scheduled_ts == (START + timedelta(minutes=2)).timestamp()
               for run in recorder.started()[5:])  # fmt: skip


async def test_an_earlier_job_added_while_the_scheduler_sleeps_runs_on_time(
    scheduler, clock, recorder
):
    async def body() -> None:
        return None

    scheduler.add_job(body, every="1h", id="hourly")
    scheduler.add_job(body, at=START + timedelta(minutes=30), id="at")
    async with scheduler:
        await clock.advance(60)
        scheduler.add_job(body, at=START + timedelta(minutes=2), id="soon")
        await clock.advance(60)
        assert [run.job_id for run in recorder.started()] == ["soon"]
        await clock.advance(3600)
    assert [run.job_id for run in recorder.started()] == ["soon", "at", "hourly"]
    assert recorder.started()[0].started_ts == (START + timedelta(minutes=2)).timestamp()


def test_the_heaps_give_back_due_jobs_by_deadline_then_first_in_first_out():
    scheduler = Scheduler(timezone="UTC", clock=VirtualClock(START))

    async def body() -> None:
        return None

    jobs = {name: scheduler.add_job(body, at=START, id=name) for name in "abcdef"}
    woken: list[str] = []
    heaps = DueHeaps(lambda: woken.append("woken"))
    heaps.push_wall(jobs["a"], 20.0)
    heaps.push_wall(jobs["b"], 10.0)
    heaps.push_wall(jobs["c"], 20.0)
    heaps.push_wall(jobs["d"], 10.0)  # a tie with the earliest: no earlier than it, no wake-up
    heaps.push_wall(jobs["e"], 30.0)
    heaps.push_wall(jobs["f"], 20.0)
    heaps.push_wall(jobs["a"], 20.0)  # re-planned: its first entry is stale, it goes last
    assert woken == ["woken", "woken"]  # a, then b: each the earliest when pushed
    assert heaps.delay(wall=5.0, elapsed=0.0, longest=60.0) == 5.0
    assert heaps.pop_due(wall=9.0, elapsed=0.0, jobs=scheduler._jobs) == []
    assert heaps.pop_due(wall=20.0, elapsed=0.0, jobs=scheduler._jobs) == [jobs[n] for n in "bdcfa"]
    scheduler.remove("e")  # a removed job is not given back
    assert heaps.pop_due(wall=99.0, elapsed=0.0, jobs=scheduler._jobs) == []
    assert heaps.delay(wall=99.0, elapsed=0.0, longest=60.0) == 60.0
