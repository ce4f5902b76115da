"""Applying an edited jobs.toml to a running scheduler."""

from __future__ import annotations

import textwrap
from datetime import timedelta

from jobtui.config import Reloader, load

from .conftest import START


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(0o644)


async def test_a_changed_job_keeps_its_state_and_gets_a_new_next_time(tmp_path, clock):
    path = tmp_path / "jobs.toml"
    write(
        path,
        """
        [scheduler]
        timezone = "UTC"
        [jobs.keep]
        command = "true"
        every = "1h"
        [jobs.change]
        command = "true"
        every = "1h"
        retries = 3
        """,
    )
    config = load(path)
    scheduler = config.make_scheduler(clock=clock)
    reloader = Reloader(scheduler, config)
    async with scheduler:
        keep, change = scheduler.get("keep"), scheduler.get("change")
        change.run_count = 5  # as if it had run before
        write(
            path,
            """
            [scheduler]
            timezone = "UTC"
            [jobs.keep]
            command = "true"
            every = "1h"
            [jobs.change]
            command = "echo changed"
            cron = "30 * * * *"
            """,
        )
        assert await reloader.reload()
        assert scheduler.get("keep") is keep and scheduler.get("change") is change
        assert change.run_count == 5
        assert change.target == "echo changed"
        assert change.options.retries == 0  # removed from the file: back to the default
        assert change.next_run_time == START + timedelta(minutes=30)
        assert keep.next_run_time == START + timedelta(hours=1)
