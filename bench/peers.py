"""What showing other hosts' runs live costs, and how live it is, on a throwaway PostgreSQL
cluster (tests/pg.py; run as root, as CI does).

    python bench/peers.py                 # 10, 100, 1000 jobs with 200 kept runs each
    python bench/peers.py --runs 1000

Printed: the time of one look at the other hosts' runs (what each host does every 0.5 s) by
the number of this host's jobs, and the delay from a progress change on host B (through B's
store and writer, as a run's progress goes) to host A's picture of it, with the default poll
and a poll five times shorter measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from jobtui.engine import Run, RunProgress
from jobtui.store.pgpeers import PEER_POLL, PeerWatcher, look
from jobtui.store.pgstore import PostgresStore
from tests.pg import start_cluster


def fill(conninfo: str, jobs: int, runs: int) -> list[str]:
    """``runs`` finished runs per job, a quarter of them on host b, and one run of every
    tenth job going on on b."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE runs")
        conn.execute(
            "INSERT INTO runs (run_id, job_id, scheduled_for, started_at, finished_at, outcome, "
            "host) SELECT 'r' || j || '-' || n, 'job' || j, to_timestamp(n * 60), "
            "to_timestamp(n * 60), to_timestamp(n * 60 + 1), 'succeeded', "
            "CASE WHEN n %% 4 = 0 THEN 'b' ELSE 'a' END "
            "FROM generate_series(1, %s) AS j, generate_series(1, %s) AS n",
            (jobs, runs),
        )
        conn.execute(
            "INSERT INTO runs (run_id, job_id, scheduled_for, started_at, host, progress) "
            "SELECT 'live' || j, 'job' || j, now(), now(), 'b', 0.5 "
            "FROM generate_series(1, %s, 10) AS j",
            (jobs,),
        )
        conn.execute("ANALYZE runs")
    return [f"job{j}" for j in range(1, jobs + 1)]


def look_cost(conninfo: str, job_ids: list[str], times: int = 40) -> tuple[float, float]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        look(conn, "a", job_ids)  # warm
        spent = []
        for _ in range(times):
            began = time.perf_counter()
            look(conn, "a", job_ids)
            spent.append((time.perf_counter() - began) * 1000)
    spent.sort()
    return statistics.median(spent), spent[int(len(spent) * 0.95)]


async def delays(url: str, poll: float, changes: int = 40) -> list[float]:
    """Seconds from B's progress change to A's picture showing it."""
    store = PostgresStore.open_database(url, host=f"b-{poll}")
    store.plan_jobs({})
    store.start()
    run = Run("job1", f"bench-{poll}", time.time())
    assert await store.claim(run)
    seen: dict[float, float] = {}
    changed = threading.Condition()

    def on_change(picture) -> None:
        for shown in picture.running.get("job1", ()):
            if shown.run_id == run.run_id and shown.progress is not None:
                with changed:
                    seen.setdefault(shown.progress, time.perf_counter())
                    changed.notify_all()

    watcher = PeerWatcher(store.backend.conninfo, "db", "a", lambda: ["job1"], on_change, poll=poll)
    watcher.start()
    out = []
    try:
        for step in range(1, changes + 1):
            value = step / 100
            run.progress = value
            began = time.perf_counter()
            store.record(RunProgress(time.time(), run))
            deadline = began + 10
            while value not in seen and time.perf_counter() < deadline:
                await asyncio.to_thread(_wait, changed, 0.05)
            out.append(seen[value] - began)
            await asyncio.sleep(random.uniform(0, poll))  # changes fall at any phase of the poll
    finally:
        watcher.close()
        store.close()
    return out


def _wait(condition: threading.Condition, timeout: float) -> None:
    with condition:
        condition.wait(timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="kept runs per job")
    args = parser.parse_args()
    cluster_gen = start_cluster()
    cluster = next(cluster_gen)
    try:
        database = cluster.new_database()
        conninfo, url = cluster.conninfo(database), cluster.url(database)
        PostgresStore.open_database(url, host="setup").close()  # the schema
        print(f"one look at the other hosts' runs ({args.runs} kept runs per job)\n")
        print(f"{'jobs':>6} {'runs in db':>11} {'median ms':>10} {'p95 ms':>8} {'ms per job':>11}")
        for jobs in (10, 100, 1000):
            job_ids = fill(conninfo, jobs, args.runs)
            median, p95 = look_cost(conninfo, job_ids)
            print(
                f"{jobs:>6} {jobs * args.runs:>11} {median:>10.2f} {p95:>8.2f} "
                f"{median / jobs:>11.4f}"
            )
        fill(conninfo, 0, 0)
        print("\nprogress on host b -> host a's picture of it (40 changes each)\n")
        print(f"{'poll s':>7} {'median s':>9} {'p95 s':>7} {'max s':>7} {'median / poll':>14}")
        for poll in (PEER_POLL, PEER_POLL / 5):
            got = asyncio.run(delays(url, poll))
            got.sort()
            print(
                f"{poll:>7.2f} {statistics.median(got):>9.3f} {got[int(len(got) * 0.95)]:>7.3f} "
                f"{max(got):>7.3f} "
                f"{statistics.median(got) / poll:>14.2f}"
            )
        cluster.drop_database(database)
    finally:
        cluster_gen.close()


if __name__ == "__main__":
    main()
