"""The console's controller, without Textual: actions reach the scheduler, views follow runs,
progress and pauses on the virtual clock, change notices arrive, and views are plain data."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobtui import JobState, Outcome, Run, VirtualClock
from jobtui.config import load
from jobtui.control.controller import (
    JobsChanged,
    JobView,
    LocalController,
    Notice,
    ReloadFinished,
    RunFailed,
)
from jobtui.host import Host

from .conftest import START, Recorder
from .test_console import JOBS, write

PLAIN = (str, int, float, bool, type(None), enum.Enum)


@pytest.fixture
def jobs_file(tmp_path: Path) -> Path:
    return write(tmp_path / "jobs.toml", JOBS)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
async def host(jobs_file: Path, clock: VirtualClock) -> AsyncIterator[Host]:
    host = Host(load(jobs_file), clock=clock)
    yield host
    await host.stop(0)


@pytest.fixture
def controller(host: Host) -> LocalController:
    return LocalController(host)


@pytest.fixture
def notices(controller: LocalController) -> list[Notice]:
    seen: list[Notice] = []
    controller.subscribe(seen.append)
    return seen


def assert_plain(value: object) -> None:
    if isinstance(value, dict):
        for item in value.values():
            assert_plain(item)
    elif isinstance(value, list | tuple):
        for item in value:
            assert_plain(item)
    else:
        assert isinstance(value, PLAIN), f"{value!r} is not plain data"


async def test_views_list_every_job_as_plain_data(host, controller):
    await host.start(watch=False)
    views = {view.id: view for view in controller.jobs()}
    assert list(views) == ["backup", "sync", "slow", "broken", "held"]  # the file's order
    backup = views["backup"]
    assert backup.name == "Nightly [red]backup[/red]"
    assert backup.trigger == "at 02:30 every day" and backup.timezone == "UTC"
    assert backup.target == "echo backing up"
    assert views["sync"].next_run_time == START + timedelta(minutes=10)
    held = views["held"]
    assert held.state is JobState.PAUSED and held.paused and held.next_run_time is None
    record = dataclasses.asdict(backup)
    assert_plain(record)
    assert json.loads(json.dumps(record))["trigger"] == "at 02:30 every day"


async def test_pause_and_resume_reach_the_scheduler_and_the_view(host, controller, notices):
    await host.start(watch=False)
    controller.pause("sync")
    assert host.scheduler.get("sync").paused
    view = controller.job("sync")
    assert view is not None and view.state is JobState.PAUSED
    assert view.pause_reason == "paused from the console"
    assert JobsChanged(("sync",)) in notices
    controller.resume("sync")
    assert controller.job("sync").state is JobState.SCHEDULED  # type: ignore[union-attr]


async def test_progress_rebuilds_only_the_running_jobs_view(host, controller, clock, notices):
    async def copy(run: Run) -> None:
        for step in range(4):
            run.progress = step / 4
            run.status_message = f"copying item {step}"
            run.log(f"item {step}")
            await clock.sleep(1)

    host.scheduler.add_job(copy, id="copy", every="1h")
    await host.start(watch=False)
    before = {view.id: view for view in controller.jobs()}
    controller.run_now("copy")
    await clock.advance(2)
    after = {view.id: view for view in controller.jobs()}
    (running,) = after["copy"].running
    assert after["copy"].state is JobState.RUNNING
    assert running.progress == 0.5 and running.status_message == "copying item 2"
    assert running.manual and running.elapsed(controller.now()) == 2
    assert controller.log("copy", running.run_id) == (("item 0", "item 1", "item 2"), 3)
    assert controller.log("copy", running.run_id, start=2) == (("item 2",), 3)
    assert controller.log("copy", running.run_id, start=3) == ((), 3)  # nothing new yet
    assert controller.log("copy", running.run_id, start=-1, limit=1) == (("item 2",), 3)
    # Jobs no event touched keep the very same view object: nothing was converted again.
    assert all(after[job_id] is before[job_id] for job_id in before if job_id != "copy")
    await clock.advance(2)
    done = controller.job("copy")
    assert done is not None and not done.running and done.last_run is not None
    assert done.last_run.outcome is Outcome.SUCCEEDED and done.last_run.duration == 4
    assert controller.summary().running == 0
    assert JobsChanged(("copy",)) in notices


async def test_a_failure_is_noticed_counted_and_kept_in_history(host, controller, notices):
    async def boom() -> None:
        raise RuntimeError("disk full\nand more")

    host.scheduler.add_job(boom, id="boom")
    await host.start(watch=False)
    recorder = Recorder(host.scheduler)
    controller.run_now("boom")
    await recorder.wait_for(lambda: recorder.finished("boom"))
    assert RunFailed("boom", "RuntimeError: disk full") in notices
    assert controller.summary().failed_24h == 1
    (record,) = controller.history("boom")
    assert record["outcome"] == "failed" and record["error_message"] == "disk full\nand more"
    assert controller.job("boom").last_run.error_line == "RuntimeError: disk full"  # type: ignore[union-attr]


async def test_the_clock_and_next_times_follow_the_virtual_clock(host, controller, clock):
    await host.start(watch=False)
    assert controller.now() == START.timestamp()
    await clock.advance(9 * 60)
    assert controller.now() == START.timestamp() + 9 * 60
    assert controller.next_times("sync", 2) == [
        START + timedelta(minutes=10),
        START + timedelta(minutes=20),
    ]
    summary = controller.summary()
    assert (summary.jobs, summary.paused, summary.config_name) == (5, 1, "jobs.toml")


async def test_remove_drops_the_job_and_its_table(host, controller, jobs_file, notices):
    await host.start(watch=False)
    controller.remove("sync")
    assert "sync" not in host.scheduler
    assert [view.id for view in controller.jobs()] == ["backup", "slow", "broken", "held"]
    assert controller.job("sync") is None
    assert "[jobs.sync]" not in jobs_file.read_text()
    assert "sync" not in load(jobs_file).jobs


async def test_reload_reports_its_problems(host, controller, jobs_file, notices):
    await host.start(watch=False)
    write(jobs_file, JOBS.replace('every = "10m"', 'every = "10 minutes please"'))
    assert not await controller.reload()
    assert any('job "sync", key "every"' in problem for problem in controller.reload_problems)
    assert any(isinstance(n, ReloadFinished) and not n.ok for n in notices)
    write(jobs_file, JOBS.replace('every = "10m"', 'every = "20m"'))
    assert await controller.reload()
    assert controller.reload_problems == ()
    assert ReloadFinished(True, ()) in notices
    assert controller.job("sync").trigger == "every 20m"  # type: ignore[union-attr]


def test_a_job_view_is_frozen() -> None:
    assert dataclasses.fields(JobView)
    assert JobView.__dataclass_params__.frozen  # type: ignore[attr-defined]


async def test_a_queued_occurrence_moves_the_countdown_without_an_event(tmp_path, clock):
    # The scheduler moves a queued job's next time without telling anyone; the view must not
    # keep counting down to a time that has passed.
    jobs = write(
        tmp_path / "jobs.toml",
        '[scheduler]\ntimezone = "UTC"\n'
        '[jobs.q]\ncommand = "sleep 30"\nevery = "10s"\noverlap = "queue"\n',
    )
    host = Host(load(jobs), clock=clock)
    controller = LocalController(host)
    recorder = Recorder(host.scheduler)
    await host.start(watch=False)
    try:
        await clock.advance(10)
        await recorder.wait_for(lambda: recorder.started("q"))
        controller.jobs()  # a view is built while the run goes
        await clock.advance(10)  # the next occurrence comes while it runs: it is queued
        job = host.scheduler.get("q")
        # The loop handles the occurrence in its own time (a loaded machine may be slower than
        # the advance); what matters is that the view then follows without an event.
        await recorder.wait_for(lambda: job.next_fire is not None and job.next_fire > clock.wall())
        (view,) = controller.jobs()
        assert view.next_fire == host.scheduler.get("q").next_fire
        assert view.next_fire is not None and view.next_fire > clock.wall()
    finally:
        await host.stop(0)


async def test_giving_up_on_awaiting_a_console_run_leaves_it_running(host, controller, clock):
    """A run started from the console (or a daemon's socket) has no owner awaiting it: code
    that awaits it from running_runs() with a timeout must not cancel the user's run."""

    async def copy(run: Run) -> None:
        await clock.sleep(10)

    host.scheduler.add_job(copy, id="copy", every="1h")
    await host.start(watch=False)
    controller.run_now("copy")
    await clock.advance(1)
    (run,) = host.scheduler.running_runs()
    waiter = asyncio.ensure_future(run)
    await clock.advance(1)
    waiter.cancel()
    await clock.advance(1)
    assert run.outcome is None and run in host.scheduler.running_runs()
    await clock.advance(10)
    assert run.outcome is Outcome.SUCCEEDED


async def test_why_of_a_job_removed_while_it_is_asked_is_none(host, controller, monkeypatch):
    """why() runs in a thread worker: the loop may remove the job between its look-ups, and
    an exception there would end the console."""
    await host.start(watch=False)
    next_times = host.scheduler.next_times

    def removed_meanwhile(job_id: str, n: int = 5) -> list[Any]:
        host.scheduler.remove(job_id)
        return next_times(job_id, n)

    monkeypatch.setattr(host.scheduler, "next_times", removed_meanwhile)
    assert controller.why("sync") is None


async def test_jobs_sharing_a_trigger_or_options_each_show_their_own_definition(tmp_path, clock):
    # Opening builds every view at once, working out the words of each set of shared parts
    # (trigger, options, target, zone) once: a job differing in one part shows its own.
    jobs = write(
        tmp_path / "jobs.toml",
        '[scheduler]\ntimezone = "UTC"\n'
        '[jobs.a]\ncommand = "echo a"\nevery = "1h"\n'
        '[jobs.b]\ncommand = "echo b"\nevery = "1h"\n'
        '[jobs.c]\ncommand = ["echo", "c"]\nevery = "1h"\n'
        '[jobs.d]\ncommand = "echo a"\nevery = "1h"\ntimeout = "5m"\n'
        '[jobs.e]\ncommand = "echo a"\nevery = "1h"\ntimezone = "Europe/Berlin"\n'
        '[jobs.f]\ncommand = "echo a"\ncron = "0 * * * *"\n'
        '[jobs.g]\ncommand = "echo a"\nevery = "1h"\n',
    )
    host = Host(load(jobs), clock=clock)
    try:
        shown = {
            view.id: (view.target, view.trigger, view.timezone, view.options)
            for view in LocalController(host).jobs()
        }
    finally:
        await host.stop(0)
    assert shown == {
        "a": ("echo a", "every 1h", "UTC", ()),
        "b": ("echo b", "every 1h", "UTC", ()),
        "c": ("echo c", "every 1h", "UTC", ()),
        "d": ("echo a", "every 1h", "UTC", (("timeout", "5m"),)),
        "e": ("echo a", "every 1h", "Europe/Berlin", ()),
        "f": ("echo a", "every hour at :00", "UTC", ()),
        "g": ("echo a", "every 1h", "UTC", ()),
    }
