"""Several hosts on one PostgreSQL database, at the store's level (the engine with virtual
clocks, one per host): each occurrence once, overlap across hosts, leases, a dead host's runs,
the database lost and back, a clock 90 s ahead, and what is refused at start."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import psycopg
import pytest

from jobtui import Outcome, Run, Scheduler, VirtualClock
from jobtui.store import StoreError
from jobtui.store import writer as writer_module
from jobtui.store.pgschema import VERSION
from jobtui.store.pgstore import PostgresStore, read_runs

from .conftest import START, Recorder
from .pg import PASSWORD, PASSWORD_ROLE


class Host:
    """One host: its own clock, scheduler and store, on the shared database."""

    def __init__(self, url, clock, setup, name, *, lease=30.0, fingerprint="v1"):
        self.store = PostgresStore.open_database(url, host=name, lease=lease)
        self.clock = clock
        self.scheduler = Scheduler(timezone="UTC", clock=clock, store=self.store, stop_grace=0)
        setup(self.scheduler)
        self.store.plan_jobs({job.id: job.options for job in self.scheduler.jobs()}, name)
        self.store.restore(self.scheduler, {job.id: fingerprint for job in self.scheduler.jobs()})
        self.recorder = Recorder(self.scheduler)

    async def start(self):
        self.store.start()
        await self.scheduler.start()

    async def stop(self):
        await self.scheduler.stop(0)
        await asyncio.to_thread(self.store.close)


async def noop(run: Run) -> None:
    return None


def runs(url, job=None):
    return sorted(read_runs(url, job=job, limit=100_000), key=lambda r: r["scheduled_for"])


async def advance_together(hosts, seconds, step=1.0):
    """Virtual time moves on every host alike, a step at a time, each step's claims written.
    Which host reaches a moment first changes each step, as it does between real machines."""
    for n in range(int(seconds / step)):
        for host in hosts[n % len(hosts) :] + hosts[: n % len(hosts)]:
            await host.clock.advance(step)
        for host in hosts:
            await asyncio.to_thread(host.store.flush)


@pytest.fixture
def url(pg_cluster, pg_database):
    return pg_cluster.url(pg_database)


async def test_hosts_started_apart_share_one_grid_and_run_each_occurrence_once(url):
    """`every` grids are anchored on the epoch, not on each host's start: two hosts started
    7 s apart claim the same occurrences, so none runs twice, and both get runs."""

    def setup(s):
        for n in range(10):
            s.add_job(noop, every="10s", id=f"job{n}")

    first = Host(url, VirtualClock(START + timedelta(seconds=3)), setup, "a")
    second = Host(url, VirtualClock(START + timedelta(seconds=10)), setup, "b")
    await first.start()
    await first.clock.advance(7)  # the second host starts 7 s later
    await second.start()
    await advance_together([first, second], 60)
    await first.stop()
    await second.stop()
    rows = [r for r in runs(url) if r["outcome"] == "succeeded"]
    keys = [(r["job_id"], r["scheduled_for"]) for r in rows]
    assert len(keys) == len(set(keys))  # never twice
    assert all(r["scheduled_for"][17:19] in ("00", "10", "20", "30", "40", "50") for r in rows)
    per_job = {job: sum(1 for k in keys if k[0] == job) for job in {k[0] for k in keys}}
    assert set(per_job.values()) == {7}, per_job  # 12:00:10 ... 12:01:10, none lost
    hosts = {r["host"] for r in rows}
    assert hosts == {"a", "b"}


async def test_a_host_whose_clock_is_90s_ahead_changes_who_runs_never_how_often(url):
    def setup(s):
        for n in range(5):
            s.add_job(noop, every="10s", id=f"job{n}")

    ahead = Host(url, VirtualClock(START + timedelta(seconds=90)), setup, "ahead")
    right = Host(url, VirtualClock(START), setup, "right")
    await ahead.start()
    await right.start()
    await advance_together([ahead, right], 120)
    await ahead.stop()
    await right.stop()
    rows = runs(url)
    keys = [(r["job_id"], r["scheduled_for"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert {r["outcome"] for r in rows} <= {"succeeded", "skipped"}
    # Every occurrence from 12:00:10 to the ahead host's 12:03:30 has one record, from one
    # host: run, or skipped because (in real time) a run of it was still going on elsewhere.
    assert {k[1][11:19] for k in keys if k[0] == "job0"} == {
        (START + timedelta(seconds=10 * n)).strftime("%H:%M:%S") for n in range(1, 22)
    }


async def test_skip_holds_across_hosts(url):
    """A run of the job going on one host: the other host's next occurrence is skipped, and
    the record says where it runs."""
    release = threading.Event()

    def slow(run: Run) -> None:  # a thread, so the two hosts' loops go on
        release.wait(30)

    def setup(s):
        s.add_job(slow, every="10s", id="report")

    a = Host(url, VirtualClock(START), setup, "a")
    b = Host(url, VirtualClock(START + timedelta(seconds=5)), setup, "b")
    await a.start()
    await b.start()
    await a.clock.advance(10)  # a claims 12:00:10 and runs it
    await a.recorder.wait_for(lambda: a.recorder.started("report"))
    await asyncio.to_thread(a.store.flush)
    await b.clock.advance(15)  # b's 12:00:20 comes due while a's run goes on
    await b.recorder.wait_for(lambda: b.recorder.finished("report"))
    release.set()
    await a.recorder.wait_for(lambda: a.recorder.finished("report"))
    await a.stop()
    await b.stop()
    by_time = {r["scheduled_for"][11:19]: r for r in runs(url, "report")}
    assert by_time["12:00:10"]["outcome"] == "succeeded" and by_time["12:00:10"]["host"] == "a"
    assert by_time["12:00:20"]["outcome"] == "skipped"
    assert "going on a" in by_time["12:00:20"]["reason"]


async def test_a_dead_hosts_runs_are_abandoned_once_by_one_survivor(url, pg_cluster, pg_database):
    with psycopg.connect(pg_cluster.conninfo(pg_database)) as conn:
        PostgresStore.open_database(url, host="setup").close()  # the schema
        conn.execute(
            "INSERT INTO runs (run_id, job_id, scheduled_for, started_at, host, lease_until) "
            "VALUES ('r1', 'dump', now(), now(), 'dead', now() - interval '1s')"
        )
    found = []

    def survivor(name):
        store = PostgresStore.open_database(url, host=name)
        found.append(store.abandoned)
        store.close()

    threads = [threading.Thread(target=survivor, args=(f"s{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(len(f) for f in found) == [0, 0, 0, 1]
    (run,) = runs(url, "dump")
    assert run["outcome"] == "abandoned"
    assert "host dead stopped renewing its lease" in run["reason"]


def test_a_host_started_again_under_its_name_abandons_its_last_lifes_runs(
    url, pg_cluster, pg_database
):
    # JOBTUI_HOST names a host across restarts; its last life was killed within its lease.
    with psycopg.connect(pg_cluster.conninfo(pg_database)) as conn:
        PostgresStore.open_database(url, host="setup").close()  # the schema
        conn.execute(
            "INSERT INTO runs (run_id, job_id, scheduled_for, started_at, host, lease_until) "
            "VALUES ('r1', 'dump', now(), now(), 'h1', now() + interval '30s')"
        )
    store = PostgresStore.open_database(url, host="h1")
    store.close()
    assert [r["run_id"] for r in store.abandoned] == ["r1"]
    (run,) = runs(url, "dump")
    assert run["outcome"] == "abandoned"
    assert "host h1 started again while this run was going on" in run["reason"]


async def test_a_living_hosts_leases_are_renewed(url):
    release = threading.Event()

    def slow(run: Run) -> None:
        release.wait(30)

    def setup(s):
        s.add_job(slow, every="10s", id="long")

    a = Host(url, VirtualClock(START), setup, "a", lease=0.6)
    await a.start()
    await a.clock.advance(10)
    await a.recorder.wait_for(lambda: a.recorder.started("long"))
    await asyncio.sleep(1.5)  # real time: well past one lease, renewed every 0.2 s meanwhile
    other = PostgresStore.open_database(url, host="b", lease=0.6)
    assert other.abandoned == []
    other.close()
    release.set()
    await a.recorder.wait_for(lambda: a.recorder.finished("long"))
    await a.stop()
    assert [r["outcome"] for r in runs(url, "long")] == ["succeeded"]


async def test_a_host_that_loses_the_database_stops_claiming_and_writes_its_results_later(
    url, pg_cluster, pg_database
):
    """The connection cut while a run goes on: no claim, no run; the run going on finishes
    and its result is written when the database is back; the occurrence nobody could claim
    is recorded as missed."""
    release = threading.Event()

    def slow(run: Run) -> None:
        release.wait(30)

    def setup(s):
        s.add_job(slow, every="1m", id="long")
        s.add_job(noop, every="1m", id="quick")
        s.add_job(noop, every="1s", id="tick", start=START + timedelta(minutes=1))

    a = Host(url, VirtualClock(START), setup, "a")
    await a.start()
    await a.clock.advance(60)  # 12:01: all claimed and run; long goes on
    await a.recorder.wait_for(lambda: a.recorder.finished("quick"))
    await asyncio.to_thread(a.store.flush)
    pg_cluster.cut(pg_database)
    before = len(a.recorder.finished("tick"))
    for n in range(1, 21):  # 20 s cut while runs go on: not one of tick's claims can be made
        await a.clock.advance(1)
        await a.recorder.wait_for(lambda n=n: len(a.recorder.finished("tick")) == before + n)
    await a.clock.advance(40)  # 12:02
    await a.recorder.wait_for(
        lambda: len(a.recorder.finished("quick")) == 2 and "cannot" in a.store.status
    )
    release.set()  # the run going on finishes while the database is away
    await a.recorder.wait_for(lambda: len(a.recorder.finished("long")) == 1)
    assert [r.outcome for r in a.recorder.finished("quick")] == [
        Outcome.SUCCEEDED,
        Outcome.SKIPPED,
    ]  # 12:02 did not run: it could not be claimed
    pg_cluster.restore(pg_database)
    await a.recorder.wait_for(lambda: not a.store.status, timeout=30)
    await a.stop()
    by_key = {(r["job_id"], r["scheduled_for"][11:16]): r for r in runs(url)}
    assert by_key[("long", "12:01")]["outcome"] == "succeeded"
    assert by_key[("quick", "12:02")]["outcome"] == "missed"
    assert "could not be reached" in by_key[("quick", "12:02")]["reason"]
    assert by_key[("long", "12:02")]["outcome"] in ("missed", "skipped")
    ticks = [r for r in runs(url, "tick") if "12:01:01" <= r["scheduled_for"][11:19] <= "12:01:20"]
    assert [r["outcome"] for r in ticks] == ["missed"] * 20  # none ran, none lost unsaid
    assert not [r for r in a.recorder.finished("tick") if r.outcome is Outcome.SUCCEEDED]


async def test_a_database_dropped_mid_run_starts_nothing_more_and_says_so(
    url, pg_cluster, pg_database, monkeypatch
):
    monkeypatch.setattr(writer_module, "CLOSE_RETRIES_FOR", 0.5)

    def setup(s):
        s.add_job(noop, every="1m", id="j")

    a = Host(url, VirtualClock(START), setup, "a")
    await a.start()
    await a.clock.advance(60)
    await a.recorder.wait_for(lambda: a.recorder.finished("j"))
    await asyncio.to_thread(a.store.flush)
    pg_cluster.drop_database(pg_database)
    await a.clock.advance(120)
    await a.recorder.wait_for(
        lambda: len(a.recorder.finished("j")) == 3 and "does not exist" in a.store.status
    )
    assert [r.outcome for r in a.recorder.finished("j")][1:] == [Outcome.SKIPPED] * 2
    await a.stop()


async def test_hosts_running_different_jobs_toml_are_reported(url):
    def setup(s):
        s.add_job(noop, every="1m", id="j")

    a = Host(url, VirtualClock(START), setup, "a", fingerprint="v1")
    b = Host(url, VirtualClock(START), setup, "b", fingerprint="v2")
    statuses = []
    b.store.on_status = statuses.append
    await a.start()
    await b.start()
    await b.recorder.wait_for(lambda: any("different jobs.toml" in s for s in statuses))
    assert " a (a, " in statuses[-1] or "a (a," in statuses[-1]
    await a.stop()
    await b.stop()


def test_a_newer_schema_is_refused(url, pg_cluster, pg_database):
    PostgresStore.open_database(url).close()
    with psycopg.connect(pg_cluster.conninfo(pg_database)) as conn:
        conn.execute("UPDATE jobtui_schema SET version = %s", (VERSION + 1,))
    with pytest.raises(StoreError, match="newer than this jobtui understands"):
        PostgresStore.open_database(url)


def test_a_wrong_password_is_refused_naming_the_database(pg_cluster, pg_database, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "wrong")
    url = pg_cluster.url(pg_database, user=PASSWORD_ROLE)
    with pytest.raises(StoreError, match="password authentication failed") as info:
        PostgresStore.open_database(url)
    assert pg_database in str(info.value)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    PostgresStore.open_database(url).close()


async def test_pause_and_resume_on_one_host_take_effect_on_every_host_within_a_second(
    url, tmp_path
):
    from jobtui.config import load
    from jobtui.host import Host as JobtuiHost

    config_path = tmp_path / "jobs.toml"
    config_path.write_text(
        f'[scheduler]\nstate = "{url}"\n\n[jobs.report]\ncommand = "true"\nevery = "1h"\n'
    )
    config_path.chmod(0o644)
    hosts = []
    for name in ("a", "b", "c"):
        config = load(config_path)
        store = PostgresStore.open_database(url, host=name)
        hosts.append(JobtuiHost(config, store=store, clock=VirtualClock(START)))
    for host in hosts:
        await host.start(watch=False)
    a, b, c = hosts
    recorder = Recorder(b.scheduler)
    loop = asyncio.get_running_loop()
    began = loop.time()
    a.scheduler.pause("report", reason="maintenance")
    await recorder.wait_for(
        lambda: b.scheduler.get("report").paused and c.scheduler.get("report").paused, 5
    )
    assert loop.time() - began < 1.0
    assert b.scheduler.get("report").pause_reason == "maintenance (on host a)"
    began = loop.time()
    c.scheduler.resume("report")
    await recorder.wait_for(
        lambda: not a.scheduler.get("report").paused and not b.scheduler.get("report").paused, 5
    )
    assert loop.time() - began < 1.0
    for host in hosts:
        await host.stop(0)


async def test_the_console_history_says_which_host_ran_each_run(url, tmp_path):
    from jobtui.config import load
    from jobtui.console.app import JobtuiApp
    from jobtui.console.screens.detail import JobDetailScreen

    config_path = tmp_path / "jobs.toml"
    config_path.write_text(
        f'[scheduler]\nstate = "{url}"\n\n[jobs.report]\ncommand = "true"\nevery = "1m"\n'
    )
    config_path.chmod(0o644)

    def setup(s):
        s.add_job(noop, every="1m", id="report")

    other = Host(url, VirtualClock(START), setup, "elsewhere")
    await other.start()
    await other.clock.advance(60)
    await other.recorder.wait_for(lambda: other.recorder.finished("report"))
    await other.stop()
    store = PostgresStore.open_database(url, host="here")
    app = JobtuiApp(
        load(config_path), clock=VirtualClock(START), store=store, grace=0, watch_file=False
    )
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, JobDetailScreen)
        app.screen.refresh_view()
        await app.screen.workers.wait_for_complete()
        await pilot.pause()
        history = app.screen.query_one("#history")
        assert history.row_count == 1
        assert "scheduled on elsewhere" in str(history.get_row_at(0)[5])
    store.close()  # as `jobtui` does after the console (idempotent)


async def test_a_host_whose_jobs_toml_changes_while_it_runs_is_reported_by_the_others(url):
    def setup(s):
        s.add_job(noop, every="1m", id="j")

    a = Host(url, VirtualClock(START), setup, "a", lease=0.6)
    b = Host(url, VirtualClock(START), setup, "b", lease=0.6)
    statuses = []
    a.store.on_status = statuses.append
    await a.start()
    await b.start()
    b.store.set_fingerprint("j", "v2")  # b's jobs.toml was edited and reloaded
    await a.recorder.wait_for(lambda: any("different jobs.toml" in s for s in statuses), 10)
    assert "b (b, " in statuses[-1]
    await a.stop()
    await b.stop()


def test_a_connection_string_in_messages_never_shows_its_password():
    from jobtui.store.pgstore import shown_as

    # One libpq refuses to parse (an unknown query parameter), one in key=value form.
    assert shown_as("postgresql://jobs:s3cret@db.internal/jobs?bogus=1") == "db.internal/jobs"
    assert shown_as("host=db.internal dbname=jobs password='s3 cret'") == (
        "host=db.internal dbname=jobs password=***"
    )
