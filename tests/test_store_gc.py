"""The garbage collector and a busy store (issue 14): a recorded run leaves no reference cycle
behind (so nothing per run waits for the cycle collector), and the jobtui command's host moves
its long-lived objects out of the collector's walk, while a program that only imports jobtui
keeps its collector as it set it."""

from __future__ import annotations

import gc
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from jobtui import Scheduler, VirtualClock
from jobtui.config import load
from jobtui.host import FULL_COLLECTION_EVERY, SWITCH_INTERVAL, Host
from jobtui.store import Store, read_runs

from .conftest import START

RUNS = 2000


@pytest.fixture
def collector_restored() -> Iterator[None]:
    """Whatever a test does to the collector is undone after it."""
    thresholds = gc.get_threshold()
    yield
    gc.enable()
    gc.unfreeze()
    gc.set_threshold(*thresholds)


async def freed_only_by_the_collector(
    store: Store, scheduler: Scheduler, clock: VirtualClock, *advances: float
) -> int:
    """Start ``store`` and ``scheduler``, let ``clock`` advance by each of ``advances`` with
    the collector off (only reference counts free what the runs make), stop both: how many
    objects the cycle collector then finds."""
    store.start()
    await scheduler.start()
    gc.collect()
    gc.disable()
    for seconds in advances:
        await clock.advance(seconds)
    await scheduler.stop()
    store.close()
    left_in_cycles = gc.collect()
    gc.enable()
    return left_in_cycles


async def test_runs_recorded_through_the_store_leave_no_reference_cycle(
    tmp_path: Path, collector_restored: None
) -> None:
    store = Store.open(tmp_path / "state.db")
    clock = VirtualClock(START)
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store, stop_grace=0)

    async def body(run) -> None:  # type: ignore[no-untyped-def]
        run.progress = 0.5
        run.log("a line of output")

    for n in range(RUNS):
        scheduler.add_job(body, id=f"j{n}", at=START + timedelta(minutes=1))
    left_in_cycles = await freed_only_by_the_collector(store, scheduler, clock, 60)
    assert len(read_runs(tmp_path / "state.db", limit=RUNS + 10)) == RUNS
    # A few objects of the test's own machinery may form cycles; one per run (or per batch of
    # claims answered) would be thousands.
    assert left_in_cycles < 50, f"{left_in_cycles} objects freed only by the cycle collector"


async def test_a_pass_of_claims_answered_leaves_no_reference_cycle(
    tmp_path: Path, collector_restored: None
) -> None:
    """A batch and its tickets refer to each other until every run is answered: after that,
    nothing of a pass (its runs, through their tickets) may wait for the cycle collector."""
    store = Store.open(tmp_path / "state.db")
    clock = VirtualClock(START)
    scheduler = Scheduler(timezone="UTC", clock=clock, store=store, stop_grace=0)

    async def body(run) -> None:  # type: ignore[no-untyped-def]
        return None

    for n in range(500):
        scheduler.add_job(body, every="1m", id=f"j{n}")
    # The second advance: the first pass's batch is no longer watched for its deadline.
    left_in_cycles = await freed_only_by_the_collector(store, scheduler, clock, 60, 60)
    assert len(read_runs(tmp_path / "state.db", limit=2000)) == 1000
    assert left_in_cycles < 50, f"{left_in_cycles} objects freed only by the cycle collector"


JOBS = """
[jobs.nightly]
command = "true"
cron = "0 3 * * *"
"""


def in_collector_walk(target: object) -> bool:
    return any(tracked is target for tracked in gc.get_objects())


async def test_the_jobtui_commands_host_freezes_its_jobs_once_started_and_collects_fully_less(
    tmp_path: Path, collector_restored: None
) -> None:
    (tmp_path / "jobs.toml").write_text(textwrap.dedent(JOBS))
    thresholds = gc.get_threshold()
    host = Host(load(tmp_path / "jobs.toml"), tune_runtime=True)
    job = host.scheduler.get("nightly")
    assert in_collector_walk(job)
    await host.start(watch=False)
    try:
        assert gc.get_freeze_count() > 0
        assert not in_collector_walk(job), "the job is still walked by every full collection"
        assert gc.isenabled()  # the collector still runs for what is made from now on
        # Full passes rarer; the young generations' passes as Python makes them.
        assert gc.get_threshold() == (*thresholds[:2], FULL_COLLECTION_EVERY)
    finally:
        await host.stop(0)


async def test_a_host_or_scheduler_made_by_a_program_leaves_the_collector_alone(
    tmp_path: Path, collector_restored: None
) -> None:
    (tmp_path / "jobs.toml").write_text(textwrap.dedent(JOBS))
    gc.unfreeze()
    thresholds = gc.get_threshold()
    host = Host(load(tmp_path / "jobs.toml"))
    await host.start(watch=False)
    try:
        assert gc.get_freeze_count() == 0
        assert in_collector_walk(host.scheduler.get("nightly"))
        assert gc.get_threshold() == thresholds and gc.isenabled()
    finally:
        await host.stop(0)


@pytest.fixture
def switching_restored() -> Iterator[None]:
    interval = sys.getswitchinterval()
    yield
    sys.setswitchinterval(interval)


async def test_the_jobtui_commands_host_hands_the_gil_round_sooner_and_a_programs_does_not(
    tmp_path: Path, collector_restored: None, switching_restored: None
) -> None:
    """The store's writer thread waits for the GIL a switch interval at a time while the loop
    is busy (tune_switching): the command's host makes that 0.2 ms; a program keeps its own."""
    (tmp_path / "jobs.toml").write_text(textwrap.dedent(JOBS))
    sys.setswitchinterval(0.005)
    program = Host(load(tmp_path / "jobs.toml"))
    await program.start(watch=False)
    await program.stop(0)
    assert sys.getswitchinterval() == pytest.approx(0.005)
    command = Host(load(tmp_path / "jobs.toml"), tune_runtime=True)
    await command.start(watch=False)
    try:
        assert SWITCH_INTERVAL < 0.005
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    finally:
        await command.stop(0)
