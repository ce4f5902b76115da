"""Several `jobtui --headless` hosts on one PostgreSQL database, as real processes: each
occurrence once across them, a host SIGKILLed in the middle, and what is refused at start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from .conftest import wait_until
from .pg import PASSWORD_ROLE
from .test_cli import JOBTUI, jobtui, write


def test_a_password_in_jobs_toml_is_refused_naming_the_key(tmp_path):
    config = write(
        tmp_path / "jobs.toml",
        """
        [scheduler]
        state = "postgresql://jobs:s3cret@db.internal/jobs"

        [jobs.a]
        command = "true"
        every = "1m"
        """,
    )
    done = jobtui("check", str(config))
    assert done.returncode == 2
    assert "jobs.toml:2" in done.stderr and "state" in done.stderr
    assert "holds a password" in done.stderr and "PGPASSWORD" in done.stderr
    assert "s3cret" not in done.stderr


def test_an_unreachable_database_at_start_exits_1_naming_the_host_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    config = write(
        tmp_path / "jobs.toml",
        f"""
        [scheduler]
        state = "postgresql://jobs@127.0.0.1:1/jobs"

        [jobs.a]
        command = "touch {marker}"
        every = "1s"
        run_immediately = true
        """,
    )
    done = jobtui(str(config), "--headless")
    assert done.returncode == 1
    assert "cannot connect to 127.0.0.1/jobs" in done.stderr
    assert not marker.exists()


def test_a_wrong_password_exits_1_saying_so(tmp_path, pg_cluster, pg_database):
    config = write(
        tmp_path / "jobs.toml",
        f"""
        [scheduler]
        state = "{pg_cluster.url(pg_database, user=PASSWORD_ROLE)}"

        [jobs.a]
        command = "true"
        every = "1s"
        """,
    )
    done = jobtui(str(config), "--headless", env={**os.environ, "PGPASSWORD": "wrong"})
    assert done.returncode == 1
    assert "password authentication failed" in done.stderr and pg_database in done.stderr


def named(name: str | None) -> dict[str, str]:
    """The environment of a process on host ``name`` (None: named MACHINE:PID)."""
    env = {k: v for k, v in os.environ.items() if k != "JOBTUI_HOST"}
    return env if name is None else {**env, "JOBTUI_HOST": name}


def start_host(config: Path, name: str | None, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [*JOBTUI, str(config), "--headless", "--grace", "1", "--log-format", "json"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=named(name),
        )


def stop_hosts(procs: Iterable[subprocess.Popen], sig: int = signal.SIGINT) -> None:
    """Signal every host and wait for each; one that does not stop in time is killed, so no
    host outlives its test (a wait that timed out left the others running)."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
    try:
        for proc in procs:
            proc.wait(20)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_status_beside_headless_hosts_on_a_database_finds_each_one(
    tmp_path, pg_cluster, pg_database
):
    """`jobtui status jobs.toml` reaches the daemon running that file on this machine, keyed
    by the file, the database and JOBTUI_HOST: two hosts here on one database each have
    their own control socket."""
    config = write(
        tmp_path / "jobs.toml",
        f"""
        [scheduler]
        state = "{pg_cluster.url(pg_database)}"

        [jobs.report]
        command = "true"
        every = "1h"
        """,
    )
    names = ("h1", "h2", None)
    logs = {name: tmp_path / f"{name or 'unnamed'}.log" for name in names}
    hosts = {name: start_host(config, name, log) for name, log in logs.items()}
    try:
        wait_until(
            lambda: all(log.exists() and "control_listening" in log.read_text() for log in
                        logs.values()),
            30,
            "every host's control socket",
        )  # fmt: skip
        for name in names:
            done = jobtui("status", str(config), "--json", env=named(name))
            assert done.returncode == 0, (name, done.stderr)
            status = json.loads(done.stdout)
            assert status["daemon"]["pid"] == hosts[name].pid
            assert [job["id"] for job in status["jobs"]] == ["report"]
    finally:
        stop_hosts(hosts.values())
    elsewhere = jobtui("status", str(config), env=named("h3"))
    assert elsewhere.returncode == 1
    assert "no jobtui is running" in elsewhere.stderr and "JOBTUI_HOST=h3" in elsewhere.stderr


def succeeded_runs(log: Path) -> int:
    """Runs this host claimed and ran to success so far (a claim lost is a skipped run)."""
    text = log.read_text() if log.exists() else ""
    return sum(
        1
        for line in text.splitlines()
        if '"event": "run_finished"' in line and '"outcome": "succeeded"' in line
    )


def going_on(cluster, database: str, host: str) -> int:
    import psycopg

    with psycopg.connect(cluster.conninfo(database)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM runs WHERE host = %s AND outcome IS NULL", (host,)
        ).fetchone()
    return row[0] if row else 0


def ran_after_failover(cluster, database: str) -> int:
    """Runs that ended well after started after a survivor found the dead host's runs."""
    import psycopg

    with psycopg.connect(cluster.conninfo(database)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM runs WHERE outcome = 'succeeded' AND started_at > "
            "(SELECT max(detected_at) FROM runs WHERE outcome = 'abandoned')"
        ).fetchone()
    return row[0] if row else 0


def test_three_hosts_one_killed_run_each_occurrence_once(tmp_path, pg_cluster, pg_database):
    """The issue's test: three --headless hosts on one database, 50 jobs on a 1 s grid for
    30 s, one host SIGKILLed in the middle."""
    # Each run takes longer than the grid's step, so a run of every job is always going on
    # (the occurrences meanwhile are skipped, by the overlap policy, on every host).
    jobs = "".join(f'\n[jobs.j{n:02}]\ncommand = "sleep 2.5"\nevery = "1s"\n' for n in range(50))
    config = write(
        tmp_path / "jobs.toml",
        f"""
        [scheduler]
        state = "{pg_cluster.url(pg_database)}"
        lease = "2s"
        """
        + jobs,
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("h1", "h2", "h3")}
    hosts = {name: start_host(config, name, log) for name, log in logs.items()}
    try:
        wait_until(lambda: all(succeeded_runs(log) >= 1 for log in logs.values()), 30, "runs")
        began = time.monotonic()  # every host runs jobs: the 30 s start here
        wait_until(lambda: time.monotonic() >= began + 14, 20, "the middle")
        # Runs start in waves (every job is on the same grid): kill while a wave is going.
        wait_until(lambda: going_on(pg_cluster, pg_database, "h2") >= 5, 10, "h2's runs")
        hosts["h2"].kill()  # SIGKILL in the middle of runs
        hosts["h2"].wait(10)
        # The survivors find its runs once its lease is out, and the jobs go on after that.
        wait_until(lambda: ran_after_failover(pg_cluster, pg_database) >= 10, 15, "failover")
        wait_until(lambda: time.monotonic() >= began + 30, 20, "the 30 s to pass")
        for name in ("h1", "h3"):
            hosts[name].send_signal(signal.SIGINT)
        for name in ("h1", "h3"):
            assert hosts[name].wait(20) == 0, logs[name].read_text()[-2000:]
    finally:
        for proc in hosts.values():
            if proc.poll() is None:
                proc.kill()
    done = jobtui("history", str(config), "--json", "--limit", "100000")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    ran = [r for r in runs if r["outcome"] in ("succeeded", "failed", "abandoned")]
    # never twice: one record per occurrence, and no occurrence run by two hosts
    keys = Counter((r["job_id"], r["scheduled_for"]) for r in runs)
    assert max(keys.values()) == 1
    assert {r["host"] for r in ran} == {"h1", "h2", "h3"}  # every host's runs are there
    # The dead host's runs going on when it died: abandoned once each, found by a survivor.
    abandoned = [r for r in runs if r["outcome"] == "abandoned"]
    assert abandoned, Counter((r["host"], r["outcome"]) for r in runs)
    assert all(r["host"] == "h2" for r in abandoned)
    assert all("host h2 stopped renewing its lease" in r["reason"] for r in abandoned)
    # ... and reported once, in the log of the survivor that found each (as at a start-up).
    reported = [
        json.loads(line)
        for name in ("h1", "h3")
        for line in logs[name].read_text().splitlines()
        if '"event": "run_abandoned"' in line
    ]
    assert sorted(e["run"] for e in reported) == sorted(r["run_id"] for r in abandoned)
    assert {e["host"] for e in reported} == {"h2"}
    assert not [r for r in runs if r["outcome"] is None]  # nothing left "running" for ever
    # None lost unexplained: from the first second all hosts ran to the last second before
    # the survivors stopped, every occurrence of every job has a record saying what happened.
    seconds = sorted({r["scheduled_for"] for r in runs})
    by_job: dict[str, set[str]] = {}
    for r in runs:
        by_job.setdefault(r["job_id"], set()).add(r["scheduled_for"])
    middle = seconds[3:-3]
    for job_id, times in by_job.items():
        assert not set(middle) - times, (job_id, sorted(set(middle) - times))
    assert len(by_job) == 50


def test_a_conninfo_password_and_a_bad_lease_are_refused_a_lease_without_database_warned(
    tmp_path,
):
    config = write(
        tmp_path / "jobs.toml",
        """
        [scheduler]
        state = "host=db.internal dbname=jobs password=s3cret"
        lease = "0.5s"

        [jobs.a]
        command = "true"
        every = "1m"
        """,
    )
    done = jobtui("check", str(config))
    assert done.returncode == 2
    assert "holds a password" in done.stderr
    assert "jobs.toml:3" in done.stderr and "cannot be renewed in time" in done.stderr
    config = write(
        tmp_path / "jobs.toml",
        """
        [scheduler]
        lease = "10s"

        [jobs.a]
        command = "true"
        every = "1m"
        """,
    )
    done = jobtui("check", str(config))
    assert done.returncode == 0
    assert "lease applies only when state is a PostgreSQL database" in done.stderr
