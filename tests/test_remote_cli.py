"""`jobtui status`, `run`, `pause`, `resume`, `cancel` and `reload` against a real daemon
(`jobtui jobs.toml --headless` as a subprocess), and what another user gets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtui.config import load
from jobtui.control.paths import existing
from jobtui.control.sync_client import SyncClient

from .test_cli import JOBTUI, Headless, jobtui, write

JOBS = """
[scheduler]
timezone = "UTC"

[jobs.ok]
command = "echo one; echo two >&2; echo three"

[jobs.exit3]
command = "echo about to fail; exit 3"

[jobs.killed]
command = "kill -9 $$"

[jobs.slow]
command = "sleep 30"
timeout = "300ms"

[jobs.sleeper]
command = "echo sleeping; sleep 60"

[jobs.tick]
command = "true"
every = "1h"

[jobs.escapes]
command = 'printf "a\\033]0;pwned\\007b\\tc\\n"'
"""


def status(path: Path) -> dict:
    done = jobtui("status", str(path), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def job(path: Path, job_id: str) -> dict:
    return next(row for row in status(path)["jobs"] if row["id"] == job_id)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Path, Headless]]:
    config = write(tmp_path / "jobs.toml", JOBS)
    headless = Headless(config)
    try:
        headless.wait_for(lambda ev: any(e["event"] == "control_listening" for e in ev))
        yield config, headless
    finally:
        if headless.proc.poll() is None:
            headless.proc.kill()
        headless.proc.wait(timeout=10)


def test_with_no_daemon_the_verbs_say_how_to_start_one(tmp_path):
    config = write(tmp_path / "jobs.toml", JOBS)
    for args in (["status", str(config)], ["pause", "ok", str(config)], ["reload", str(config)]):
        done = jobtui(*args)
        assert done.returncode == 1
        assert f"no jobtui is running {config}" in done.stderr
        assert f"jobtui {config} --headless" in done.stderr
    done = jobtui("status", str(tmp_path / "missing.toml"))
    assert done.returncode == 2 and "no such file" in done.stderr


def test_the_jobs_file_defaults_to_the_one_in_this_folder(daemon, tmp_path):
    done = subprocess.run(
        [*JOBTUI, "status"], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "(headless)" in done.stdout and "sleeper" in done.stdout


def test_run_wait_streams_the_output_and_exits_with_the_outcome(daemon):
    config, _ = daemon
    done = jobtui("run", "ok", str(config), "--wait")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["one", "three", "two"]  # stderr too
    done = jobtui("run", "exit3", str(config), "--wait")
    assert (done.returncode, done.stdout) == (3, "about to fail\n")
    assert "exit3: failed" in done.stderr
    assert jobtui("run", "killed", str(config), "--wait").returncode == 1
    assert jobtui("run", "slow", str(config), "--wait").returncode == 124
    # A job's escape sequences reach the terminal as text (a tab stays a tab).
    done = jobtui("run", "escapes", str(config), "--wait")
    assert done.stdout == "a\\x1b]0;pwned\\x07b\tc\n"
    # Without --wait it only starts the run.
    done = jobtui("run", "ok", str(config))
    assert done.returncode == 0 and done.stdout.startswith("started run ")
    done = jobtui("run", "nope", str(config), "--wait")
    assert done.returncode == 2 and 'no job with id "nope"' in done.stderr


def test_cancel_ends_a_waited_run_with_its_own_exit_code(daemon):
    config, _ = daemon
    waiting = subprocess.Popen(
        [*JOBTUI, "run", "sleeper", str(config), "--wait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert waiting.stdout is not None
        assert waiting.stdout.readline() == "sleeping\n"  # it streams while the run goes on
        assert job(config, "sleeper")["running"]
        text = subprocess.run(
            [*JOBTUI, "status", str(config)], capture_output=True, text=True, timeout=60
        ).stdout
        assert "run " in text and "running" in text
        done = jobtui("cancel", "sleeper", str(config))
        assert done.returncode == 0, done.stderr
        assert waiting.wait(timeout=20) == 130
        assert "sleeper: cancelled" in waiting.communicate()[1]
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    done = jobtui("cancel", "sleeper", str(config))
    assert done.returncode == 1 and "no running run" in done.stderr


def test_pause_resume_and_reload_steer_the_daemon(daemon):
    config, _ = daemon
    assert jobtui("pause", "tick", str(config)).returncode == 0
    row = job(config, "tick")
    assert row["paused"] and row["next_run"] is None
    assert jobtui("resume", "tick", str(config)).returncode == 0
    row = job(config, "tick")
    assert not row["paused"] and row["next_run"] is not None
    config.write_text(config.read_text() + '\n[jobs.added]\ncommand = "true"\n')
    assert jobtui("reload", str(config)).returncode == 0
    assert any(row["id"] == "added" for row in status(config)["jobs"])
    config.write_text(config.read_text() + "\n[jobs.broken]\nevery = 5\n")
    done = jobtui("reload", str(config))
    assert done.returncode == 2
    assert 'job "broken"' in done.stderr and "previous jobs keep running" in done.stderr
    # While the file is broken, the verbs still find the daemon running its last good jobs.
    assert any(row["id"] == "added" for row in status(config)["jobs"])


def test_the_socket_goes_with_the_daemon(daemon):
    config, headless = daemon
    state = load(config).state_path
    assert len(existing(state)) == 1
    headless.proc.send_signal(signal.SIGTERM)
    assert headless.proc.wait(timeout=30) == 0
    assert existing(state) == []
    assert jobtui("status", str(config)).returncode == 1


def _python_for_nobody() -> list[str]:
    """An interpreter the nobody user may execute, with this checkout importable: the test's
    own when its folders are open to others, else the system's on the same site-packages."""
    venv = Path(os.environ.get("VIRTUAL_ENV", "") or Path(JOBTUI[0]).parent.parent)
    for python in (JOBTUI[0], "/usr/bin/python3", "/usr/local/bin/python3"):
        probe = subprocess.run(
            ["runuser", "-u", "nobody", "--", python, "-c", "import msgspec"],
            capture_output=True,
            env=_nobody_env(venv),
            timeout=60,
        )
        if probe.returncode == 0:
            return [python]
    raise AssertionError("no Python the nobody user can run jobtui with")


def _nobody_env(venv: Path) -> dict[str, str]:
    site = next(venv.glob("lib/python3*/site-packages"), None)
    root = Path(__file__).resolve().parents[1]
    paths = [str(root)] + ([str(site)] if site else [])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def test_another_user_is_refused_and_the_daemon_logs_it():
    # A folder the nobody user can read jobs.toml in (pytest's tmp folders are root's only).
    folder = Path(tempfile.mkdtemp(prefix="jobtui-refused-"))
    folder.chmod(0o755)
    runtime = folder / "run"
    runtime.mkdir(mode=0o700)
    config = write(folder / "jobs.toml", JOBS)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    proc = subprocess.Popen(
        [*JOBTUI, str(config), "--headless", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        events = []
        for line in proc.stdout:
            events.append(json.loads(line))
            if events[-1]["event"] == "control_listening":
                break
        socket_path = Path(events[-1]["path"])
        assert socket_path.parent == runtime / "jobtui"
        # Open the folders and the socket as a careless admin might: the credentials check
        # is what still stands.
        runtime.chmod(0o711)
        socket_path.parent.chmod(0o711)
        socket_path.chmod(0o777)
        python = _python_for_nobody()
        venv = Path(JOBTUI[0]).parent.parent
        nobody_env = {**_nobody_env(venv), "XDG_RUNTIME_DIR": str(runtime)}
        done = subprocess.run(
            ["runuser", "-u", "nobody", "--", *python, "-m", "jobtui", "status", str(config)],
            capture_output=True,
            text=True,
            env=nobody_env,
            timeout=60,
        )
        assert done.returncode == 1, done.stderr
        assert "refused: this jobtui runs as uid 0; uid 65534 may not control it" in done.stderr
        with SyncClient.connect(load(config).state_path, env=env) as client:
            assert client.call("summary").jobs == 7  # root still may
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        refused = [json.loads(line) for line in out.splitlines()]
        refused = [event for event in refused if event["event"] == "control_refused"]
        assert len(refused) == 1 and refused[0]["uid"] == 65534
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
