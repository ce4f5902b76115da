"""End to end: the real `jobtui` binary in tmux, driven with send-keys, read with capture-pane."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is installed by .ci/run")


SOCKET = f"jobtui-tests-{os.getpid()}"  # a server per test process: runs never collide


def tmux(*args: str) -> str:
    # A server of our own (-L), so the test never touches a user's tmux sessions.
    done = subprocess.run(
        [TMUX, "-L", SOCKET, *args], capture_output=True, text=True, timeout=20, check=True
    )
    return done.stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, predicate, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen(session)
        if predicate(text):
            return text
        time.sleep(0.1)  # polling the terminal for what the app drew; not a timing wait
    raise AssertionError(f"timed out; the screen was:\n{text}")


def test_table_run_pause_quit(tmp_path: Path):
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(
        textwrap.dedent(
            """
            [scheduler]
            timezone = "UTC"
            [jobs.hello]
            command = "echo hello from tmux"
            every = "1h"
            """
        )
    )
    jobs.chmod(0o644)
    session = f"jobtui-test-{tmp_path.name}"
    # COLUMNS/LINES from the test runner would override the pane size the app sees.
    command = (
        f"env -u COLUMNS -u LINES {sys.executable} -m jobtui.cli {jobs}; echo EXITED $?; sleep 30"
    )
    config = tmp_path / "tmux.conf"
    config.write_text("set -g default-size 120x30\n")  # no client is attached to size it
    tmux("-f", str(config), "new-session", "-d", "-s", session, "-x", "120", "-y", "30", command)
    try:
        wait_for(session, lambda s: "hello" in s and "scheduled" in s)
        tmux("send-keys", "-t", session, "r")
        wait_for(session, lambda s: "✔" in s)  # the manual run finished
        tmux("send-keys", "-t", session, "p")
        wait_for(session, lambda s: "paused" in s and "Resume" in s)
        tmux("send-keys", "-t", session, "q")
        wait_for(session, lambda s: "EXITED 0" in s)
    finally:
        subprocess.run([TMUX, "-L", SOCKET, "kill-server"], capture_output=True)
    history = subprocess.run(
        [sys.executable, "-m", "jobtui.cli", "history", str(jobs), "--json"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert '"manual": true' in history.stdout and '"outcome": "succeeded"' in history.stdout
