"""The console's side of issue 12: the why panel of a job's details, and hook failures shown."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from jobtui import VirtualClock
from jobtui.config import load
from jobtui.console.app import JobtuiApp
from jobtui.console.screens.detail import JobDetailScreen
from jobtui.console.screens.why import WhyScreen
from jobtui.console.widgets.job_table import JobTable

from .conftest import START, Recorder
from .test_console import write

JOBS = """
[scheduler]
timezone = "UTC"

[jobs.broken]
command = "echo 'disk full' >&2; exit 3"
every = "1h"
on_failure = "echo cannot page anyone >&2; exit 4"

[jobs.held]
command = "true"
every = "1h"
paused = true
"""


def make_app(path: Path) -> JobtuiApp:
    app = JobtuiApp(load(path), clock=VirtualClock(START), watch_file=False, grace=0)
    app.host.alerts.attempts = 1
    return app


async def open_why(pilot, app: JobtuiApp, job_id: str) -> str:
    table = app.screen.query_one(JobTable)
    table.move_cursor(row=table.get_row_index(job_id))
    await pilot.press("enter")
    await pilot.pause()
    assert isinstance(app.screen, JobDetailScreen)
    await pilot.press("w")
    await pilot.pause()
    assert isinstance(app.screen, WhyScreen)
    await app.screen.workers.wait_for_complete()
    await pilot.pause()
    return str(app.screen.query_one(Static).render())


async def test_w_in_the_details_explains_the_runs_and_the_next_one(tmp_path: Path) -> None:
    app = make_app(write(tmp_path / "jobs.toml", JOBS))
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 40)) as pilot:
        app.scheduler.run_now("broken")
        await recorder.wait_for(lambda: recorder.finished("broken"))
        shown = await open_why(pilot, app, "broken")
        assert "ran by hand at 12:00 (failed in 0s: ExitStatus: exited with status 3" in shown
        assert "next: today 13:00 UTC (in 1h)" in shown
        await pilot.press("w")
        await pilot.pause()
        assert isinstance(app.screen, JobDetailScreen)
        await pilot.press("escape")
        held = await open_why(pilot, app, "held")
        assert "paused: paused = true in jobs.toml" in held
        assert "next: none while paused (resume it to run again)" in held


async def test_a_hook_that_fails_pops_a_warning_and_the_run_keeps_its_outcome(
    tmp_path: Path,
) -> None:
    app = make_app(write(tmp_path / "jobs.toml", JOBS))
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 30)) as pilot:
        app.scheduler.run_now("broken")
        await recorder.wait_for(lambda: recorder.finished("broken"))
        await recorder.wait_for(lambda: any(n.title == "Hook failed" for n in app._notifications))
        await pilot.pause()
        [notice] = [n for n in app._notifications if n.title == "Hook failed"]
        assert notice.message == (
            "broken: on_failure: exited with status 4: cannot page anyone (after 1 attempt)"
        )
        assert recorder.outcomes("broken") == ["failed"]
