"""What a job prints, with the real binary: processes that escape their group, chatty jobs and
Python jobs writing to stdout."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from .test_cli import Headless, _running, finished, jobtui, write


def history(config: Path, job: str) -> list[dict]:
    done = jobtui("history", str(config), "--job", job, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def escaping_job(tmp_path: Path, timeout: str | None) -> tuple[Path, Path]:
    pidfile = tmp_path / "escaped.pid"
    config = tmp_path / "jobs.toml"
    limit = f'timeout = "{timeout}"' if timeout else ""
    write(
        config,
        f"""
        [jobs.escape]
        command = "setsid sleep 102 & echo $! > {pidfile}; wait"
        every = "1h"
        run_immediately = true
        {limit}
        """,
    )
    return config, pidfile


def test_a_timeout_ends_on_time_when_a_child_escaped_the_group(tmp_path):
    config, pidfile = escaping_job(tmp_path, "2s")
    headless = Headless(config)
    try:
        began = time.monotonic()
        events = headless.wait_for(lambda ev: finished(ev, "escape"), timeout=30)
        took = time.monotonic() - began
        (run,) = finished(events, "escape")
        assert run["outcome"] == "timed_out"
        assert took < 8, f"timed out after {took:.1f} s instead of about 2 s"
        escaped = int(pidfile.read_text())
        assert f"pid {escaped} (sleep) left the command's process group" in run["reason"]
        assert not _running(escaped)  # an interrupted run's escaped process is killed
        headless.stop()
    finally:
        headless.kill()
    (record,) = history(config, "escape")
    assert record["outcome"] == "timed_out"
    assert f"pid {escaped} (sleep) left the command's process group" in record["reason"]
    assert f"pid {escaped} (sleep) left" in record["error_message"]


def test_headless_stops_within_its_grace_when_a_child_escaped_the_group(tmp_path):
    config, pidfile = escaping_job(tmp_path, None)
    headless = Headless(config, grace=2)
    try:
        headless.wait_for(lambda ev: pidfile.exists() and pidfile.read_text().strip())
        escaped = int(pidfile.read_text())
        took = headless.stop()
        assert took < 2 + 3, f"SIGTERM with --grace 2 took {took:.1f} s"
        (run,) = finished(headless.events(), "escape")
        assert run["outcome"] == "cancelled"
        assert f"pid {escaped} (sleep) left the command's process group" in run["reason"]
        assert not _running(escaped)
    finally:
        headless.kill()


def test_a_chatty_job_is_read_fast_and_the_others_stay_on_time(tmp_path):
    config = write(
        tmp_path / "jobs.toml",
        """
        [jobs.chatty]
        command = "yes | head -c 40M"
        every = "1h"
        run_immediately = true

        [jobs.tick]
        command = "true"
        every = "1s"
        """,
    )
    headless = Headless(config)
    try:
        events = headless.wait_for(
            lambda ev: finished(ev, "chatty") and len(finished(ev, "tick")) >= 2, timeout=60
        )
        headless.stop()
    finally:
        headless.kill()
    (chatty,) = finished(events, "chatty")
    assert chatty["outcome"] == "succeeded"
    # 40 MB at 50 MB/s or more (it was 0.7 MB/s: about a minute).
    assert chatty["duration"] < 0.8 + 2, f"40 MB took {chatty['duration']} s"
    assert all(run["duration"] < 0.5 for run in finished(events, "tick"))
    assert not [e for e in events if e["event"] != "run_finished" and e.get("job") == "tick"
                and "skipped" in e["event"]]  # fmt: skip
    (record,) = history(config, "chatty")
    assert record["output_dropped_bytes"] > 39_000_000  # head and tail kept, the rest counted


def stored_output(config: Path, job: str) -> list[str]:
    db = sqlite3.connect(config.parent / ".jobtui" / "state.db")
    try:
        return [
            row[0] or "" for row in db.execute("SELECT output FROM runs WHERE job_id = ?", (job,))
        ]
    finally:
        db.close()


def test_python_jobs_output_goes_into_their_runs_not_into_the_json_log(tmp_path):
    write(
        tmp_path / "chatter.py",
        """
        import sys

        def hello():
            print("printed by hello")
            print("hello's warning", file=sys.stderr)
        """,
    )
    config = write(
        tmp_path / "jobs.toml",
        """
        [jobs.system]
        run = "os:system"
        args = ["echo written by a shell; echo and to stderr >&2"]
        every = "1h"
        run_immediately = true

        [jobs.hello]
        run = "chatter:hello"
        every = "1h"
        run_immediately = true
        """,
    )
    headless = Headless(config)
    try:
        headless.wait_for(lambda ev: finished(ev, "system") and finished(ev, "hello"))
        headless.stop()
    finally:
        headless.kill()
    for line in headless.lines:  # every line of the log is JSON: nothing the jobs wrote
        json.loads(line)
    assert not any("written by a shell" in line or "printed by" in line for line in headless.lines
                   if '"event": "output"' not in line)  # fmt: skip
    (hello,) = stored_output(config, "hello")
    assert "printed by hello" in hello and "hello's warning" in hello
    # Written straight to the file descriptors: credited to the run when it was the only
    # Python job going, else logged as an "output" event; either way never raw.
    (system,) = stored_output(config, "system")
    strays = [e["text"] for e in headless.events() if e["event"] == "output"]
    assert "written by a shell" in system or "written by a shell" in strays
    assert "and to stderr" in system or "and to stderr" in strays


def test_a_chatty_os_system_beside_another_python_job_neither_floods_the_log_nor_stalls(tmp_path):
    # With two Python jobs going, what reaches descriptor 1 is no one run's: it is logged.
    # One log line (and one loop callback) per output line made 2 MB take minutes, and
    # SIGTERM waited behind them.
    config = write(
        tmp_path / "jobs.toml",
        """
        [jobs.noisy]
        run = "os:system"
        args = ["yes | head -c 2M"]
        every = "1h"
        run_immediately = true

        [jobs.nap]
        run = "time:sleep"
        args = [3]
        every = "1h"
        run_immediately = true
        """,
    )
    headless = Headless(config)
    try:
        headless.wait_for(lambda ev: finished(ev, "noisy"), timeout=20)
        took = headless.stop()
    finally:
        headless.kill()
    assert took < 10, f"SIGTERM took {took:.1f} s"
    strays = [e for e in headless.events() if e["event"] == "output"]
    assert 0 < len(strays) < 1000
    assert sum(len(e["text"]) for e in strays) < 1_000_000
