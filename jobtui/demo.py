"""Python jobs for the demo jobs.toml: a job with a progress bar, and one that fails at times."""

from __future__ import annotations

import asyncio
import random

from .engine import Run


async def copy_files(run: Run, files: int = 20) -> None:
    """Copies make-believe files, reporting progress and a status message for each."""
    for number in range(files):
        run.progress = number / files
        run.status_message = f"copying file {number + 1} of {files}"
        await asyncio.sleep(0.5)
    run.progress = 1.0
    run.log(f"copied {files} files")


def flaky(run: Run) -> None:
    """A plain function (it runs in a thread) that fails two times out of three."""
    if random.random() < 2 / 3:
        raise ConnectionError(f"the server did not answer (attempt {run.attempt})")
    run.log("the server answered")
