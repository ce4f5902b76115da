"""The cycle collector around a scheduling pass (engine/collector.py's PassCollector): what the
pass made is not walked before the runs it started took their first step, and the collector is
otherwise the program's own: on, on its thresholds, collecting a job's garbage as usual."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jobtui import Scheduler
from jobtui.engine.collector import PassCollector

from .conftest import VirtualClock

THRESHOLDS = (100, 10, 10)  # the program's: a pass of RUNS runs makes far more than 100 objects
RUNS = 500


@pytest.fixture
def collector_watched() -> Iterator[list[int]]:
    """The program's thresholds set to THRESHOLDS for the test; yields, for each collection
    that starts, how many asyncio tasks it is about to walk."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    walked_tasks: list[int] = []

    def note(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            young = [o for g in range(info["generation"] + 1) for o in gc.get_objects(g)]
            walked_tasks.append(sum(isinstance(o, asyncio.Task) for o in young))

    gc.callbacks.append(note)
    try:
        yield walked_tasks
    finally:
        gc.callbacks.remove(note)
        gc.enable()
        gc.set_threshold(*thresholds)


def add_jobs(scheduler: Scheduler, body: Callable[[], Any]) -> None:
    for n in range(RUNS):
        scheduler.add_job(body, id=f"j{n}", every="1m")


async def test_the_runs_of_a_pass_end_in_their_first_step_before_the_collector_walks_them(
    scheduler: Scheduler, clock: VirtualClock, collector_watched: list[int]
) -> None:
    # Walked at the end of the pass, 500 tasks about to be freed were a stall for nothing
    # (20,000 runs due at once: 25-45 ms).
    ran = 0

    async def body() -> None:
        nonlocal ran
        ran += 1

    add_jobs(scheduler, body)
    async with scheduler:
        gc.collect()  # nothing left over from before counts
        collector_watched.clear()
        await clock.advance(60)
        assert ran == RUNS
        assert gc.isenabled()
        assert gc.get_threshold() == THRESHOLDS  # the program's again once they took it
    assert collector_watched, "nothing made the collector run: the test proves nothing"
    assert max(collector_watched) < RUNS // 10  # not one walk took the pass's tasks


async def test_garbage_a_job_makes_in_its_first_step_is_collected_as_usual(
    scheduler: Scheduler, clock: VirtualClock, collector_watched: list[int]
) -> None:
    collections_during_step: list[int] = []

    async def body() -> None:
        before = len(collector_watched)
        for _ in range(50 * THRESHOLDS[0]):  # reference cycles: only the collector frees them
            node: dict[str, Any] = {}
            node["self"] = node
        collections_during_step.append(len(collector_watched) - before)

    add_jobs(scheduler, body)
    async with scheduler:
        await clock.advance(60)
        assert gc.get_threshold() == THRESHOLDS
    assert len(collections_during_step) == RUNS
    assert sum(collections_during_step) > 0  # on, though the pass's own objects uncounted


async def test_a_threshold_a_job_sets_in_its_first_step_is_kept(
    scheduler: Scheduler, clock: VirtualClock, collector_watched: list[int]
) -> None:
    async def body() -> None:
        gc.set_threshold(1234, 5, 6)

    add_jobs(scheduler, body)
    async with scheduler:
        await clock.advance(60)
        assert gc.get_threshold() == (1234, 5, 6)


def test_passes_of_two_schedulers_at_once_give_the_program_its_threshold_back(
    collector_watched: list[int],
) -> None:
    # The threshold is the process's: a second scheduler's pass raises it further while the
    # first's runs take their first step, and the last to count again puts back the
    # program's own, whichever it is. (Deterministic here; on one loop the two can meet.)
    for order in ("first counts first", "second counts first"):
        first, second = PassCollector(), PassCollector()
        made: list[list[object]] = []
        with first:
            made += [[] for _ in range(RUNS)]
        with second:
            made += [[] for _ in range(RUNS)]
        assert first.uncounted and second.uncounted
        assert gc.get_threshold()[0] > 2 * RUNS
        ends = [first, second] if order == "first counts first" else [second, first]
        for pass_collector in ends:
            pass_collector.count_again()
        assert gc.get_threshold() == THRESHOLDS, order


def test_a_pass_raises_the_threshold_by_what_it_made_and_keeps_what_the_program_sets(
    collector_watched: list[int],
) -> None:
    # What was counted before the pass still counts; only the pass's own are left out, so
    # the program's next collection comes about when it would have.
    small = PassCollector()
    gc.collect()
    before = [[] for _ in range(THRESHOLDS[0] - 20)]  # under the threshold: no collection yet
    with small:
        made = [[] for _ in range(40)]
    assert THRESHOLDS[0] < gc.get_threshold()[0] <= THRESHOLDS[0] + len(made) + 10
    small.count_again()
    assert gc.get_threshold() == THRESHOLDS
    # The program sets its own while a pass's raise stands: kept, and the raises of later
    # passes are undone back to it.
    earlier, later = PassCollector(), PassCollector()
    with earlier:
        made += [[] for _ in range(RUNS)]
    gc.set_threshold(1234, 5, 6)
    with later:
        made += [[] for _ in range(2000)]
    assert gc.get_threshold()[0] > 1234
    later.count_again()
    earlier.count_again()
    assert gc.get_threshold() == (1234, 5, 6)
    del before, made


async def test_a_program_that_collects_by_hand_is_left_to_it(
    scheduler: Scheduler, clock: VirtualClock, collector_watched: list[int]
) -> None:
    # A young threshold of 0 turns automatic collection off: a pass must not turn it on,
    # not even while its runs take their first step.
    seen: set[tuple[int, int, int]] = set()

    async def body() -> None:
        seen.add(gc.get_threshold())

    add_jobs(scheduler, body)
    gc.set_threshold(0, 10, 10)
    async with scheduler:
        await clock.advance(60)
        assert gc.get_threshold() == (0, 10, 10)
    assert seen == {(0, 10, 10)}
