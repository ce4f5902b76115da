"""The cycle collector while the state store's writer is behind (store/backlog.py): the young
generation's threshold is raised while a backlog waits to be written and is as the program had
it once the writer caught up; a program's own threshold is kept, a database that cannot be
written and a backlog that lasts do not hold the collector off, and raises made by several
(the scheduler's passes, the writer) each undo only their own."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Iterator

import pytest

from jobtui.engine.collector import YOUNG_RAISES
from jobtui.store.backlog import BACKLOG, DEFERRED, MAX_DEFERRAL, BacklogCollector
from jobtui.store.writer import BatchWriter
from jobtui.store.writes import Kind, StoreUnavailable, Write

from .test_store_batches import BlockingBackend

YOUNG = 700  # the program's young threshold in these tests


@pytest.fixture
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(YOUNG, before[1], before[2])
    yield
    gc.set_threshold(*before)


class HeldBackend(BlockingBackend):
    """Each write waits until the test lets it go; ``refuse`` makes writes fail as a full
    disk does."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse = False

    def write(self, batch: list[Write]) -> list[tuple[Write, bool]]:
        written = super().write(batch)
        if self.refuse:
            raise StoreUnavailable("database or disk is full")
        return written


def notes(count: int) -> list[Write]:
    return [Write(Kind.JOB_EVENT, (f"j{n}", 1.0, "finished", "")) for n in range(count)]


@contextlib.asynccontextmanager
async def behind(backend: HeldBackend, writes: int) -> AsyncIterator[BatchWriter]:
    """A writer holding its first batch in the backend, ``writes`` queued before it started
    (pushed after, the woken writer could take the first alone, before the rest came);
    closed after, the backend let go and writing."""
    writer = BatchWriter(backend, max_buffer=100_000)
    writer.push_many(notes(writes))
    writer.start(asyncio.get_running_loop())
    try:
        assert await asyncio.to_thread(backend.writing.wait, 10)
        yield writer
    finally:
        backend.refuse = False
        backend.go.set()
        await asyncio.to_thread(writer.close)


async def test_the_collector_waits_while_the_writer_is_behind_and_not_once_it_caught_up(
    thresholds: None,
) -> None:
    backend = HeldBackend()
    async with behind(backend, 3 * BACKLOG) as writer:
        assert gc.get_threshold()[0] == YOUNG + DEFERRED
        backend.go.set()
        assert await asyncio.to_thread(writer.flush, 10)
        assert gc.get_threshold()[0] == YOUNG
        # A few writes at a time are no backlog: the collector is left as it is.
        backend.writing.clear()
        writer.push_many(notes(BACKLOG // 2))
        assert await asyncio.to_thread(writer.flush, 10)
        assert backend.writing.is_set() and gc.get_threshold()[0] == YOUNG


async def test_a_threshold_the_program_sets_meanwhile_is_kept_and_0_is_never_raised(
    thresholds: None,
) -> None:
    backend = HeldBackend()
    async with behind(backend, 3 * BACKLOG) as writer:
        gc.set_threshold(1234)
        backend.go.set()
        assert await asyncio.to_thread(writer.flush, 10)
        assert gc.get_threshold()[0] == 1234
    gc.set_threshold(0)  # a program that collects by hand
    collector = BacklogCollector()
    collector.behind(3 * BACKLOG)
    assert not collector.raised and gc.get_threshold()[0] == 0
    collector.caught_up()
    assert gc.get_threshold()[0] == 0


async def test_records_waiting_for_a_database_that_cannot_be_written_do_not_hold_it_off(
    thresholds: None,
) -> None:
    backend = HeldBackend()
    failed = asyncio.Event()
    async with behind(backend, 3 * BACKLOG) as writer:
        writer.on_status = lambda status: failed.set()
        assert gc.get_threshold()[0] == YOUNG + DEFERRED
        backend.refuse = True
        backend.go.set()
        await asyncio.wait_for(failed.wait(), 10)
        assert "cannot write the state database" in writer.status
        assert gc.get_threshold()[0] == YOUNG  # and stays so, try after try
        backend.writing.clear()
        assert await asyncio.to_thread(backend.writing.wait, 10)
        assert gc.get_threshold()[0] == YOUNG
        backend.refuse = False  # back: the backlog is written, the collector as it was
        assert await asyncio.to_thread(writer.flush, 10)
        assert gc.get_threshold()[0] == YOUNG


def test_a_backlog_that_lasts_holds_the_collector_off_no_longer_than_max_deferral(
    thresholds: None,
) -> None:
    now = [100.0]
    collector = BacklogCollector(clock=lambda: now[0])
    collector.behind(BACKLOG)
    assert gc.get_threshold()[0] == YOUNG + DEFERRED
    now[0] += MAX_DEFERRAL / 2
    collector.behind(BACKLOG * 5)
    assert gc.get_threshold()[0] == YOUNG + DEFERRED
    now[0] += MAX_DEFERRAL
    collector.behind(BACKLOG * 5)
    assert gc.get_threshold()[0] == YOUNG
    collector.behind(BACKLOG * 5)  # the same backlog: not again
    assert gc.get_threshold()[0] == YOUNG
    collector.caught_up()
    collector.behind(BACKLOG)  # a new one
    assert gc.get_threshold()[0] == YOUNG + DEFERRED
    collector.caught_up()
    assert gc.get_threshold()[0] == YOUNG
    collector.behind(BACKLOG - 1)
    assert gc.get_threshold()[0] == YOUNG


@pytest.mark.parametrize("order", ["first made, first undone", "last made, first undone"])
def test_overlapping_raises_each_undo_their_own(thresholds: None, order: str) -> None:
    """A scheduler's pass (PassCollector) and a writer's backlog raise the threshold at once."""
    pass_raise = YOUNG_RAISES.raise_by(5000)
    collector = BacklogCollector()
    collector.behind(BACKLOG)
    assert pass_raise is not None and collector.raised
    assert gc.get_threshold()[0] == YOUNG + 5000 + DEFERRED
    if order == "first made, first undone":
        YOUNG_RAISES.undo(pass_raise)
        assert gc.get_threshold()[0] == YOUNG + DEFERRED
        collector.caught_up()
    else:
        collector.caught_up()
        assert gc.get_threshold()[0] == YOUNG + 5000
        YOUNG_RAISES.undo(pass_raise)
    assert gc.get_threshold()[0] == YOUNG
