"""`jobtui why`: a history holding each kind of non-run, explained in plain words."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from jobtui.config import load
from jobtui.control.why import JobFacts, Why, explain
from jobtui.store import Store, read_context, read_runs

JOBS = """
[scheduler]
timezone = "Europe/Berlin"

[jobs.nightly]
command = "true"
cron = "30 2 * * *"

[jobs.held]
command = "true"
cron = "30 2 * * *"

[jobs.broken]
command = "false"
cron = "30 2 * * *"
"""


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def make_history(tmp_path: Path) -> Path:
    """The state file a few weeks of a nightly job would leave (times in UTC; Berlin is
    UTC+1 until 2026-03-29 01:00, then UTC+2)."""
    (tmp_path / "jobs.toml").write_text(JOBS)
    (tmp_path / "jobs.toml").chmod(0o644)
    db = tmp_path / ".jobtui" / "state.db"
    Store.open(db).close()  # the real schema, migrated
    conn = sqlite3.connect(db)
    latest = 'catchup="latest" ran only the newest occurrence (2026-04-02T00:30:00Z)'
    still = "still running: run r4 for 2026-04-03T00:30:00Z"
    gone = "jobtui stopped while this run was going; found at start-up"
    day = "2026-03-28T01:30"
    runs = [
        # run_id, scheduled, started, finished, outcome, reason, detected, attempt
        ("r1", day, day, "2026-03-28T01:30:04", "succeeded", "", None, 1),
        ("r2", "2026-03-29T01:00", "2026-03-29T01:00", "2026-03-29T01:00:02", "succeeded", "",
         None, 1),
        ("m1", "2026-03-30T00:30", None, "2026-04-02T02:40", "missed", latest, None, 0),
        ("m2", "2026-03-31T00:30", None, "2026-04-02T02:40", "missed", latest, None, 0),
        ("m3", "2026-04-01T00:30", None, "2026-04-02T02:40", "missed", latest, None, 0),
        ("r3", "2026-04-02T00:30", "2026-04-02T02:40", "2026-04-02T02:41", "succeeded", "",
         None, 1),
        ("r4", "2026-04-03T00:30", "2026-04-03T00:30", "2026-04-04T00:45", "failed", "", None, 1),
        ("s1", "2026-04-04T00:30", None, "2026-04-04T00:30", "skipped", still, None, 0),
        ("a1", "2026-04-05T00:30", "2026-04-05T00:30", None, "abandoned", gone,
         "2026-04-05T06:00", 1),
    ]  # fmt: skip
    for run_id, scheduled, started, finished, outcome, reason, detected, attempt in runs:
        conn.execute(
            "INSERT INTO runs (run_id, job_id, scheduled_for, started_at, finished_at, outcome, "
            "reason, detected_at, attempt) VALUES (?, 'nightly', ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                ts(scheduled),
                started and ts(started),
                finished and ts(finished),
                outcome,
                reason,
                detected and ts(detected),
                attempt,
            ),
        )
    sessions = [("2026-03-27T10:00", "2026-03-29T23:12"), ("2026-04-02T02:40", None)]
    for started, stopped in sessions:
        conn.execute(
            "INSERT INTO sessions (started_at, stopped_at, pid) VALUES (?, ?, 1)",
            (ts(started), stopped and ts(stopped)),
        )
    conn.execute(
        "INSERT INTO job_events (job_id, at, kind, detail) VALUES "
        "('held', ?, 'paused', 'paused from the console'), "
        "('broken', ?, 'disabled', '5 consecutive failures; last: exit status 1')",
        (ts("2026-04-06T08:15"), ts("2026-04-07T00:31")),
    )
    conn.execute(
        "INSERT INTO jobs (job_id, paused, pause_reason, disabled_reason, updated_at) VALUES "
        "('held', 1, 'paused from the console', '', 0), "
        "('broken', 0, '', '5 consecutive failures; last: exit status 1', 0)"
    )
    conn.commit()
    conn.close()
    return tmp_path / "jobs.toml"


def why(path: Path, job: str, *more: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "jobtui", "why", job, str(path), *more],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_why_explains_each_kind_of_run_and_non_run(tmp_path: Path) -> None:
    path = make_history(tmp_path)
    lines = why(path, "nightly").splitlines()
    assert lines[:7] == [
        "ran at 02:30 Mar 28 (succeeded in 4s)",
        "02:30 Mar 29 did not exist (DST gap): ran at 03:00 Mar 29 (succeeded in 2s)",
        "missed 3 occurrences while jobtui was down from 01:12 Mar 30 to 04:40 Apr 02; "
        "ran the latest (catchup = latest)",
        "ran at 04:40 Apr 02 (succeeded in 1m)",
        "ran at 02:30 Apr 03 (failed in 1d)",
        "skipped at 02:30 Apr 04: the 02:30 run was still going (overlap = skip)",
        "ran at 02:30 Apr 05, but jobtui stopped while it was going (abandoned; found at "
        "08:00 Apr 05)",
    ]
    assert lines[7].startswith("next: ") and "CET" in lines[7]

    held = why(path, "held").splitlines()
    assert held == [
        "paused since 10:15 Apr 06: paused from the console",
        "next: none while paused (resume it to run again)",
    ]
    broken = why(path, "broken").splitlines()
    assert broken[0] == (
        "disabled since 02:31 Apr 07 after 5 failures in a row (last: exit status 1)"
    )

    data = json.loads(why(path, "nightly", "--json"))
    assert data["job_id"] == "nightly" and data["state"] == "scheduled"
    assert [line["kind"] for line in data["lines"]] == [
        "ran", "dst_gap", "down", "ran", "ran", "skipped", "abandoned",
    ]  # fmt: skip
    assert data["lines"][2]["at"] == "2026-03-30T00:30:00+00:00"


def test_why_says_when_the_next_run_is_in_the_jobs_zone(tmp_path: Path) -> None:
    path = make_history(tmp_path)
    config = load(path)
    scheduler = config.make_scheduler()
    now = datetime(2026, 12, 6, 11, 30, tzinfo=UTC)  # 12:30 in Berlin
    [next_time] = scheduler.next_times("nightly", 1, after=now)
    answer = explain(
        JobFacts.of(scheduler.get("nightly")),
        read_runs(config.state_path, job="nightly"),
        read_context(config.state_path, "nightly"),
        now=now.timestamp(),
        next_ts=next_time.timestamp(),
    )
    assert answer.next_text == "next: tomorrow 02:30 CET (in 14h)"
    # What a socket client rebuilds from the JSON is the same answer.
    assert Why.from_dict(json.loads(json.dumps(answer.to_dict()))) == answer


def test_why_refuses_an_unknown_job(tmp_path: Path) -> None:
    path = make_history(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "jobtui", "why", "nightlly", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert 'no job "nightlly"' in result.stderr and "nightly" in result.stderr


async def test_the_store_keeps_sessions_and_pauses_for_why(tmp_path: Path) -> None:
    from jobtui.host import Host, open_store

    path = tmp_path / "jobs.toml"
    path.write_text('[jobs.tick]\ncommand = "true"\nevery = "1h"\n')
    path.chmod(0o644)
    for _ in range(2):  # two sessions: started and stopped twice
        config = load(path)
        host = Host(config, store=open_store(config))
        await host.start(watch=False)
        if not read_context(config.state_path, "tick")["events"]:
            host.scheduler.pause("tick", reason="paused from the console")
            host.scheduler.resume("tick")
        await host.stop()
    context = read_context(config.state_path, "tick")
    sessions = context["sessions"]
    assert len(sessions) == 2 and all(s["stopped_at"] is not None for s in sessions)
    assert sessions[0]["started_at"] > sessions[1]["stopped_at"]  # newest first
    assert [(e["kind"], e["detail"]) for e in context["events"]] == [
        ("scheduled", "resumed"),
        ("paused", "paused from the console"),
    ]
    # The CLI, reading beside jobtui, takes the running plan's next time (the `every` grid
    # anchored when the job was first added), not one counted from its own start.
    planned = context["job"]["next_fire"]
    data = json.loads(why(path, "tick", "--json"))
    assert data["next"] == datetime.fromtimestamp(planned, UTC).isoformat()


def test_why_says_what_is_wrong_with_a_state_path_that_is_no_database(tmp_path: Path) -> None:
    path = make_history(tmp_path)
    state = load(path).state_path
    state.unlink()
    state.write_text("not a database\n")
    result = subprocess.run(
        [sys.executable, "-m", "jobtui", "why", "nightly", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "file is not a database" in result.stderr and "Traceback" not in result.stderr

    state.unlink()
    os.mkfifo(state)  # opening it would wait for a writer that never comes
    result = subprocess.run(
        [sys.executable, "-m", "jobtui", "why", "nightly", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "named pipe" in result.stderr
