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


def test_escape_sequences_from_a_job_do_not_reach_the_terminal(tmp_path: Path):
    # The job's name and its output carry an OSC that sets the pane's title and ESC[2J, which
    # clears the screen; the console must show both as text and the terminal act on neither.
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(
        textwrap.dedent(
            r"""
            [scheduler]
            timezone = "UTC"
            [jobs.hostile]
            name = "evil\u001b]0;owned-by-name\u0007\u001b[2J"
            every = "1h"
            run_immediately = true
            command = '''
            printf '::status st \033]0;owned-by-status\007\n'
            printf 'out \033]0;owned-by-output\007 \033[2J \302\2332J end\n'
            '''
            """
        )
    )
    jobs.chmod(0o644)
    session = f"jobtui-esc-{tmp_path.name}"
    # The app starts only once the pane's title is set, so the title seen later is its doing.
    command = (
        f"{TMUX} -L {SOCKET} wait-for {session}; "
        f"env -u COLUMNS -u LINES {sys.executable} -m jobtui.cli {jobs}; echo EXITED $?; sleep 30"
    )
    config = tmp_path / "tmux.conf"
    # Wide enough for the whole escaped name beside a next run shown with its date (after
    # 23:00 the hourly job's next run is tomorrow's, and at 120 columns the name was cut).
    config.write_text("set -g default-size 160x30\nset -g allow-rename on\n")
    tmux("-f", str(config), "new-session", "-d", "-s", session, "-x", "160", "-y", "30", command)
    try:
        tmux("select-pane", "-t", session, "-T", "title-before")
        tmux("wait-for", "-S", session)
        wait_for(session, lambda s: "evil\\x1b]0;owned-by-name\\x07\\x1b[2J" in s and "✔" in s)
        tmux("send-keys", "-t", session, "Enter")
        shown = wait_for(session, lambda s: "out \\x1b]0;owned-by-output\\x07" in s)
        assert "\\x1b[2J \\x9b2J end" in shown
        # Not blanked: what was drawn before the output arrived is still on the screen.
        assert "Next runs" in shown and "runs: printf" in shown
        title = tmux("display-message", "-p", "-t", session, "#{pane_title}|#{window_name}")
        assert "owned" not in title and title.startswith("title-before|")
        tmux("send-keys", "-t", session, "Escape")
        wait_for(session, lambda s: "Trigger" in s)
        tmux("send-keys", "-t", session, "q")
        wait_for(session, lambda s: "EXITED 0" in s)
    finally:
        subprocess.run([TMUX, "-L", SOCKET, "kill-server"], capture_output=True)
