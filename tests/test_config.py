"""jobs.toml: every problem reported at once, each with file:line:col, job and key."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from jobtui.config import ConfigError, load


def write(tmp_path: Path, text: str, name: str = "jobs.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(0o644)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, import_timeout=5)
    return [str(p).removeprefix(f"{path}:") for p in info.value.problems]


def test_a_valid_file_loads_into_job_specs(tmp_path):
    path = write(
        tmp_path,
        """
        [scheduler]
        timezone = "Europe/Berlin"
        max_concurrency = 4

        [defaults]
        timeout = "15m"
        retries = 2

        [jobs.backup]
        command = "pg_dump app > app.sql"
        cron = "30 2 * * *"
        timeout = "1h"
        env = { PGHOST = "localhost", PORT = 5432 }
        cwd = "."

        [jobs.sync]
        command = ["rsync", "-a", "src/", "dst/"]
        every = 600
        overlap = "queue"

        [jobs.launch]
        command = "echo launch"
        at = 2099-12-01T09:00:00+01:00
        """,
    )
    config = load(path)
    assert list(config.jobs) == ["backup", "sync", "launch"]
    backup = config.jobs["backup"]
    assert backup.options["timeout"] == "1h" and backup.options["retries"] == 2
    assert backup.options["cwd"] == str(tmp_path)
    scheduler = config.make_scheduler()
    job = scheduler.get("backup")
    assert job.options.timeout == 3600 and job.options.env == {
        "PGHOST": "localhost",
        "PORT": "5432",
    }
    assert scheduler.get("sync").options.retries == 2  # inherited from [defaults]
    assert config.max_concurrency == 4
    assert config.state_path == tmp_path / ".jobtui" / "state.db"


def test_every_problem_is_reported_with_its_position(tmp_path):
    (tmp_path / "tasks.py").write_text("CONFIG = {}\ndef ok():\n    pass\n")
    path = write(
        tmp_path,
        """
        [scheduler]
        timezone = "Europe/Berln"

        [defaults]
        timeout = "15x"

        [jobs.backup]
        command = "pg_dump app"
        cron = "61 2 * * *"
        retires = 3

        [jobs.sync]
        run = "tasks:ok"
        every = "10m"
        cron = "* * * * *"

        [jobs.nothing]
        every = "1m"

        [jobs.both]
        run = "tasks:ok"
        command = "true"

        [jobs.config]
        run = "tasks:CONFIG"

        [jobs.missing]
        run = "tasks:nope"

        [jobs.dotted]
        run = "tasks.ok"

        [jobs.never]
        command = "true"
        cron = "0 0 31 2 *"

        [jobs.zero]
        command = "true"
        every = "0s"

        [jobs.days]
        command = "true"
        every = "2d"

        [jobs.zone]
        command = "true"
        timezone = "Mars/Olympus"

        [jobs.types]
        command = "true"
        paused = "yes"
        retries = -1
        overlap = "sometimes"
        cwd = "no/such/folder"
        """,
    )
    found = problems(path)
    assert found == [
        '2:1: [scheduler], key "timezone": unknown timezone "Europe/Berln" (did you mean '
        '"Europe/Berlin"?): use an IANA name such as "Europe/Berlin", "America/New_York" or '
        '"UTC", or "local" for the machine\'s zone',
        '5:1: [defaults], key "timeout": cannot read "15x" as a duration: write a number '
        'followed by one of ms, s, m, h, d (for example "90s", "15m", "1h30m")',
        '9:1: job "backup", key "cron": cron "61 2 * * *": minute 61 is out of range 0-59',
        '10:1: job "backup", key "retires": unknown key (did you mean "retries"?)',
        '15:1: job "sync", key "cron": a job takes one trigger, got every and cron: keep one '
        "of them",
        '17:1: job "nothing": says nothing to run: add command = "..." (a shell command or a '
        'list) or run = "module:function"',
        '22:1: job "both", key "command": has both run and command: keep one of them',
        '25:1: job "config", key "run": tasks:CONFIG is a dict, not something jobtui can call',
        f'28:1: job "missing", key "run": module tasks ({tmp_path}/tasks.py) has no attribute '
        '"nope"',
        '31:1: job "dotted", key "run": expected "module:function" (such as "myapp.tasks:sync"), '
        "got 'tasks.ok'",
        '35:1: job "never", key "cron": cron "0 0 31 2 *": never fires: February has no 31st',
        '39:1: job "zero", key "every": "0s" is not a usable duration: it must be greater than '
        "zero",
        '43:1: job "days", key "every": "2d": a period is written in s, m or h, not days, '
        "because a day of wall-clock time is not always 24 hours; use cron (e.g. "
        '"0 9 * * *") for daily runs at a set time, or hours (e.g. "48h")',
        '47:1: job "zone", key "timezone": unknown timezone "Mars/Olympus": use an IANA name '
        'such as "Europe/Berlin", "America/New_York" or "UTC", or "local" for the machine\'s '
        "zone",
        '51:1: job "types", key "paused": expected true or false, got \'yes\'',
        '52:1: job "types", key "retries": expected a whole number of at least 0, got -1',
        '53:1: job "types", key "overlap": expected "skip", "queue", "replace" or "parallel:N" '
        "(N at least 1), got 'sometimes'",
        f'54:1: job "types", key "cwd": folder "{tmp_path}/no/such/folder" does not exist (or '
        "is not a folder)",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[jobs.a]\ncommand = "echo\n',
            "2:16: TOML syntax: Illegal character '\\n'; a quoted string is not closed on this "
            "line",
        ),
        ("[jobs.a]\n[jobs.a]\n", "2:8: TOML syntax: Cannot declare ('jobs', 'a') twice"),
        (
            '[jobs.a]\ncommand = "x"\nevery = 5m\n',
            "3:10: TOML syntax: Expected newline or end of document after a statement; "
            'durations are text: write them in quotes, as in every = "5m"',
        ),
    ],
)
def test_toml_syntax_errors_carry_their_position(tmp_path, text, expected):
    path = tmp_path / "jobs.toml"
    path.write_text(text)
    path.chmod(0o644)
    (found,) = problems(path)
    assert expected in found


def test_a_file_that_is_not_utf8_is_refused_with_its_line(tmp_path):
    path = tmp_path / "jobs.toml"
    path.write_bytes(b'[jobs.a]\ncommand = "caf\xe9"\n')
    path.chmod(0o644)
    assert problems(path) == ["2:15: byte 23 is not valid UTF-8: save the file as UTF-8"]


@pytest.mark.parametrize(("mode", "who"), [(0o664, "its group"), (0o646, "others")])
def test_a_group_or_world_writable_file_is_refused(tmp_path, mode, who):
    path = write(tmp_path, '[jobs.a]\ncommand = "true"\n')
    os.chmod(path, mode)
    (found,) = problems(path)
    assert found.startswith(f" is writable by {who}; jobtui runs the commands in it")


def test_an_import_that_hangs_or_exits_cannot_take_jobtui_down(tmp_path):
    (tmp_path / "hangs.py").write_text("import time\ntime.sleep(600)\n")
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "dies.py").write_text("import os\nos._exit(7)\n")
    (tmp_path / "fine.py").write_text("def job():\n    pass\n")
    path = write(
        tmp_path,
        """
        [jobs.hangs]
        run = "hangs:job"
        [jobs.exits]
        run = "exits:job"
        [jobs.dies]
        run = "dies:job"
        [jobs.fine]
        run = "fine:job"
        """,
    )
    with pytest.raises(ConfigError) as info:
        load(path, import_timeout=1)
    by_job = {p.job: p.message for p in info.value.problems}
    assert by_job["hangs"] == "importing hangs took longer than 1 s (does it hang?)"
    assert by_job["exits"].startswith("importing exits failed: SystemExit: 3")
    assert by_job["dies"] == "importing dies ended the process (exit status 7)"
    assert "fine" not in by_job


def test_an_at_in_the_past_is_a_warning(tmp_path):
    path = write(tmp_path, '[jobs.a]\ncommand = "true"\nat = 2020-01-01T00:00:00Z\n')
    config = load(path)
    (warning,) = config.warnings
    assert str(warning).startswith(f'{path}:3:1: warning: job "a", key "at": 2020-01-01T00:00')
    assert "in the past" in str(warning)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"-5m"', 'cannot read "-5m" as a duration'),
        ("-5", "-5 is not a usable duration: it must be greater than zero"),
        ("0", "0 is not a usable duration: it must be greater than zero"),
        ("nan", "nan seconds is not a usable duration"),
        ("inf", "inf seconds is not a usable duration"),
        ('"1.5 fortnights"', 'cannot read "1.5 fortnights" as a duration'),
        ("true", "expected a duration such as"),
    ],
)
def test_unusable_durations(tmp_path, value, message):
    path = write(tmp_path, f'[jobs.a]\ncommand = "true"\nevery = "1m"\ntimeout = {value}\n')
    (found,) = problems(path)
    assert found.startswith(f'4:1: job "a", key "timeout": {message}')


def test_unknown_tables_and_ids_that_cannot_be_ids(tmp_path):
    path = write(
        tmp_path,
        """
        [job.a]
        command = "true"

        [jobs."café☕"]
        command = "true"
        """,
    )
    assert problems(path) == [
        '1:1: key "job": unknown table (did you mean "jobs"?)',
        "4:1: job \"café☕\": a job id is 1-64 letters, digits, '_', '.' or '-', starting with "
        'a letter or digit (use name = "..." for free text)',
    ]


def test_the_import_check_gives_a_module_no_input(tmp_path):
    # The check's Python is started before the targets are known and reads them from its
    # standard input (config/imports.py): a module reading its input at import finds none.
    (tmp_path / "reads.py").write_text(
        "import os, sys\n"
        "if sys.argv[0] == '-c':  # in the check's Python, not in jobtui's (pytest's)\n"
        "    assert sys.stdin.read() == '' and os.read(0, 10) == b''\n"
        "def job():\n    pass\n"
    )
    path = write(tmp_path, '[jobs.reads]\nrun = "reads:job"\nevery = "1h"\n')
    assert list(load(path, import_timeout=5).jobs) == ["reads"]


def _children() -> set[int]:
    found: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def test_no_import_check_is_left_behind_when_no_target_is_checked(tmp_path):
    # A run target seen in the parsed file starts the check's Python early; a job that fails
    # its other checks never has its target imported, and that Python must not linger.
    before = _children()
    (tmp_path / "fine.py").write_text("def job():\n    pass\n")
    path = write(tmp_path, '[jobs.a]\nrun = "fine:job"\nevery = "soon"\n')
    (found,) = problems(path)
    assert found.startswith('3:1: job "a", key "every": ')
    assert _children() <= before
