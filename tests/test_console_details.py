"""The one details screen the console keeps: each job opened on it shows that job and nothing of
the one before, and going back and forth does not rebuild the footers."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Sparkline, Static
from textual.widgets._footer import FooterKey

from jobtui.console.app import JobtuiApp
from jobtui.console.screens.detail import JobDetailScreen
from jobtui.console.screens.main import MainScreen
from jobtui.console.screens.why import WhyScreen
from jobtui.control.controller import LocalController

from .conftest import Recorder
from .test_console import make_app, select, write

JOBS = """
[scheduler]
timezone = "UTC"

[jobs.alpha]
name = "Alpha reports"
command = "echo alpha-output; echo alpha-broke >&2; exit 3"
every = "1h"

[jobs.beta]
command = "echo beta-output; sleep 30"
every = "2h"
"""


def text(screen: JobDetailScreen, widget_id: str) -> str:
    return str(screen.query_one(f"#{widget_id}", Static).render())


def history_text(screen: JobDetailScreen) -> str:
    table = screen.query_one("#history", DataTable)
    return "\n".join(
        " ".join(str(cell) for cell in table.get_row_at(row)) for row in range(table.row_count)
    )


async def open_details(pilot: Any, app: JobtuiApp, job_id: str) -> JobDetailScreen:
    await select(pilot, app, job_id)
    await pilot.press("enter")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, JobDetailScreen)
    await screen.workers.wait_for_complete()  # the history is read in a thread
    await pilot.pause()
    return screen


async def test_a_second_job_opened_shows_that_job_and_nothing_of_the_first(tmp_path: Path) -> None:
    app = make_app(write(tmp_path / "jobs.toml", JOBS))
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 40)) as pilot:
        app.scheduler.run_now("alpha")
        await recorder.wait_for(lambda: recorder.finished("alpha"))
        first = await open_details(pilot, app, "alpha")
        assert "Alpha reports" in text(first, "config")
        assert "failed" in text(first, "run-title")
        assert "alpha-output" in "\n".join(first.query_one("#log").lines)
        assert "failed" in history_text(first)
        assert first.query_one("#durations", Sparkline).display  # a finished run's duration
        await pilot.press("escape")
        await pilot.pause()

        app.scheduler.run_now("beta")
        await recorder.wait_for(
            lambda: any(
                "beta-output" in line
                for run in app.scheduler.get("beta").active
                for line in app.controller.log("beta", run.run_id)[0]
            )
        )
        second = await open_details(pilot, app, "beta")
        assert second is first  # the screen is kept, not composed again
        config = text(second, "config")
        assert config.startswith("beta") and "Alpha" not in config and "alpha" not in config
        assert "Running" in text(second, "run-title") and "failed" not in text(second, "run-title")
        log = "\n".join(second.query_one("#log").lines)
        assert "beta-output" in log and "alpha" not in log
        assert "failed" not in history_text(second) and "alpha" not in history_text(second)
        assert not second.query_one("#durations", Sparkline).display  # no duration yet
        assert app.focused is not None and app.focused.id == "log"

        await pilot.press("w")
        await pilot.pause()
        assert isinstance(app.screen, WhyScreen) and app.screen.job_id == "beta"
        await app.screen.workers.wait_for_complete()
        await pilot.pause()
        assert "Why: beta" in str(app.screen.query_one(Static).render())
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is second

        await pilot.press("escape")  # and back to the first job, at its history this time
        await pilot.pause()
        await select(pilot, app, "alpha")
        await pilot.press("h")
        await pilot.pause()
        await second.workers.wait_for_complete()
        await pilot.pause()
        assert "Alpha reports" in text(second, "config") and "failed" in history_text(second)
        assert "beta-output" not in "\n".join(second.query_one("#log").lines)
        assert app.focused is not None and app.focused.id == "history"


async def test_a_job_removed_while_its_details_are_open_leaves_nothing_for_the_next(
    tmp_path: Path,
) -> None:
    app = make_app(write(tmp_path / "jobs.toml", JOBS))
    async with app.run_test(size=(140, 40)) as pilot:
        screen = await open_details(pilot, app, "alpha")
        app.remove_job("alpha")
        await app.workers.wait_for_complete()  # the reload after the removal
        await pilot.pause()
        assert "This job was removed." in text(screen, "run-title")
        await pilot.press("escape")
        await pilot.pause()
        again = await open_details(pilot, app, "beta")
        assert again is screen
        assert "removed" not in text(again, "run-title")
        assert "No run yet" in text(again, "run-title")
        assert text(again, "config").startswith("beta") and "Alpha" not in text(again, "config")
        assert "Next runs" in text(again, "next")


async def test_a_history_read_for_the_job_shown_before_is_not_shown_for_the_next(
    tmp_path: Path, monkeypatch: Any
) -> None:
    app = make_app(write(tmp_path / "jobs.toml", JOBS))
    recorder = Recorder(app.scheduler)
    release, returned = threading.Event(), threading.Event()
    history = LocalController.history

    def slow_for_alpha(self: LocalController, job_id: str, limit: int = 100) -> Any:
        runs = history(self, job_id, limit)
        if job_id == "alpha":
            release.wait(10)
            returned.set()
        return runs

    monkeypatch.setattr(LocalController, "history", slow_for_alpha)
    async with app.run_test(size=(140, 40)) as pilot:
        app.scheduler.run_now("alpha")
        await recorder.wait_for(lambda: recorder.finished("alpha"))
        await select(pilot, app, "alpha")
        await pilot.press("enter")
        await pilot.pause()
        await pilot.press("escape")
        second = await open_details(pilot, app, "beta")
        release.set()
        deadline = time.monotonic() + 10
        while not returned.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await pilot.pause()
        await pilot.pause()
        assert second.job_id == "beta"
        assert history_text(second) == ""  # alpha's failed run is not shown as beta's


async def test_going_to_the_details_and_back_keeps_both_footers(tmp_path: Path) -> None:
    app = make_app(write(tmp_path / "jobs.toml", JOBS))
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        main = app.screen
        assert isinstance(main, MainScreen)
        keys = list(main.query(FooterKey))
        assert [key.description for key in keys][:2] == ["Run now", "Pause"]
        details = await open_details(pilot, app, "alpha")
        detail_keys = list(details.query(FooterKey))
        await pilot.press("escape")
        await pilot.pause()
        assert list(main.query(FooterKey)) == keys  # the same widgets: not composed again
        await open_details(pilot, app, "beta")
        assert list(details.query(FooterKey)) == detail_keys
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("p")  # what the keys say does change: Pause becomes Resume
        await pilot.pause()
        await pilot.pause()
        assert "Resume" in [key.description for key in main.query(FooterKey)]
