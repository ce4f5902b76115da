"""The state store under faults: a crash mid-run, a locked or deleted database, a full disk."""

from __future__ import annotations

import signal

from jobtui.config import load
from jobtui.console.app import JobtuiApp
from jobtui.console.widgets.job_table import JobTable
from jobtui.host import open_store

from .test_cli import Headless, write


def kill_mid_run(config) -> None:
    """Start `jobtui --headless`, wait until the job's run is going, SIGKILL jobtui."""
    first = Headless(config)
    try:
        first.wait_for(lambda ev: any(e["event"] == "run_started" for e in ev))
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()


async def test_a_run_left_by_a_killed_jobtui_shows_as_abandoned_in_the_table(tmp_path):
    config = write(
        tmp_path / "jobs.toml",
        """
        [jobs.dump]
        command = "sleep 300"
        every = "1h"
        run_immediately = true
        """,
    )
    kill_mid_run(config)
    loaded = load(config)
    app = JobtuiApp(loaded, store=open_store(loaded), watch_file=False, grace=0)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        row = " ".join(app.screen.query_one(JobTable).rows_text()["dump"])
        assert "☠" in row and "↷" not in row  # abandoned, not skipped
        # The killed run's occurrence fired already: it does not come round again.
        assert app.scheduler.get("dump").active == []
