"""Run modes for bench/engine.py, section (f): what a Python job costs in a thread and in a
child process, and how much a job that holds the GIL slows the scheduler's loop in each.

(e1) overhead: trivial runs one after another (start to finish, awaited), and a batch of them
     with max_concurrency = the number of CPUs: runs per second.
(e2) GIL: a pure-Python loop runs for a while as a job; a 1 ms ticker on the scheduler's loop
     measures how late its ticks come, with no job, the job in a thread, the job in a process.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from modejobs import burn, noop


async def overhead(mode: str, sequential: int, batch: int) -> dict[str, float]:
    from jobtui import Scheduler

    scheduler = Scheduler(timezone="UTC", max_concurrency=os.cpu_count() or 1)
    scheduler.add_job(noop, id="noop", run_mode=mode, overlap="parallel:100000")
    async with scheduler:
        await scheduler.run_now("noop")  # warm: the first run imports what the rest reuse
        started = time.perf_counter()
        for _ in range(sequential):
            await scheduler.run_now("noop")
        per_run = (time.perf_counter() - started) / sequential
        started = time.perf_counter()
        runs = [scheduler.run_now("noop", wait=False) for _ in range(batch)]
        for run in runs:
            await run
        rate = batch / (time.perf_counter() - started)
    return {"per_run_ms": per_run * 1000, "runs_per_s": rate}


async def gil(mode: str, seconds: float) -> dict[str, float]:
    from jobtui import Scheduler

    scheduler = Scheduler(timezone="UTC")
    if mode != "none":
        scheduler.add_job(burn, id="burn", args=[seconds], run_mode=mode)
    lateness: list[float] = []
    async with scheduler:
        run: Any = None
        if mode != "none":
            run = scheduler.run_now("burn", wait=False)
            await asyncio.sleep(0.3 if mode == "process" else 0)  # the child is up and burning
        end = time.perf_counter() + seconds / 2
        while time.perf_counter() < end:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            lateness.append(time.perf_counter() - before - 0.001)
        if run is not None:
            await run
    lateness.sort()
    return {
        "p50_ms": lateness[len(lateness) // 2] * 1000,
        "p99_ms": lateness[int(len(lateness) * 0.99)] * 1000,
        "max_ms": lateness[-1] * 1000,
        "ticks_per_s": len(lateness) / (seconds / 2),
    }


def report(measure: Any, quick: bool) -> list[tuple[str, float, str, float | None]]:
    """Print section (f); return its ratios for the "ratios and targets" list."""
    cost = {mode: measure("overhead", mode, quick) for mode in ("thread", "process")}
    lag = {mode: measure("gil", mode, quick) for mode in ("none", "thread", "process")}
    print("\n(f) Python jobs: thread mode and process mode")
    print(f"  {'':<44}{'thread':>12}{'process':>12}")
    for label, key, fmt in (
        ("trivial run, start to finish (ms)", "per_run_ms", ".2f"),
        (f"runs per second, {os.cpu_count()} at a time", "runs_per_s", ",.0f"),
    ):
        print(f"  {label:<44}" + "".join(f"{format(cost[m][key], fmt):>12}" for m in cost))
    print("\n  loop ticks (1 ms sleep) while a GIL-holding job runs, lateness in ms")
    print(f"  {'':<44}{'no job':>12}{'thread':>12}{'process':>12}")
    for label, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("max", "max_ms")):
        print(f"  {label:<44}" + "".join(f"{lag[m][key]:>12.2f}" for m in lag))
    print(f"  {'ticks per second':<44}" + "".join(f"{lag[m]['ticks_per_s']:>12,.0f}" for m in lag))
    overhead_ratio = cost["process"]["per_run_ms"] / cost["thread"]["per_run_ms"]
    return [
        ("process/thread run overhead", overhead_ratio, "info", None),
        ("loop p99 lag, thread job, ms", lag["thread"]["p99_ms"], "info", None),
        ("loop p99 lag, process job, ms", lag["process"]["p99_ms"], "max", 5.0),
    ]  # fmt: skip


SIZES = {
    "overhead": lambda quick: (10, 40) if quick else (50, 400),
    "gil": lambda quick: (2.0,) if quick else (6.0,),
}
CASES = {"overhead": overhead, "gil": gil}
