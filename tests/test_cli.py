"""The `jobtui` command: check, list and headless mode, run as real subprocesses."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

JOBTUI = [sys.executable, "-m", "jobtui.cli"]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(0o644)
    return path


def jobtui(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*JOBTUI, *args], capture_output=True, text=True, timeout=60, env=env)


def test_version_and_help():
    assert jobtui("--version").stdout.startswith("jobtui ")
    help_text = jobtui("--help").stdout
    assert "jobtui check jobs.toml" in help_text and "exit codes" in help_text


def test_check_reports_every_problem_and_exits_2(tmp_path):
    path = write(
        tmp_path / "jobs.toml",
        """
        [jobs.a]
        command = "true"
        cron = "61 * * * *"
        [jobs.b]
        command = "true"
        every = "5x"
        """,
    )
    done = jobtui("check", str(path))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f'{path}:3:1: job "a", key "cron": cron "61 * * * *": minute 61 is out of range 0-59',
        f'{path}:6:1: job "b", key "every": cannot read "5x" as a duration: write a number '
        'followed by one of ms, s, m, h (for example "90s", "15m", "1h30m")',
        f"2 problems in {path}",
    ]


def test_check_summarises_a_good_file(tmp_path):
    path = write(
        tmp_path / "jobs.toml",
        """
        [scheduler]
        timezone = "Europe/Berlin"
        [jobs.nightly]
        command = "echo hi"
        cron = "30 2 * * *"
        """,
    )
    done = jobtui("check", str(path))
    assert done.returncode == 0, done.stderr
    assert "1 job, timezone Europe/Berlin" in done.stdout
    assert "nightly  at 02:30 every day  echo hi" in done.stdout


def test_list_next_times_across_a_dst_transition(tmp_path):
    path = write(
        tmp_path / "jobs.toml",
        """
        [scheduler]
        timezone = "Europe/Berlin"
        [jobs.nightly]
        command = "true"
        cron = "30 2 * * *"
        [jobs.hourly]
        command = "true"
        cron = "0 * * * *"
        """,
    )
    done = jobtui("list", str(path), "--next", "5", "--from", "2026-10-24T23:30", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["id"]: row for row in json.loads(done.stdout)}
    assert rows["nightly"]["next"][:2] == [
        "2026-10-25T02:30:00+02:00",  # once, on the first of the two 02:30s
        "2026-10-26T02:30:00+01:00",
    ]
    assert rows["hourly"]["next"] == [
        "2026-10-25T00:00:00+02:00",
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00",  # the repeated hour is a real hour
        "2026-10-25T03:00:00+01:00",
    ]
    text = jobtui("list", str(path), "--from", "2026-03-28T12:00").stdout
    assert "2026-03-29T03:00:00+02:00" in text  # the first instant after the gap


class Headless:
    """A `jobtui FILE --headless --log-format json` process whose log lines a test can wait for."""

    def __init__(self, path: Path, grace: float = 1) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*JOBTUI, str(path), "--headless", "--grace", str(grace), "--log-format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def events(self) -> list[dict]:
        return [json.loads(line) for line in list(self.lines)]

    def wait_for(self, predicate, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events()
            if predicate(events):
                return events
            time.sleep(0.05)  # polling a pipe for what the process wrote; not a timing wait
        raise AssertionError("timed out; log so far:\n" + "\n".join(self.lines))

    def stop(self) -> float:
        """SIGTERM; returns how long it took to exit."""
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0
        took = time.monotonic() - began
        self.reader.join(timeout=10)
        return took

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def finished(events: list[dict], job: str) -> list[dict]:
    return [e for e in events if e["event"] == "run_finished" and e["job"] == job]


def test_headless_runs_reloads_survives_bad_edits_and_stops_cleanly(tmp_path):
    pidfile = tmp_path / "sleeper.pid"
    config = tmp_path / "jobs.toml"
    base = f"""
        [jobs.tick]
        command = "echo tick"
        every = "1s"

        [jobs.sleeper]
        command = "sleep 300 & echo $! > {pidfile}; wait"
        every = "1h"
        run_immediately = true
        """
    write(config, base)
    headless = Headless(config)
    try:
        headless.wait_for(lambda ev: len(finished(ev, "tick")) >= 2 and pidfile.exists())
        assert all(e["outcome"] == "succeeded" for e in finished(headless.events(), "tick"))

        # An added job is scheduled within a second or so of the edit.
        write(config, base + '\n[jobs.added]\ncommand = "echo added"\nevery = "1s"\n')
        headless.wait_for(lambda ev: finished(ev, "added"))
        assert any(e["event"] == "job_added" and e["job"] == "added" for e in headless.events())

        # An edit that does not validate changes nothing: the jobs keep running.
        write(config, base + '\n[jobs.added]\ncommand = "echo added"\nevery = "1s"\ncron = "x"\n')
        events = headless.wait_for(lambda ev: any(e["event"] == "reload_failed" for e in ev))
        failure = next(e for e in events if e["event"] == "reload_failed")
        assert 'job "added", key "cron"' in failure["problem"]
        seen = len(finished(events, "added"))
        headless.wait_for(lambda ev: len(finished(ev, "added")) > seen)

        # A removed job is unscheduled; this edit is saved the way many editors save: by writing
        # a new file and renaming it over the old one.
        write(tmp_path / "jobs.toml.new", base)
        (tmp_path / "jobs.toml.new").replace(config)
        headless.wait_for(lambda ev: any(e["event"] == "job_removed" for e in ev))

        sleeper = int(pidfile.read_text())
        headless.proc.send_signal(signal.SIGTERM)
        assert headless.proc.wait(timeout=30) == 0
        headless.reader.join(timeout=10)
        events = headless.events()
        (run,) = finished(events, "sleeper")
        assert run["outcome"] == "cancelled" and run["signal"] == "SIGTERM"
        assert events[-1]["event"] == "stopped"
        assert not _running(sleeper)
    finally:
        if headless.proc.poll() is None:
            headless.proc.kill()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):  # gone, or reaped while read
        return False


def test_headless_refuses_an_invalid_file_with_exit_2(tmp_path):
    path = write(tmp_path / "jobs.toml", '[jobs.a]\ncommand = "true"\nevery = "never"\n')
    done = jobtui(str(path), "--headless")
    assert done.returncode == 2
    assert 'job "a", key "every"' in done.stderr


def test_the_demo_file_validates():
    demo = Path(__file__).resolve().parents[1] / "jobs.toml"
    done = jobtui("check", str(demo))
    assert done.returncode == 0, done.stderr
    assert "7 jobs" in done.stdout


def test_a_console_that_dies_at_start_up_exits_1(tmp_path):
    # What a wheel without its stylesheets did: Textual printed the error and returned, and the
    # command said it succeeded.
    path = write(tmp_path / "jobs.toml", '[jobs.a]\ncommand = "true"\nevery = "1h"\n')
    code = (
        "import sys, jobtui.console.app as app; app.JobtuiApp.CSS_PATH = 'missing.tcss'; "
        "from jobtui.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 1
    assert "unable to read CSS file" in done.stdout + done.stderr
