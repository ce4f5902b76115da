"""End to end: a real headless daemon, and the real console attached to it in tmux."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from .conftest import wait_until
from .test_tmux import SOCKET, TMUX, tmux, wait_for

JOBS = """
[scheduler]
timezone = "UTC"
stop_grace = "1s"
[jobs.tick]
command = "true"
every = "1s"
[jobs.crunch]
command = "i=0; while true; do i=$(( (i + 7) % 100 )); echo ::progress $i%; sleep 0.2; done"
every = "1h"
run_immediately = true
[jobs.hello]
command = "echo hello from the daemon"
every = "1h"
"""


def start_daemon(jobs: Path, log: Path) -> subprocess.Popen[bytes]:
    before = log.read_text().count("control_listening") if log.exists() else 0
    with log.open("ab") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "jobtui", str(jobs), "--headless"], stdout=out, stderr=out
        )
    wait_until(lambda: log.read_text().count("control_listening") > before)
    return daemon


def console(session: str, jobs: Path, config: Path, verb: str = "") -> None:
    # COLUMNS/LINES from the test runner would override the pane size the app sees.
    jobtui = f"env -u COLUMNS -u LINES {sys.executable} -m jobtui {verb}".rstrip()
    command = f"{jobtui} {jobs}; echo EXITED $?; sleep 30"
    tmux("-f", str(config), "new-session", "-d", "-s", session, "-x", "120", "-y", "30", command)


def ticks(log: Path) -> int:
    return log.read_text().count("run_started      job=tick")


def percent(screen_text: str) -> str | None:
    line = next((row for row in screen_text.splitlines() if "crunch" in row), "")
    found = re.search(r"(\d+)%", line)
    return found.group(1) if found else None


def test_a_console_attaches_steers_the_daemon_and_survives_its_restart(tmp_path: Path):
    assert TMUX is not None
    jobs = tmp_path / "jobs.toml"
    jobs.write_text(textwrap.dedent(JOBS))
    jobs.chmod(0o644)
    log = tmp_path / "daemon.log"
    config = tmp_path / "tmux.conf"
    config.write_text("set -g default-size 120x30\n")  # no client is attached to size it
    daemon = start_daemon(jobs, log)
    try:
        console("first", jobs, config)
        text = wait_for("first", lambda s: f"attached to pid {daemon.pid} since" in s)
        wait_for("first", lambda s: percent(s) is not None)
        seen = percent(wait_for("first", lambda s: percent(s) is not None))
        wait_for("first", lambda s: percent(s) not in (None, seen))  # progress moves
        assert "hello" in text

        tmux("send-keys", "-t", "first", "/")  # filter down to one job
        wait_for("first", lambda s: "filter: text or state" in s)
        tmux("send-keys", "-t", "first", "hello", "Enter")
        wait_for("first", lambda s: "tick" not in s and "hello" in s)
        tmux("send-keys", "-t", "first", "r")
        wait_until(lambda: "job=hello" in log.read_text() and "manual=True" in log.read_text())
        tmux("send-keys", "-t", "first", "p")
        wait_for("first", lambda s: "paused" in s and "Resume" in s)
        assert "job_state        job=hello state=paused" in log.read_text()

        tmux("send-keys", "-t", "first", "q")
        wait_for("first", lambda s: "EXITED 0" in s)  # no question asked
        quit_at = ticks(log)
        wait_until(lambda: ticks(log) >= quit_at + 2, timeout=5.0)  # still on time: 1 a second
        assert daemon.poll() is None

        console("second", jobs, config, verb="attach")
        wait_for("second", lambda s: f"attached to pid {daemon.pid}" in s)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(10)
        wait_for("second", lambda s: "disconnected, retrying…" in s)
        assert "crunch" in wait_for("second", lambda s: "disconnected" in s)  # the last picture
        daemon = start_daemon(jobs, log)
        wait_for("second", lambda s: f"attached to pid {daemon.pid} since" in s)
        tmux("send-keys", "-t", "second", "q")
        wait_for("second", lambda s: "EXITED 0" in s)
    finally:
        subprocess.run([TMUX, "-L", SOCKET, "kill-server"], capture_output=True)
        if daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGTERM)
            daemon.wait(30)
