"""Hosts (jobtui's Host, with its alerts, controller and reloader) sharing a PostgreSQL state,
in one process: what one host finds while others come and go."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any

import psycopg

from jobtui import Outcome, Run, Scheduler, VirtualClock
from jobtui.config import load
from jobtui.control.client import RemoteController
from jobtui.control.controller import LocalController
from jobtui.control.interface import RunFailed
from jobtui.control.server import ControlServer
from jobtui.host import Host
from jobtui.store import pgstore, postgres
from jobtui.store.pgstore import PostgresStore, read_runs
from jobtui.store.writes import Kind, Write

from .conftest import START, Recorder
from .test_postgres import Host as EngineHost
from .test_postgres import noop

LEASE = 0.6  # seconds: a dead host's runs are found within about one


def write_jobs(folder, text):
    folder.mkdir()
    path = folder / "jobs.toml"
    path.write_text(text)
    path.chmod(0o644)
    return path


def stop_renewing(host: Host) -> None:
    """The host's lease thread stops, as a host that died (or lost the database) does: its
    runs' leases run out while its process, here, goes on."""
    backend = host.store.backend
    backend._stop.set()
    backend._leaser.join(10)


async def until(check, timeout=15.0, what="it"):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        await asyncio.sleep(0.05)


async def test_a_host_dying_while_others_run_is_reported_once_by_the_one_that_found_it(
    pg_cluster, pg_database, tmp_path
):
    url = pg_cluster.url(pg_database)
    missed = tmp_path / "missed.log"
    hosts, servers, remotes = {}, [], []
    heard: dict[str, list] = {}  # by each host's controller, and by a console attached to it
    for name in ("a", "b", "c"):
        path = write_jobs(
            tmp_path / name,
            f'[scheduler]\nstate = "{url}"\n\n[jobs.slow]\ncommand = "sleep 30"\n'
            f'on_missed = "echo {name} $JOBTUI_OUTCOME $JOBTUI_RUN_ID >> {missed}"\n',
        )
        store = PostgresStore.open_database(url, host=name, lease=LEASE)
        host = Host(load(path), store=store, clock=VirtualClock(START), stop_grace=0)
        local = LocalController(host)
        heard[name], heard[f"{name} attached"] = [], []
        local.subscribe(heard[name].append)
        await host.start(watch=False)
        servers.append(ControlServer(local, flush_interval=0.02))
        await servers[-1].start()
        config = host.config
        remotes.append(RemoteController(config.path, config.timezone, state_path=config.state_path))
        remotes[-1].subscribe(heard[f"{name} attached"].append)
        await remotes[-1].start()
        hosts[name] = host

    def failed() -> dict[str, list[RunFailed]]:
        said = {k: [n for n in v if isinstance(n, RunFailed)] for k, v in heard.items()}
        return {k: v for k, v in said.items() if v}

    a, b, c = hosts.values()
    try:
        run = a.scheduler.run_now("slow", wait=False)
        await Recorder(a.scheduler).wait_for(lambda: run.pid is not None, 10)
        await asyncio.to_thread(a.store.flush)
        stop_renewing(a)
        await until(
            lambda: len(failed()) == 2 and missed.exists(), what="a survivor to report the run"
        )
    finally:
        for remote in remotes:
            await remote.close()
        for server in servers:
            await server.close()
        for host in (b, c):
            await host.stop(0)  # their hook deliveries drain
    try:
        (line,) = missed.read_text().splitlines()
        finder = line.split()[0]
        assert finder in ("b", "c") and line.split()[1:] == ["abandoned", run.run_id]
        notices = failed()
        assert set(notices) == {finder, f"{finder} attached"}
        for said in notices.values():
            (notice,) = said
            assert notice.job_id == "slow"
            assert notice.message.startswith(f"run {run.run_id} on host a abandoned: ")
            assert "host a stopped renewing its lease" in notice.message
        last = hosts[finder].scheduler.get("slow").last_run
        assert last is not None and last.outcome is Outcome.ABANDONED
        assert last.run_id == run.run_id
        (record,) = read_runs(url, job="slow")
        assert record["outcome"] == "abandoned" and f"found by host {finder}" in record["reason"]
    finally:
        await a.stop(0)


async def test_a_job_added_by_reloading_joins_the_shared_grid_on_every_host(
    pg_cluster, pg_database, tmp_path
):
    """Two hosts add the same `every` job by editing their jobs.toml, 14 s apart: the grid is
    the epoch's on both, not each host's moment of reloading, so no occurrence runs twice."""
    url = pg_cluster.url(pg_database)
    before = f'[scheduler]\nstate = "{url}"\n\n[jobs.old]\ncommand = "true"\n'
    added = before + '\n[jobs.new]\ncommand = "true"\nevery = "10s"\n'
    hosts = []
    for name in ("a", "b"):
        path = write_jobs(tmp_path / name, before)
        store = PostgresStore.open_database(url, host=name)
        host = Host(load(path), store=store, clock=VirtualClock(START), stop_grace=0)
        await host.start(watch=False)
        hosts.append(host)
    a, b = hosts
    try:
        for second in range(1, 61):
            for host in hosts:
                await host.scheduler.clock.advance(1)  # type: ignore[attr-defined]
            if second in (3, 17):  # a reloads at 12:00:03, b at 12:00:17
                host = a if second == 3 else b
                host.config.path.write_text(added)
                assert await host.reload()
            for host in hosts:
                await asyncio.to_thread(host.store.flush)
        await until(lambda: not a.scheduler.running_runs() and not b.scheduler.running_runs())
    finally:
        for host in hosts:
            await host.stop(0)
    rows = [r for r in read_runs(url, job="new", limit=1000) if r["outcome"] == "succeeded"]
    times = sorted(r["scheduled_for"][11:19] for r in rows)
    # 12:00:10 (a alone has the job), then 12:00:20 ... 12:01:00 by one host each, none twice.
    assert times == [f"12:0{m}:{s}0" for m, s in [(0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (1, 0)]]


def held_runs_host(url: str, release: threading.Event, *jobs: str, lease: float) -> EngineHost:
    """Host "a" with ``jobs`` due every 10 s, whose runs (threads) go on until ``release``."""

    def slow(run: Run) -> None:
        release.wait(30)

    def setup(scheduler: Scheduler) -> None:
        for job_id in jobs:
            scheduler.add_job(slow, every="10s", id=job_id)

    return EngineHost(url, VirtualClock(START), setup, "a", lease=lease)


async def leases_while_locked(conninfo: str, lock: str, count: str) -> set[int]:
    """Hold ``lock`` (a SELECT ... FOR UPDATE) for two leases of real time, reading ``count``
    (the runs still leased) every 50 ms meanwhile; the counts seen."""
    seen: set[int] = set()
    with (
        psycopg.connect(conninfo, autocommit=True) as watcher,
        psycopg.connect(conninfo) as locker,
    ):
        locker.execute(lock)
        held_until = time.monotonic() + 3.0  # real time: two leases must pass
        while time.monotonic() < held_until:
            row = watcher.execute(count).fetchone()
            assert row is not None
            seen.add(row[0])
            await asyncio.sleep(0.05)
        locker.rollback()
    return seen


async def leases_while_runs_held(
    pg_cluster: Any, pg_database: str, jobs: tuple[str, ...], lock: str, count: str
) -> tuple[set[int], Recorder]:
    """Host "a" runs ``jobs`` (a lease of 1.5 s) and holds them going while ``lock`` is held
    for two leases: the counts ``count`` read meanwhile (leases_while_locked), and the host's
    recorder once the runs ended and it stopped."""
    release = threading.Event()
    a = held_runs_host(pg_cluster.url(pg_database), release, *jobs, lease=1.5)
    await a.start()
    try:
        await a.clock.advance(10)
        await a.recorder.wait_for(lambda: all(a.recorder.started(job) for job in jobs))
        await asyncio.to_thread(a.store.flush)
        leased = await leases_while_locked(pg_cluster.conninfo(pg_database), lock, count)
    finally:
        release.set()
        await a.recorder.wait_for(lambda: all(a.recorder.finished(job) for job in jobs))
        await a.stop()
    return leased, a.recorder


async def test_a_hung_statement_of_the_lease_thread_does_not_let_a_short_lease_run_out(
    pg_cluster, pg_database
):
    """The host's presence row is locked (a stalled statement) for two leases: its runs' leases
    are renewed all the same, so no survivor could take them for abandoned."""
    leased, recorder = await leases_while_runs_held(
        pg_cluster,
        pg_database,
        ("long",),
        "SELECT 1 FROM hosts WHERE host = 'a' FOR UPDATE",
        "SELECT count(*) FROM runs WHERE host = 'a' AND outcome IS NULL AND lease_until > now()",
    )
    assert leased == {1}, "the run's lease ran out while a statement hung"
    assert recorder.outcomes("long") == [Outcome.SUCCEEDED]


async def test_a_run_row_its_writer_holds_does_not_stop_the_other_runs_leases(
    pg_cluster, pg_database
):
    """One of the host's run rows is locked for two leases (its writer's transaction, stuck
    behind other hosts' locks): the host's other runs keep their leases all the same (the
    renewal waited for the locked row, was cut off at its timeout, and renewed none; a
    survivor then took runs still going for abandoned)."""
    leased, recorder = await leases_while_runs_held(
        pg_cluster,
        pg_database,
        ("one", "two"),
        "SELECT 1 FROM runs WHERE job_id = 'one' FOR UPDATE",
        "SELECT count(*) FROM runs WHERE job_id = 'two' AND outcome IS NULL "
        "AND lease_until > now()",
    )
    assert leased == {1}, "a run's lease ran out behind another run's locked row"
    assert recorder.outcomes("two") == [Outcome.SUCCEEDED]


async def test_a_bug_in_one_beat_of_the_lease_thread_does_not_stop_the_leases(
    pg_cluster, pg_database, monkeypatch
):
    """One beat of the lease thread fails with an error not the database's (a bug): the next
    beats renew the host's runs all the same (the thread died, and the leases ran out)."""
    url = pg_cluster.url(pg_database)
    release = threading.Event()
    failed = threading.Event()
    real = postgres._live_hosts

    def live_hosts(conn, lease):
        if not failed.is_set():
            failed.set()
            raise RuntimeError("a bug")
        return real(conn, lease)

    a = held_runs_host(url, release, "long", lease=0.9)
    await a.start()
    try:
        await a.clock.advance(10)
        await a.recorder.wait_for(lambda: a.recorder.started("long"))
        await asyncio.to_thread(a.store.flush)
        monkeypatch.setattr(postgres, "_live_hosts", live_hosts)
        await until(failed.is_set, what="the failing beat")
        with psycopg.connect(pg_cluster.conninfo(pg_database), autocommit=True) as watcher:
            held_until = time.monotonic() + 2.0  # real time: two leases must pass
            while time.monotonic() < held_until:
                (leased,) = watcher.execute(
                    "SELECT count(*) FROM runs WHERE host = 'a' AND outcome IS NULL "
                    "AND lease_until > now()"
                ).fetchone()
                assert leased == 1, "the run's lease ran out after the failing beat"
                await asyncio.sleep(0.05)
    finally:
        release.set()
        await a.recorder.wait_for(lambda: a.recorder.finished("long"))
        await a.stop()


async def test_hosts_writing_the_same_occurrences_in_other_orders_do_not_deadlock(
    pg_cluster, pg_database
):
    """Host b's claim batch holds the claim locks of j1 and j2 and has written j2's occurrence;
    host a's batch records both occurrences as skipped (its own runs of them go on), in the
    other order. Both commit. Without the claim locks, a's batch inserted j1's row first and
    the two waited on each other: one was rolled back as a deadlock (a claim batch rolled back
    refuses its claims, so occurrences went missed instead of run)."""
    conninfo = pg_cluster.conninfo(pg_database)
    store = PostgresStore.open_database(pg_cluster.url(pg_database), host="a")
    at = START.timestamp()
    insert = (
        "INSERT INTO runs (run_id, job_id, scheduled_for, started_at, host, lease_until) "
        "VALUES (%s, %s, to_timestamp(%s), now(), 'b', now() + interval '30s')"
    )
    writes = [
        Write(Kind.OCCURRENCE, (f"a{job}", job, at, at, "skipped", "going on"), job_id=job)
        for job in ("j1", "j2")
    ]
    writer_pid = store.backend._conn.info.backend_pid
    try:
        with (
            psycopg.connect(conninfo, autocommit=True) as watcher,
            psycopg.connect(conninfo) as b,
        ):
            b.execute(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtext(j) AS k "
                "FROM unnest(%s::text[]) AS j ORDER BY k) AS keys",
                (["j1", "j2"],),
            )
            b.execute(insert, ("b2", "j2", at))
            writing = asyncio.ensure_future(asyncio.to_thread(store.backend.write, writes))

            def waiting() -> bool:
                row = watcher.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (writer_pid,)
                ).fetchone()
                return row is not None and row[0] == "Lock"

            await until(waiting, what="a's batch to wait for b's")
            b.execute(insert, ("b1", "j1", at))
            b.commit()
        await writing
        rows = {r["job_id"]: r["host"] for r in read_runs(pg_cluster.url(pg_database))}
        assert rows == {"j1": "b", "j2": "b"}
    finally:
        store.close()


async def test_a_run_cancelled_before_its_claim_went_out_leaves_no_run_going_for_ever(
    pg_cluster, pg_database, monkeypatch
):
    """b's occurrence falls to a, so b's claim waits its hand-off; a does not claim it (its
    clock is behind), and b's user cancels the job meanwhile. b's claim does not go out: it
    went out after the run's end, made a row no end came for, and the row stayed "running",
    its lease renewed by b, for as long as b ran (a skip job then ran on no host)."""
    monkeypatch.setattr(pgstore, "HANDOFF", 1.0)  # real time: room to cancel within it
    url = pg_cluster.url(pg_database)
    jobs = [f"j{n}" for n in range(20)]

    def setup(scheduler):
        for job in jobs:
            scheduler.add_job(noop, every="10s", id=job)

    a = EngineHost(url, VirtualClock(START), setup, "a")
    b = EngineHost(url, VirtualClock(START), setup, "b")
    await a.start()
    await b.start()
    advancing = None
    try:
        due = START.timestamp() + 10
        job = next(
            j for j in jobs if not b.store._preferred(SimpleNamespace(job_id=j, scheduled_ts=due))
        )
        for other in jobs:
            if other != job:
                b.scheduler.pause(other)
        advancing = asyncio.ensure_future(b.clock.advance(10))  # held by the claim
        await until(lambda: b.scheduler.running_runs(), what="b's run waiting for its claim")
        b.scheduler.cancel(job)
        await advancing
        past = time.monotonic() + 2.0  # real time: past the hand-off
        await until(lambda: time.monotonic() > past, what="the hand-off to pass")
        await asyncio.to_thread(b.store.flush)
        assert [r for r in read_runs(url, job=job) if r["outcome"] is None] == []
        await a.clock.advance(10)  # a, its clock there now, runs it
        await a.recorder.wait_for(lambda: a.recorder.finished(job))
        assert a.recorder.outcomes(job) == [Outcome.SUCCEEDED]
    finally:
        if advancing is not None and not advancing.done():
            advancing.cancel()
        await b.stop()
        await a.stop()


async def test_a_claim_that_waited_for_another_hosts_lock_still_gets_a_whole_lease(
    pg_cluster, pg_database
):
    """Another host holds the job's claim lock longer than a lease: when this host's claim
    lands, its run's lease counts from then (a lease counted from when the claim began waiting
    was already out, and a survivor took the run, just started, for abandoned)."""
    url = pg_cluster.url(pg_database)
    release = threading.Event()
    a = held_runs_host(url, release, "long", lease=1.5)
    await a.start()
    try:
        with psycopg.connect(pg_cluster.conninfo(pg_database), autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(hashtext('long'))")  # as a claim batch does
            # a's claim of 12:00:10 waits for the lock (the clock's advance, for the claim)
            advancing = asyncio.ensure_future(a.clock.advance(10))
            waited_until = time.monotonic() + 2.0  # real time: past one lease
            await until(lambda: time.monotonic() >= waited_until, what="a lease to pass")
            assert not a.recorder.started("long")
            stop_renewing(a)  # only the claim's own lease counts from here
            other.execute("SELECT pg_advisory_unlock(hashtext('long'))")
            await advancing
            await a.recorder.wait_for(lambda: a.recorder.started("long"))
            (leased,) = other.execute(
                "SELECT count(*) FROM runs WHERE host = 'a' AND outcome IS NULL "
                "AND lease_until > now() + interval '1s'"
            ).fetchone()
        assert leased == 1
    finally:
        release.set()
        await a.recorder.wait_for(lambda: a.recorder.finished("long"))
        await a.stop()
