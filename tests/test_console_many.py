"""The console's table with many jobs takes shortcuts: it builds the rows on screen before the
rest, and looks at a row again only when its job changed or its countdown can have turned.
Whatever it skips, what is drawn must read as a full rebuild would."""

from __future__ import annotations

import gc
from datetime import UTC
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from jobtui import VirtualClock
from jobtui.config import load
from jobtui.console.app import JobtuiApp
from jobtui.console.widgets.job_table import JobTable
from jobtui.control.bulk import BULK, collector_paused
from jobtui.control.interface import JobView
from jobtui.engine import JobState

from .conftest import START
from .test_console import write

LONG_NAME = "a job named longer than the others"  # with its id, under the most (48)


def many_jobs(folder: Path, count: int) -> Path:
    """``count`` jobs every hour, and one every two days with a long name: it sorts last."""
    parts = ['[scheduler]\ntimezone = "UTC"\n']
    parts += [f'[jobs.j{n:04}]\ncommand = "true"\nevery = "1h"\n' for n in range(count)]
    parts.append(f'[jobs.last]\nname = "{LONG_NAME}"\ncommand = "true"\nevery = "48h"\n')
    return write(folder / "jobs.toml", "\n".join(parts))


def make_app(path: Path, clock: VirtualClock) -> JobtuiApp:
    return JobtuiApp(load(path), clock=clock, watch_file=False, grace=0)


def drawn_lines(table: JobTable) -> list[str]:
    """The table's lines as they are drawn now (the header first)."""
    return [table.render_line(y).text for y in range(table.size.height)]


def drawn_row(table: JobTable, text: str) -> str:
    (line,) = [line for line in drawn_lines(table) if text in line]
    return line


async def test_a_row_never_on_screen_is_drawn_as_it_is_now_when_scrolled_to(tmp_path):
    clock = VirtualClock(START)
    app = make_app(many_jobs(tmp_path, BULK * 2), clock)  # more than are built up front
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(JobTable)
        assert not any(LONG_NAME in line for line in drawn_lines(table))
        app.scheduler.pause("last")
        await clock.advance(1)
        app.refresh_screen()
        await pilot.press("G")
        await pilot.pause()
        row = drawn_row(table, LONG_NAME)
        assert "‖ paused" in row and "paused from the console" not in row  # paused by a call
        assert table.selected_job_id == "last"


async def test_the_columns_fit_a_row_that_was_never_on_screen(tmp_path):
    app = make_app(many_jobs(tmp_path, BULK * 2), VirtualClock(START))
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(JobTable)
        job_column = table.columns[0]
        assert job_column.width >= len(f"{LONG_NAME}  last")  # the widest name, and its id
        await pilot.press("G")
        await pilot.pause()
        assert f"{LONG_NAME}  last" in drawn_row(table, LONG_NAME)


@pytest.mark.parametrize("count", [3, BULK * 2])
async def test_a_far_off_countdown_turns_with_the_minute(tmp_path, count):
    clock = VirtualClock(START)  # 12:00:00; the jobs every hour run first at 13:00:00
    app = make_app(many_jobs(tmp_path, count), clock)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(JobTable)
        assert "13:00:00  in 1h" in drawn_row(table, "j0000")
        for seconds, countdown in [(1, "59m"), (58, "59m"), (2, "58m"), (59, "58m"), (1, "57m")]:
            await clock.advance(seconds)
            app.refresh_screen()
            await pilot.pause()
            assert f"13:00:00  in {countdown} " in drawn_row(table, "j0000"), clock.wall()


async def test_a_countdown_follows_the_clock_set_back(tmp_path):
    clock = VirtualClock(START)
    app = make_app(many_jobs(tmp_path, 3), clock)
    async with app.run_test(size=(140, 30)) as pilot:
        await clock.advance(30 * 60)
        app.refresh_screen()
        await pilot.pause()
        table = app.screen.query_one(JobTable)
        assert "13:00:00  in 30m" in drawn_row(table, "j0000")
        await clock.step_wall(-20 * 60)  # 12:10 by the wall
        app.refresh_screen()
        await pilot.pause()
        assert "13:00:00  in 50m" in drawn_row(table, "j0000")


async def test_the_stamp_drops_its_date_when_the_day_turns(tmp_path):
    path = write(
        tmp_path / "jobs.toml",
        '[scheduler]\ntimezone = "UTC"\n[jobs.late]\ncommand = "true"\nevery = "2h"\n',
    )
    clock = VirtualClock(START.replace(hour=23, minute=59, second=30))  # late: 01:59:30 tomorrow
    app = make_app(path, clock)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(JobTable)
        assert "Jan 06 01:59  in 2h " in drawn_row(table, "late")
        await clock.advance(10)  # the countdown now holds until 00:00:30
        app.refresh_screen()
        await pilot.pause()
        assert "Jan 06 01:59  in 1h 59m" in drawn_row(table, "late")
        await clock.advance(30)  # 00:00:10, the day of the run
        app.refresh_screen()
        await pilot.pause()
        assert "01:59:30  in 1h 59m" in drawn_row(table, "late")


def test_the_collector_runs_again_after_a_bulk_build_even_one_that_failed():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError), collector_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # whoever turned it off keeps it off
    finally:
        gc.enable()


def plain_view(n: int) -> JobView:
    """A job every hour, with nothing running and no runs yet, as a controller shows it."""
    next_run = START.timestamp() + 3600 + n
    return JobView(
        id=f"j{n:04}", name=f"j{n:04}", description="", trigger="every 1h", timezone="UTC",
        target="true", options=(), state=JobState.SCHEDULED, paused=False, pause_reason="",
        disabled_reason="", next_fire=next_run, next_run_ts=next_run, last_run=None, running=(),
    )  # fmt: skip


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield JobTable()


async def test_the_selected_job_stays_selected_when_the_host_column_appears():
    # The Host column appears when hosts come to share the state (an attached console that
    # reconnects to a daemon with a PostgreSQL state): the jobs may change in the same picture.
    app = TableApp()
    async with app.run_test(size=(140, 30)) as pilot:
        table = app.query_one(JobTable)
        now = START.timestamp()
        jobs = [plain_view(n) for n in range(10)]
        table.show(jobs, now, UTC, 0)
        table.move_cursor(5)
        assert table.selected_job_id == "j0005"
        table.show(jobs[1:], now + 1, UTC, 1, hosts=True)  # the first job went meanwhile
        await pilot.pause()
        assert table.selected_job_id == "j0005"
        assert "Host" in drawn_lines(table)[0]
