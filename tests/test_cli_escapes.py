"""Escape sequences in what jobs say and in jobs.toml reach the terminal as visible text from
every command: headless log lines, history, check and list. The stored history keeps them."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import time

from jobtui.headless import EventLog

from .test_cli import JOBTUI, Headless, finished, jobtui, write

# What a terminal acts on: ESC (every sequence starts with it), BEL (ends an OSC), the C1 CSI.
RAW = ("\x1b", "\x07", "\x9b")

# A job that prints an OSC title, a screen clear and a C1 CSI on stdout, then fails with a
# clear screen in its last stderr line (which becomes its error message).
HOSTILE = r"""
[jobs.hostile]
name = "evil\u001b]0;owned\u0007 name"
every = "1h"
run_immediately = true
command = '''
printf 'out \033]0;pwned\007 \033[2J \302\2332J\n'
printf 'boom \033[2J\033]0;pwned\007\n' >&2
exit 3
'''
"""


def assert_no_raw_controls(text: str) -> None:
    for character in RAW:
        assert character not in text, f"{character!r} reached the terminal in:\n{text!r}"


def test_headless_text_log_and_history_show_escapes_and_the_store_keeps_the_bytes(tmp_path):
    path = write(tmp_path / "jobs.toml", HOSTILE)
    log = tmp_path / "headless.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*JOBTUI, str(path), "--headless", "--grace", "1"], stdout=out, stderr=out, text=True
        )
        try:
            deadline = time.monotonic() + 20
            while "run_finished" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)  # polling the log for what the process wrote; not a timing wait
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert_no_raw_controls(text)
    (line,) = [line for line in text.splitlines() if "run_finished" in line]
    assert 'error="ExitStatus: exited with status 3: boom \\u001b[2J\\u001b]0;pwned\\u0007"' in line

    shown = jobtui("history", str(path))
    assert shown.returncode == 0, shown.stderr
    assert_no_raw_controls(shown.stdout)
    assert "ExitStatus: exited with status 3: boom \\x1b[2J\\x1b]0;pwned\\x07" in shown.stdout

    # The store keeps what the job said; --json is escaped by JSON and decodes to the bytes.
    stored = jobtui("history", str(path), "--json")
    assert_no_raw_controls(stored.stdout)
    (run,) = json.loads(stored.stdout)
    assert run["error_message"] == "exited with status 3: boom \x1b[2J\x1b]0;pwned\x07"


def test_headless_json_log_escapes_control_characters(tmp_path):
    path = write(tmp_path / "jobs.toml", HOSTILE)
    headless = Headless(path)
    try:
        events = headless.wait_for(lambda ev: finished(ev, "hostile"))
        assert_no_raw_controls("\n".join(headless.lines))
        (run,) = finished(events, "hostile")
        assert run["error"] == "ExitStatus: exited with status 3: boom \x1b[2J\x1b]0;pwned\x07"
    finally:
        headless.proc.kill()
        headless.proc.wait(timeout=30)


def test_a_text_log_value_with_control_characters_is_quoted_and_escaped():
    # A job added from Python may have any id; a bare value must not carry a sequence.
    out = io.StringIO()
    EventLog(out).write(event="run_started", time=0.0, job="a\x1b]0;t\x07", run="r1")
    assert out.getvalue() == (
        '1970-01-01T00:00:00.000Z run_started      job="a\\u001b]0;t\\u0007" run=r1\n'
    )


def test_check_shows_commands_and_problems_with_escapes(tmp_path):
    path = write(tmp_path / "jobs.toml", HOSTILE)
    done = jobtui("check", str(path))
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls(done.stdout)
    assert "printf 'out \\\\033]0;pwned" not in done.stdout  # the file's text, not escaped twice
    assert "  hostile  every 1h  printf 'out \\033]0;pwned\\007" in done.stdout

    bad = write(
        tmp_path / "bad.toml",
        """
        [jobs.a]
        command = "true"
        every = "1h"
        "colour\\u001b[31m" = 1
        cwd = "/nowhere\\u001b]0;owned\\u0007"
        """,
    )
    done = jobtui("check", str(bad))
    assert done.returncode == 2
    assert_no_raw_controls(done.stderr)
    assert 'key "colour\\x1b[31m": unknown key' in done.stderr
    assert 'folder "/nowhere\\x1b]0;owned\\x07" does not exist' in done.stderr


def test_list_and_check_refuse_a_job_id_with_a_newline_on_one_line(tmp_path):
    path = write(
        tmp_path / "jobs.toml",
        """
        [jobs."split\\nline"]
        command = "true"
        every = "1h"
        [jobs."trailing\\n"]
        command = "true"
        every = "1h"
        """,
    )
    for command in ("list", "check"):
        done = jobtui(command, str(path))
        assert done.returncode == 2, done.stdout
        assert 'job "split\\nline": a job id is 1-64 letters' in done.stderr
        assert 'job "trailing\\n": a job id is 1-64 letters' in done.stderr


def test_check_refuses_console_keys_holding_control_characters(tmp_path):
    # The footer draws the keys as they are written: an escape sequence there reached the terminal.
    path = write(
        tmp_path / "jobs.toml",
        """
        [jobs.a]
        command = "true"
        every = "1h"
        [console.keys]
        run = "\\u001b]0;owned\\u0007"
        """,
    )
    done = jobtui("check", str(path))
    assert done.returncode == 2
    assert_no_raw_controls(done.stderr)
    assert "got '\\x1b]0;owned\\x07'" in done.stderr
