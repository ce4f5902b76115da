"""jobs.toml made unreadable, deleted and put back while jobtui runs: said, survived, picked up."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtui import VirtualClock
from jobtui.config import load
from jobtui.console.app import JobtuiApp

from .conftest import START
from .test_cli import JOBTUI, Headless, finished, write

BASE = """
[jobs.tick]
command = "true"
every = "1s"
"""
ADDED = BASE + '\n[jobs.added]\ncommand = "true"\nevery = "1s"\n'
# Root reads a mode-000 file regardless; without these two capabilities it is refused, as any
# user would be.
NO_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder another user can search (pytest's own are 0700 under root)."""
    with tempfile.TemporaryDirectory() as name:
        os.chmod(name, 0o755)
        yield Path(name)


async def until(pilot, predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.05)  # the watcher looks at the file twice a second (real time)


async def test_the_console_survives_an_unreadable_deleted_and_restored_jobs_toml(
    folder, monkeypatch
):
    config = write(folder / "jobs.toml", BASE)
    app = JobtuiApp(load(config), clock=VirtualClock(START), grace=0)
    async with app.run_test(size=(140, 30)) as pilot:
        banner = app.screen.query_one("#banner")

        def shown() -> str:
            return str(banner.render()) if banner.display else ""

        # Root reads a mode-000 file anyway. Switching this whole process to another user
        # made Textual's lazy imports fail now and then (nobody cannot read root's Python), so
        # the read fails as it does for any other user, and the real binary is tested without
        # root's override below.
        real_read_bytes = Path.read_bytes

        def read_bytes(path: Path) -> bytes:
            if path == config and not path.stat().st_mode & 0o444:
                raise PermissionError(13, "Permission denied", str(path))
            return real_read_bytes(path)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
        config.chmod(0o000)
        await until(pilot, lambda: "Permission denied" in shown())
        await pilot.press("ctrl+r")  # a reload by hand must not end the console either
        await pilot.pause()
        assert app.is_running and "tick" in app.scheduler
        # Said as what happened: the file is fine, jobtui cannot read it.
        assert f"{config} cannot be read; the previous jobs keep running" in shown()
        assert "does not validate" not in shown()

        config.unlink()
        await until(pilot, lambda: f"{config} is gone; the previous jobs" in shown())
        assert "tick" in app.scheduler and "does not validate" not in shown()

        write(config, ADDED)
        await until(pilot, lambda: "added" in app.scheduler)
        await until(pilot, lambda: not banner.display)  # the redraw after the reload


def test_check_says_an_unreadable_jobs_toml_cannot_be_read(folder):
    config = write(folder / "jobs.toml", BASE)
    config.chmod(0o000)
    done = subprocess.run(
        [*NO_OVERRIDE, *JOBTUI, "check", str(config)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert f"{config}: cannot read it: Permission denied" in done.stderr
    assert "Traceback" not in done.stderr


class HeadlessWithout(Headless):
    """`jobtui --headless` as root without the capabilities that override file modes."""

    def __init__(self, path: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*NO_OVERRIDE, *JOBTUI, str(path), "--headless", "--log-format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()


def failures(events: list[dict]) -> list[str]:
    return [e.get("problem", "") for e in events if e["event"] == "reload_failed"]


def test_headless_reports_an_unreadable_or_deleted_jobs_toml_and_picks_it_up_again(folder):
    config = write(folder / "jobs.toml", BASE)
    headless = HeadlessWithout(config)
    try:
        headless.wait_for(lambda ev: finished(ev, "tick"))
        config.chmod(0o000)
        events = headless.wait_for(lambda ev: any("Permission denied" in p for p in failures(ev)))
        assert any(str(config) in p and "cannot read it" in p for p in failures(events))
        seen = len(finished(events, "tick"))
        headless.wait_for(lambda ev: len(finished(ev, "tick")) > seen)  # the old jobs go on

        config.unlink()
        headless.wait_for(lambda ev: any(str(config) in p and "is gone" in p for p in failures(ev)))

        write(config, ADDED)  # and the watcher is still there to see it back
        headless.wait_for(lambda ev: finished(ev, "added"))

        # Replaced the way editors save: a new file renamed over it.
        write(folder / "jobs.toml.new", BASE)
        (folder / "jobs.toml.new").replace(config)
        headless.wait_for(lambda ev: any(e["event"] == "job_removed" for e in ev))
        headless.proc.send_signal(signal.SIGTERM)
        assert headless.proc.wait(timeout=30) == 0
        assert "Traceback" not in headless.proc.stderr.read()
    finally:
        if headless.proc.poll() is None:
            headless.proc.kill()
