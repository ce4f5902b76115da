"""Middleware around runs, and awaiting runs: what a library user wraps around every run and
what `await scheduler.run_now(...)` gives back."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path
from typing import Any

import pytest

from jobtui import InvalidJobOption, Outcome, Run, RunNotSucceeded, Scheduler
from jobtui.config import ConfigError, load

from .conftest import START
from .test_console import write

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


async def test_middleware_wraps_every_run_outermost_first_and_injects_context(clock):
    seen: list[str] = []

    async def outer(run: Run, call_next: Any) -> Any:
        seen.append(f"outer in {run.job_id}")
        token = request_id.set(f"req-{run.run_id}")
        try:
            return await call_next()
        finally:
            request_id.reset(token)
            seen.append(f"outer out {run.outcome}")

    async def doubles(run: Run, call_next: Any) -> Any:
        seen.append("inner in")
        return 2 * await call_next()

    scheduler = Scheduler(timezone="UTC", clock=clock, middleware=[outer])
    scheduler.add_middleware(doubles)

    async def in_loop() -> int:
        seen.append(f"async body sees {request_id.get() != ''}")
        return 20

    def in_thread() -> int:
        seen.append(f"thread body sees {request_id.get() != ''}")
        return 4

    scheduler.add_job(in_loop, id="loop")
    scheduler.add_job(in_thread, id="thread")
    async with scheduler:
        assert (await scheduler.run_now("loop")).result == 40
        assert (await scheduler.run_now("thread")).result == 8
    assert seen == [
        "outer in loop",
        "inner in",
        "async body sees True",
        "outer out None",
        "outer in thread",
        "inner in",
        "thread body sees True",
        "outer out None",
    ]


async def test_an_exception_in_middleware_fails_that_run_not_the_scheduler(clock):
    calls = 0

    async def flaky(run: Run, call_next: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("metrics server down")
        return await call_next()

    async def job() -> str:
        return "done"

    scheduler = Scheduler(timezone="UTC", clock=clock, middleware=[flaky])
    scheduler.add_job(job, id="job", every="1m")
    async with scheduler:
        first = await scheduler.run_now("job")
        assert first.outcome is Outcome.FAILED
        assert first.error is not None
        assert first.error.first_line == "ConnectionError: metrics server down"
        with pytest.raises(ConnectionError):
            _ = first.result
        second = await scheduler.run_now("job")
        assert second.outcome is Outcome.SUCCEEDED and second.result == "done"
        assert scheduler.running


async def test_the_jobs_exception_passes_through_middleware_unchanged(clock):
    seen: list[BaseException] = []

    async def watches(run: Run, call_next: Any) -> Any:
        try:
            return await call_next()
        except Exception as exc:
            seen.append(exc)
            raise

    async def job() -> None:
        raise KeyError("missing")

    scheduler = Scheduler(timezone="UTC", clock=clock, middleware=[watches])
    scheduler.add_job(job, id="job")
    async with scheduler:
        run = await scheduler.run_now("job")
    assert run.outcome is Outcome.FAILED and run.error is not None
    assert run.error.type == "KeyError" and "in job" in run.error.traceback
    with pytest.raises(KeyError) as raised:
        _ = run.result
    assert seen == [raised.value]


async def test_a_timeout_reaches_a_middleware_still_waiting_for_its_lock(clock):
    lock = asyncio.Lock()
    started: list[str] = []

    async def one_at_a_time(run: Run, call_next: Any) -> Any:
        async with lock:
            return await call_next()

    async def job(run: Run) -> None:
        started.append(run.run_id)
        await clock.sleep(600)

    scheduler = Scheduler(timezone="UTC", clock=clock, middleware=[one_at_a_time])
    scheduler.add_job(job, id="job", timeout="1m")
    async with scheduler:
        async with lock:  # held elsewhere for longer than the job's timeout
            run = scheduler.run_now("job")
            await clock.advance(60)
            await run
        assert run.outcome is Outcome.TIMED_OUT
        assert run.error is not None and run.error.first_line == "Timeout: timed out after 1m"
        assert started == []  # it never got the lock, so it never ran


async def test_a_timed_out_job_stays_timed_out_whatever_the_middleware_does(clock):
    seen: list[BaseException] = []

    async def forgiving(run: Run, call_next: Any) -> Any:
        try:
            return await call_next()
        except Exception as exc:  # swallows everything, even the timeout
            seen.append(exc)
            return "fine"

    async def hangs() -> None:
        await clock.sleep(3600)

    scheduler = Scheduler(timezone="UTC", clock=clock, middleware=[forgiving])
    scheduler.add_job(hangs, id="hangs", timeout="1m")
    async with scheduler:
        run = scheduler.run_now("hangs")
        await clock.advance(60)
        await run
    assert run.outcome is Outcome.TIMED_OUT
    assert len(seen) == 1 and isinstance(seen[0], RunNotSucceeded)
    assert seen[0].outcome == "timed_out"


async def test_a_middleware_that_does_not_call_next_skips_the_job(clock):
    ran: list[str] = []

    async def maintenance_window(run: Run, call_next: Any) -> Any:
        return "not now"

    async def job() -> None:
        ran.append("job")

    scheduler = Scheduler(timezone="UTC", clock=clock, middleware=[maintenance_window])
    scheduler.add_job(job, id="job")
    async with scheduler:
        run = await scheduler.run_now("job")
    assert run.outcome is Outcome.SUCCEEDED and run.result == "not now" and ran == []


def test_middleware_must_be_an_async_function():
    def sync(run: Run, call_next: Any) -> Any: ...

    with pytest.raises(InvalidJobOption, match="expected an async function"):
        Scheduler(middleware=[sync])


async def test_a_run_awaited_later_and_one_whose_waiter_gave_up(scheduler, clock):
    async def slow() -> str:
        await clock.sleep(10)
        return "slow result"

    scheduler.add_job(slow, id="slow", overlap="parallel:3")
    async with scheduler:
        handle = scheduler.run_now("slow", wait=False)
        with pytest.raises(RunNotSucceeded, match="has not finished"):
            _ = handle.result
        owned = scheduler.run_now("slow")
        impatient = asyncio.ensure_future(_await(owned))
        detached_wait = asyncio.ensure_future(_await(handle))
        await asyncio.sleep(0)
        impatient.cancel()
        detached_wait.cancel()
        await asyncio.gather(impatient, detached_wait, return_exceptions=True)
        await clock.advance(10)
        assert (await handle).result == "slow result"  # giving up on a handle leaves it going
        assert (await owned).outcome is Outcome.CANCELLED  # wait=True: the waiter owned it
        with pytest.raises(RunNotSucceeded, match="cancelled"):
            _ = owned.result
    assert START.timestamp() + 10 == handle.finished_ts


async def _await(run: Run) -> Run:
    return await run


MIDDLEWARE_MODULE = """
import time

def not_async(run, call_next):
    return call_next()

async def tag(run, call_next):
    run.log("through the middleware")
    return await call_next()
"""


async def test_middleware_named_in_jobs_toml_wraps_its_jobs(tmp_path: Path, clock):
    write(tmp_path / "mw.py", MIDDLEWARE_MODULE)
    config = write(
        tmp_path / "jobs.toml",
        """
        [scheduler]
        timezone = "UTC"
        middleware = ["mw:tag"]

        [jobs.hello]
        command = "echo hello"
        """,
    )
    scheduler = load(config).make_scheduler(clock=clock)
    async with scheduler:
        run = await scheduler.run_now("hello")
    assert [line.text for line in run.output.lines()] == ["through the middleware", "hello"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('["mw:not_async"]', "mw:not_async is not an async function taking (run, call_next)"),
        ('["mw:absent"]', 'has no attribute "absent"'),
        ('"mw:tag"', 'expected a list of "module:function" async functions'),
    ],
)
def test_bad_middleware_in_jobs_toml_names_the_line(tmp_path: Path, value: str, words: str):
    write(tmp_path / "mw.py", MIDDLEWARE_MODULE)
    config = write(
        tmp_path / "jobs.toml",
        f"""
        [scheduler]
        middleware = {value}

        [jobs.hello]
        command = "echo hello"
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load(config)
    text = str(raised.value)
    assert f"{config}:2" in text and "middleware" in text and words in text
