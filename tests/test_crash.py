"""A real crash: `jobtui --headless` is SIGKILLed while a command runs, then started again."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

from .test_cli import Headless, jobtui, write


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped while read
        return False


def pid_recorded(db: Path) -> bool:
    """Whether the running command's pid is in the state database (how a restart finds and
    kills what a crash left): the store writes it a moment after the command started."""
    if not db.exists():
        return False
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT pid FROM runs WHERE outcome IS NULL").fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return row is not None and row[0] is not None


def test_sigkill_during_a_run_leaves_an_abandoned_record_and_no_process(tmp_path):
    pidfile = tmp_path / "child.pid"
    config = write(
        tmp_path / "jobs.toml",
        f"""
        [jobs.dump]
        command = "sleep 300 & echo $! > {pidfile}; wait"
        every = "2s"
        run_immediately = true
        """,
    )
    first = Headless(config)
    try:
        # Killed once the run's pid is recorded: before that, no restart could find its
        # process (under load, the store's write of it can come after the pid file).
        db = tmp_path / ".jobtui" / "state.db"
        first.wait_for(lambda ev: pidfile.exists() and pidfile.read_text().strip())
        first.wait_for(lambda ev: pid_recorded(db))
        child = int(pidfile.read_text())
        first.proc.send_signal(signal.SIGKILL)  # no chance to clean up
        first.proc.wait(timeout=10)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    assert alive(child)  # in its own process group, it outlived jobtui
    pidfile.unlink()

    second = Headless(config)
    try:
        events = second.wait_for(
            lambda ev: any(e["event"] == "run_started" for e in ev) and pidfile.exists()
        )
        (abandoned,) = [e for e in events if e["event"] == "run_abandoned"]
        assert abandoned["job"] == "dump" and abandoned["killed"] is True
        assert not alive(child)
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=30) == 0
    finally:
        if second.proc.poll() is None:
            second.proc.kill()

    done = jobtui("history", str(config), "--json", "--limit", "100")
    runs = json.loads(done.stdout)
    occurrences = [r["scheduled_for"] for r in runs if not r["manual"]]
    assert len(occurrences) == len(set(occurrences))  # nothing ran (or was recorded) twice
    outcomes = [r["outcome"] for r in sorted(runs, key=lambda r: r["scheduled_for"])]
    assert outcomes[0] == "abandoned"
    assert outcomes.count("abandoned") == 1
    started_after_restart = [r for r in runs if r["outcome"] in ("cancelled", "succeeded")]
    assert len(started_after_restart) == 1  # the newest occurrence ran once after the restart
