"""jobs.toml with thousands of jobs: the fast paths reading it (config/locator.py finds the
headers of a file without multi-line strings in one pass, and scans keys only when a problem
needs one) place every job and every problem on the line the line-by-line scan does."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from jobtui.config import ConfigError, load
from jobtui.config.locator import Locator

JOBS = 10_000


def many_jobs(jobs: int = JOBS) -> str:
    parts = ['[scheduler]\ntimezone = "UTC"\n']
    for n in range(jobs):
        parts.append(f'[jobs.idle{n:05}]\ncommand = "true"\nevery = "{1 + n % 50}h"\n')
    return "\n".join(parts)


def scanned(text: str) -> Locator:
    """A locator that has scanned every line (asking for the keys makes it scan)."""
    locator = Locator(text)
    assert locator.keys is not None
    return locator


def test_ten_thousand_job_tables_are_placed_where_the_line_scan_places_them():
    text = many_jobs()
    fast = Locator(text)
    assert fast.tables == scanned(text).tables
    assert fast.table("jobs", "idle00000") == (4, 1)
    assert fast.table("jobs", "idle09999") == (4 + 4 * 9999, 1)
    assert fast.table("jobs") == (4, 1)  # [jobs.a] places [jobs] too


TRICKY = (
    "# a comment\r\n"
    '[jobs."a.b"]  # quoted: the dot is part of the name\r\n'
    'command = "true"\r\n'
    "# next: a line separator (U+2028) and a form feed end lines for splitlines()\u2028x\x0c\n"
    "[ jobs . spaced ]\n"
    'command = "true"\n'
    "[[array]]\n"
    "\t[jobs.'single.quoted'.deeper]\n"
    "[jobs.after]   \n"
    "key = 1\n"
)


def test_headers_are_placed_alike_with_crlf_quotes_and_odd_line_ends():
    fast = Locator(TRICKY)
    assert fast.tables == scanned(TRICKY).tables
    assert fast.table("jobs", "a.b") == (2, 1)
    assert fast.table("jobs", "spaced") == (7, 1)  # after U+2028 and the form feed
    assert fast.table("array") == (None, None)
    assert fast.table("jobs", "single.quoted", "deeper") == (10, 1)
    assert fast.table("jobs", "after") == (11, 1)
    assert fast.key(("jobs", "after"), "key") == (12, 1)


PIECES = (
    "[jobs.a]", "  [ jobs.b ]  # note", '[jobs."c.d"]', "[jobs.'e'.f]", "[[many]]", "[jobs.g",
    "[]", "[jobs.h] x", 'key = "v"', "dotted.key = 1", "# [jobs.commented]", "", "\t[tabbed]",
    "[jobs.\u00e9t\u00e9]", "[a . b . c]", '["q"]',
)  # fmt: skip
ENDS = ("\n", "\r\n", "\r", "\u2028", "\x0c", "\x85", "\x1c", "\x1f\n")


def test_headers_are_placed_alike_in_a_random_mixture_of_lines():
    draw = random.Random(14)  # seeded: a failure here is the same on every run
    for _ in range(20):
        text = "".join(draw.choice(PIECES) + draw.choice(ENDS) for _ in range(400))
        assert Locator(text).tables == scanned(text).tables


def test_a_header_inside_a_multi_line_string_is_no_table():
    text = '[jobs.a]\ncommand = """\n[jobs.fake]\n"""\n[jobs.b]\ncommand = "true"\n'
    locator = Locator(text)
    assert locator.table("jobs", "fake") == (None, None)
    assert locator.table("jobs", "b") == (5, 1)
    assert locator.key(("jobs", "b"), "command") == (6, 1)


def test_a_problem_in_the_last_of_ten_thousand_jobs_names_its_line_and_key(tmp_path: Path):
    text = many_jobs().replace('[jobs.idle09999]\ncommand = "true"\nevery = "50h"', (
        '[jobs.idle09999]\ncommand = "true"\nevery = "50 hours"'
    ))  # fmt: skip
    path = tmp_path / "jobs.toml"
    path.write_text(text)
    path.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        load(path)
    [problem] = info.value.problems
    assert (problem.line, problem.col) == (4 + 4 * 9999 + 2, 1)
    assert str(problem).startswith(f'{path}:40002:1: job "idle09999", key "every": ')


def test_every_job_of_a_large_file_knows_its_line(tmp_path: Path):
    path = tmp_path / "jobs.toml"
    path.write_text(many_jobs(2000))
    path.chmod(0o644)
    config = load(path)
    assert [spec.line for spec in config.jobs.values()] == [4 + 4 * n for n in range(2000)]


def test_a_jobs_fingerprint_is_the_text_the_state_keeps(tmp_path: Path):
    # The state store keeps each job's fingerprint across restarts and versions (a job whose
    # fingerprint changed starts afresh): the encoder the loader keeps for all jobs must
    # write exactly what json.dumps(..., sort_keys=True, default=str) wrote.
    path = tmp_path / "jobs.toml"
    path.write_text(
        '[defaults]\nretries = 2\non_failure = "notify"\n'
        '[jobs.a]\ncommand = ["echo", "é"]\nat = 2099-12-01T09:00:00+01:00\n'
        'env = { B = "2", A = 1 }\ntimeout = 30.5\n'
    )
    path.chmod(0o644)
    assert load(path).jobs["a"].fingerprint == (
        '{"at": "2099-12-01 09:00:00+01:00", "command": ["echo", "\\u00e9"], '
        '"env": {"A": 1, "B": "2"}, "retries": 2, "timeout": 30.5}'
    )
