"""Odd state paths, bad environment names, closed pipes: the real `jobtui` says what is wrong in
a sentence, never hangs and never prints a traceback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from jobtui import InvalidJobOption
from jobtui.store import Store
from tests.test_cli import Headless, finished, jobtui, write

JOBTUI = [sys.executable, "-m", "jobtui.cli"]


def with_state(tmp_path: Path, state: str) -> Path:
    return write(
        tmp_path / "jobs.toml",
        f'[scheduler]\nstate = "{state}"\n[jobs.tick]\ncommand = "echo tick"\nevery = "1h"\n'
        "run_immediately = true\n",
    )


def test_the_state_database_and_its_wal_are_created_private_whatever_the_umask(tmp_path):
    data = tmp_path / "data"  # outside .jobtui/, in a folder others may read
    data.mkdir(mode=0o755)
    config = with_state(tmp_path, "data/state.db")
    old = os.umask(0o022)
    try:
        headless = Headless(config)
    finally:
        os.umask(old)
    try:
        headless.wait_for(lambda ev: finished(ev, "tick"))
        files = sorted(data.glob("state.db*"))
        names = [f.name for f in files]
        assert "state.db" in names and "state.db-wal" in names, names
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        assert modes == dict.fromkeys(names, 0o600)
    finally:
        headless.proc.kill()
        headless.proc.wait(timeout=10)

    # The default place, .jobtui/, is made 0700 when jobtui makes it.
    old = os.umask(0o022)
    try:
        Store.open(tmp_path / ".jobtui" / "state.db").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / ".jobtui").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / ".jobtui" / "state.db").stat().st_mode) == 0o600


def test_history_names_a_fifo_or_a_folder_at_the_state_path_without_opening_it(tmp_path):
    os.mkfifo(tmp_path / "state.db")
    config = with_state(tmp_path, "state.db")
    for args in (["history"], ["--headless"]):
        done = subprocess.run(
            [*JOBTUI, *args, str(config)], capture_output=True, text=True, timeout=20
        )
        assert done.returncode == 1
        assert f"{tmp_path}/state.db is a named pipe (FIFO), not a jobtui database" in done.stderr
        assert "damaged" not in done.stderr and "mv " not in done.stderr

    (tmp_path / "state.db").unlink()
    (tmp_path / "state.db").mkdir()
    for args in (["history"], ["--headless"]):
        done = jobtui(*args, str(config))
        assert done.returncode == 1, done.stderr
        assert f"{tmp_path}/state.db is a folder, not a jobtui database" in done.stderr
        assert "Traceback" not in done.stderr

    (tmp_path / "state.db").rmdir()
    (tmp_path / "state.db").write_text("not a database\n")
    done = jobtui("history", str(config))
    assert done.returncode == 1
    assert f"cannot read the run history in {tmp_path}/state.db: file is not a" in done.stderr


def test_headless_says_when_the_state_folder_is_a_file(tmp_path):
    (tmp_path / "data").write_text("")
    config = with_state(tmp_path, "data/state.db")
    done = jobtui(str(config), "--headless")
    assert done.returncode == 1
    assert done.stderr == (
        f"jobtui: cannot create the state database {tmp_path}/data/state.db: {tmp_path}/data "
        "is a file, not a folder; set [scheduler] state in jobs.toml to a path in a folder\n"
    )


def test_env_names_values_cwd_and_commands_that_cannot_be_passed_are_refused_by_check(tmp_path):
    config = write(
        tmp_path / "jobs.toml",
        r"""
        [jobs.a]
        command = "true"
        env = { "A=B" = "1" }
        [jobs.b]
        command = "true"
        env = { "" = "1" }
        [jobs.c]
        command = "true"
        env = { C = "x\u0000y" }
        [jobs.d]
        command = "true"
        env = { "D\u0000" = "1" }
        [jobs.e]
        command = "true"
        cwd = "a\u0000b"
        [jobs.f]
        command = ["printf", "a\u0000b"]
        [jobs.g]
        command = ["printf", "\\x00"]
        """,
    )
    done = jobtui("check", str(config))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith(
        f'{config}:3:1: job "a", key "env": \'A=B\' cannot be an environment variable\'s name'
    )
    assert lines[1].startswith(f'{config}:6:1: job "b", key "env": \'\' cannot be')
    assert lines[2] == (
        f'{config}:9:1: job "c", key "env": the value of C holds a NUL character, which an '
        "environment variable cannot hold"
    )
    assert lines[3].startswith(f'{config}:12:1: job "d", key "env": \'D\\x00\' cannot be')
    assert lines[4] == (
        f'{config}:15:1: job "e", key "cwd": \'a\\x00b\' holds a NUL character, which no '
        "folder path can hold"
    )
    assert lines[5] == (
        f'{config}:17:1: job "f", key "command": holds a NUL character, which no command can '
        "hold: every run would fail"
    )
    assert lines[6] == f"6 problems in {config}"  # "\\x00" is four characters, not a NUL


def test_run_immediately_without_a_trigger_is_a_warning(tmp_path):
    config = write(
        tmp_path / "jobs.toml",
        '[jobs.once]\ncommand = "true"\nrun_immediately = true\n'
        '[jobs.tick]\ncommand = "true"\nevery = "1h"\nrun_immediately = true\n',
    )
    done = jobtui("check", str(config))
    assert done.returncode == 0
    assert done.stderr == (
        f'{config}:3:1: warning: job "once", key "run_immediately": a job with no trigger '
        "never starts by itself, not even at start-up: add a trigger (every, cron or at), or "
        "remove run_immediately (the job then runs only when started by hand)\n"
    )


def test_a_reader_that_goes_away_ends_jobtui_quietly_with_status_141(tmp_path):
    # Enough jobs that the output outgrows the pipe's buffer: jobtui is still writing when
    # head exits.
    lines = "".join(f'[jobs.j{n}]\ncommand = "true"\nevery = "1h"\n' for n in range(6000))
    config = write(tmp_path / "jobs.toml", lines)
    for args in ("list", "check"):
        done = piped_into_head(f"{args} {config}", 1)
        assert done.returncode == 141, done.stderr
        assert done.stdout.count("\n") == 1 and done.stderr == ""

    # Headless stops as on SIGTERM when no one reads its log any more.
    busy = write(
        tmp_path / "busy.toml",
        '[jobs.now]\ncommand = "true"\nevery = "1h"\nrun_immediately = true\n',
    )
    done = piped_into_head(f"{busy} --headless", 2)
    assert done.returncode == 141, done.stderr
    assert done.stdout.count("\n") == 2 and done.stderr == ""

    # ... even when it has nothing more to write for an hour after head went away.
    quiet = write(tmp_path / "quiet.toml", '[jobs.later]\ncommand = "true"\nevery = "1h"\n')
    done = piped_into_head(f"{quiet} --headless", 1)
    assert done.returncode == 141, done.stderr
    assert done.stdout.count("\n") == 1 and done.stderr == ""


def piped_into_head(args: str, lines: int) -> subprocess.CompletedProcess[str]:
    """`jobtui ARGS | head -LINES`, with jobtui's exit status."""
    script = f"{' '.join(JOBTUI)} {args} | head -{lines}; exit ${{PIPESTATUS[0]}}"
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)


def test_the_library_refuses_them_too(scheduler):
    with pytest.raises(InvalidJobOption, match="cannot be an environment variable's name"):
        scheduler.add_job("true", every="1h", id="a", env={"A=B": "1"})
    with pytest.raises(InvalidJobOption, match="holds a NUL character"):
        scheduler.add_job(["printf", "a\0b"], every="1h", id="b")
    assert scheduler.jobs() == []
