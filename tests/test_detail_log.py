"""The details screen's log with a huge run output: it opens at once on the newest lines."""

from __future__ import annotations

import time

from jobtui.console.screens.detail import JobDetailScreen
from jobtui.control.controller import LocalController

from .conftest import Recorder
from .test_console import make_app, select, write

JOBS = """
[scheduler]
timezone = "UTC"

[jobs.chatty]
command = "seq 1 400000"
every = "1h"
"""


async def test_the_detail_screen_opens_fast_on_a_huge_log_and_shows_its_end(tmp_path, monkeypatch):
    app = make_app(write(tmp_path / "jobs.toml", JOBS))
    recorder = Recorder(app.scheduler)
    read: list[int] = []
    log = LocalController.log

    def counting(self, job_id, run_id, start=0, limit=5000):  # type: ignore[no-untyped-def]
        lines, following = log(self, job_id, run_id, start, limit)
        read.append(len(lines))
        return lines, following

    monkeypatch.setattr(LocalController, "log", counting)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, app, "chatty")
        await pilot.press("r")
        await recorder.wait_for(lambda: recorder.finished("chatty"))
        began = time.perf_counter()
        await pilot.press("enter")
        await pilot.pause()
        took = time.perf_counter() - began
        assert isinstance(app.screen, JobDetailScreen)
        shown = app.screen.query_one("#log").lines
        assert shown[-1] == "400000"
        assert len(shown) <= 5000
        assert max(read) <= 5000  # a bounded tail was read, not the whole log
        assert took < 1.0, f"the details screen took {took:.2f} s to open"
