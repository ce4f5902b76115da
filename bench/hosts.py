"""Several hosts on one PostgreSQL database, next to one host on SQLite, in the same run.

    python bench/hosts.py                 # 100 jobs on a 1 s grid for 10 s each setup
    python bench/hosts.py --jobs 200 --seconds 20

Each setup runs real `jobtui --headless` processes on a throwaway PostgreSQL cluster
(tests/pg.py; run as root, as CI does). Printed per setup: scheduled runs claimed and recorded
per second, the p99 lateness of their starts (start - scheduled time, from the store's
records), and, for 3 hosts, the failover time after one is SIGKILLed mid-run: from the kill to
its runs recorded as abandoned by a survivor (bounded by the lease, 2 s here), and the
occurrences no host recorded (must be 0).
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from tests.pg import start_cluster

JOBTUI = [sys.executable, "-m", "jobtui.cli"]
LEASE = 2.0


def write_config(folder: Path, state: str, jobs: int, command: str) -> Path:
    lines = ["[scheduler]", f'state = "{state}"']
    if state.startswith("postgresql"):
        lines.append(f'lease = "{LEASE:g}s"')
    for n in range(jobs):
        lines += [f"[jobs.j{n:03}]", f'command = "{command}"', 'every = "1s"']
    path = folder / "jobs.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return path


def start(config: Path, name: str, folder: Path) -> subprocess.Popen:
    log = open(folder / f"{name}.log", "w")  # noqa: SIM115 - the process keeps it
    return subprocess.Popen(
        [*JOBTUI, str(config), "--headless", "--grace", "1", "--log-format", "json"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "JOBTUI_HOST": name},
    )


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        proc.wait(30)


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def pg_rows(conninfo: str, since: float) -> list[tuple]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT job_id, extract(epoch FROM scheduled_for)::float8, "
            "extract(epoch FROM started_at)::float8, outcome, host, "
            "extract(epoch FROM detected_at)::float8 FROM runs "
            "WHERE scheduled_for >= to_timestamp(%s) AND NOT manual",
            (since,),
        ).fetchall()


def running(conninfo: str, host: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM runs WHERE host = %s AND outcome IS NULL", (host,)
        ).fetchone()
    return row[0] if row else 0


def wait_for_runs(conninfo: str, host: str, timeout: float) -> None:
    """Until the host has several runs going (polled from the database), or fail loudly."""
    deadline = time.monotonic() + timeout
    while running(conninfo, host) < 5:
        if time.monotonic() > deadline:
            raise SystemExit(f"host {host} had no runs going after {timeout:g} s; not killing it")
        time.sleep(0.05)  # polling the database other processes write


def summarise(name: str, rows: list[tuple], since: float, until: float) -> dict[str, object]:
    ran = [r for r in rows if r[3] in ("succeeded", "failed") and since <= r[1] < until]
    late = [r[2] - r[1] for r in ran if r[2] is not None]
    return {
        "setup": name,
        "runs/s": len(ran) / (until - since),
        "p99 late ms": p99(late) * 1000,
        "hosts used": len({r[4] for r in ran}) if ran and len(ran[0]) > 4 else 1,
    }


def run_sqlite(jobs: int, seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, "state.db", jobs, "true")
        began = time.time()
        proc = start(config, "sqlite", folder)
        time.sleep(2 + seconds)  # a benchmark's measured window, not a test's wait
        stop([proc])
        since, until = began + 2, began + 2 + seconds
        with sqlite3.connect(folder / "state.db") as conn:
            rows = conn.execute(
                "SELECT job_id, scheduled_for, started_at, outcome FROM runs WHERE manual = 0"
            ).fetchall()
        return summarise("SQLite, 1 host", rows, since, until)


def run_postgres(cluster, hosts: int, jobs: int, seconds: float, kill: bool) -> dict[str, object]:
    database = cluster.new_database()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # With a kill, runs last long enough that the dead host always has some going.
        command = "sleep 2.5" if kill else "true"
        config = write_config(folder, cluster.url(database), jobs, command)
        began = time.time()
        procs = [start(config, f"h{n + 1}", folder) for n in range(hosts)]
        time.sleep(2 + seconds / 2)
        killed_at = None
        if kill:
            # Runs start in waves (every job is on the same grid): a kill in the gap between
            # two waves finds no run of the victim to abandon, and failover reads nothing.
            wait_for_runs(cluster.conninfo(database), "h2", timeout=10 + seconds)
            procs[1].kill()
            killed_at = time.time()
        time.sleep(max(0.0, began + 2 + seconds - time.time()))
        stop([p for n, p in enumerate(procs) if not (kill and n == 1)])
        since, until = began + 2, began + 2 + seconds
        rows = pg_rows(cluster.conninfo(database), since)
    cluster.drop_database(database)
    label = f"PostgreSQL, {hosts} host{'s' if hosts > 1 else ''}" + (", 1 killed" if kill else "")
    result = summarise(label, rows, since, until)
    if killed_at is not None:
        detected = [r[5] for r in rows if r[3] == "abandoned"]
        result["failover s"] = (max(detected) - killed_at) if detected else float("nan")
        seen = {(r[0], round(r[1])) for r in rows}
        wanted = {(f"j{n:03}", s) for n in range(jobs) for s in range(int(since) + 1, int(until))}
        result["unrecorded"] = len(wanted - seen)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    results = [run_sqlite(args.jobs, args.seconds)]
    cluster_gen = start_cluster()
    cluster = next(cluster_gen)
    try:
        results.append(run_postgres(cluster, 1, args.jobs, args.seconds, kill=False))
        results.append(run_postgres(cluster, 3, args.jobs, args.seconds, kill=False))
        results.append(run_postgres(cluster, 3, args.jobs, args.seconds, kill=True))
    finally:
        cluster_gen.close()
    print(f"{args.jobs} jobs every 1 s, {args.seconds:g} s measured per setup\n")
    print(f"{'setup':<32} {'runs/s':>8} {'p99 late ms':>12} {'hosts':>6} {'failover s':>11} "
          f"{'unrecorded':>11}")  # fmt: skip
    for r in results:
        failover = f"{r['failover s']:.2f}" if "failover s" in r else "-"
        unrecorded = str(r["unrecorded"]) if "unrecorded" in r else "-"
        print(
            f"{r['setup']:<32} {r['runs/s']:>8.1f} {r['p99 late ms']:>12.1f} "
            f"{r['hosts used']:>6} {failover:>11} {unrecorded:>11}"
        )
    base = results[0]["runs/s"]
    for r in results[1:]:
        print(f"{r['setup']}: {r['runs/s'] / base:.2f}x SQLite's runs/s")  # type: ignore[operator]


if __name__ == "__main__":
    main()
