"""bench/engine.py's case (c), jobs an hour out: what adding one costs, the memory each takes,
and the CPU used while idle; and APScheduler 3 set up as every case uses it."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Callable
from typing import Any


def aps_scheduler() -> Any:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    return AsyncIOScheduler(timezone="UTC", job_defaults={"misfire_grace_time": None})


# -- (c) idle -------------------------------------------------------------------------------


async def add_jobs(system: str, jobs: int) -> tuple[float, Callable[[], object]]:
    """Add ``jobs`` jobs an hour out to a running system; returns seconds per add and stop."""

    async def body() -> None:
        return None

    if system == "jobtui":
        from jobtui import Scheduler

        scheduler = Scheduler(timezone="UTC")
        await scheduler.start()
        t0 = time.perf_counter()
        for n in range(jobs):
            scheduler.add_job(body, id=f"j{n}", every="1h")
        elapsed = time.perf_counter() - t0
        return elapsed / jobs, scheduler.stop
    if system == "apscheduler":
        aps = aps_scheduler()
        aps.start()
        t0 = time.perf_counter()
        for n in range(jobs):
            aps.add_job(body, "interval", hours=1, id=f"j{n}")
        elapsed = time.perf_counter() - t0
        return elapsed / jobs, aps.shutdown
    loop = asyncio.get_running_loop()
    handles = []
    t0 = time.perf_counter()
    for _ in range(jobs):
        handles.append(loop.call_at(loop.time() + 3600, lambda: loop.create_task(body())))
    elapsed = time.perf_counter() - t0
    return elapsed / jobs, lambda: [h.cancel() for h in handles]


async def idle(system: str, jobs: int, idle_seconds: float) -> dict[str, float]:
    per_add, stop = await add_jobs(system, jobs)
    await asyncio.sleep(0.5)  # let any wake-up triggered by the adds settle
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(idle_seconds)
    cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    result = stop()
    if asyncio.iscoroutine(result):
        await result
    return {"add_us": per_add * 1e6, "idle_cpu_pct": cpu * 100}


async def memory(system: str, jobs: int) -> dict[str, float]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    _, stop = await add_jobs(system, jobs)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    result = stop()
    if asyncio.iscoroutine(result):
        await result
    return {"bytes_per_job": (after - before) / jobs}
