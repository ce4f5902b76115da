"""Engine benchmark: jobtui against APScheduler 3 (AsyncIOScheduler) and a bare asyncio floor.

    python bench/engine.py            # the full run (about two minutes)
    python bench/engine.py --quick    # smaller numbers, for a smoke test
    python bench/engine.py --baseline 8dec20f   # and jobtui as it was at that commit, side by side

Every measurement runs in a fresh subprocess, so one system's objects never slow another's
garbage collector. Printed: a table per case and the ratios the targets are stated in.

(a) lateness: 1,000 interval jobs firing every second for 10 s; p50/p99/max of how late each
    body started after its scheduled instant.
(b) throughput: 20,000 trivial async jobs due at the same instant; runs per second from that
    instant to the last body.
(c) idle: 100,000 jobs scheduled an hour out; cost to add one, memory per job (tracemalloc),
    and CPU used while idle over 5 s.
(d) the state store attached: runs recorded per second, and the worst stall of the loop.
(e) one chatty job (`yes`) beside a `true` job due every second: output throughput, and the
    1 s job's lateness and skips (bench/chatty.py, which also runs alone).
(f) Python jobs in thread and process mode (runmodes.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import chatty  # bench/chatty.py: this script's folder is first on the import path
import runmodes
from baseline import extract

SYSTEMS = ["jobtui", "apscheduler", "floor"]
LABELS = {"jobtui": "jobtui", "apscheduler": "APScheduler 3", "floor": "asyncio floor"}
BASELINE: Path | None = None  # a copy of jobtui at --baseline REV, measured as "before"


# -- helpers --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def next_whole_second(offset: float = 1.0) -> float:
    return math.floor(time.time()) + 1 + offset


def aps_scheduler():
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    return AsyncIOScheduler(timezone="UTC", job_defaults={"misfire_grace_time": None})


# -- (a) lateness ---------------------------------------------------------------------------


async def lateness(system: str, jobs: int, seconds: int) -> dict[str, float]:
    start = next_whole_second()
    total = jobs * seconds
    late: list[float] = []
    done = asyncio.get_running_loop().create_future()

    async def body() -> None:
        now = time.time()
        late.append(now - (start + round(now - start)))
        if len(late) == total and not done.done():
            done.set_result(None)

    start_dt = datetime.fromtimestamp(start, UTC)
    end_dt = start_dt + timedelta(seconds=seconds - 1)
    stop: Callable[[], Awaitable[None] | None]
    if system == "jobtui":
        from jobtui import Scheduler

        scheduler = Scheduler(timezone="UTC")
        for n in range(jobs):
            scheduler.add_job(
                body, id=f"j{n}", every="1s", start=start_dt, end=end_dt, run_immediately=True
            )
        await scheduler.start()
        stop = scheduler.stop
    elif system == "apscheduler":
        aps = aps_scheduler()
        for n in range(jobs):
            aps.add_job(
                body, "interval", seconds=1, start_date=start_dt, end_date=end_dt, id=f"j{n}"
            )
        aps.start()
        stop = aps.shutdown
    else:
        loop = asyncio.get_running_loop()
        offset = loop.time() - time.time()

        def fire(k: int) -> None:
            loop.create_task(body())  # noqa: RUF006 - the floor keeps nothing, on purpose
            if k + 1 < seconds:
                loop.call_at(start + k + 1 + offset, fire, k + 1)

        for _ in range(jobs):
            loop.call_at(start + offset, fire, 0)
        stop = lambda: None  # noqa: E731
    await asyncio.wait_for(done, seconds + 30)
    result = stop()
    if asyncio.iscoroutine(result):
        await result
    ms = [v * 1000 for v in late]
    return {"p50": percentile(ms, 0.5), "p99": percentile(ms, 0.99), "max": max(ms)}


# -- (b) throughput -------------------------------------------------------------------------


async def throughput(system: str, jobs: int) -> dict[str, float]:
    start = time.time() + 2.0 + jobs / 20_000  # time enough to add every job first
    start_dt = datetime.fromtimestamp(start, UTC)
    count = 0
    done = asyncio.get_running_loop().create_future()

    async def body() -> None:
        nonlocal count
        count += 1
        if count == jobs:
            done.set_result(time.time())

    if system == "jobtui":
        from jobtui import Scheduler

        scheduler = Scheduler(timezone="UTC")
        await scheduler.start()
        for n in range(jobs):
            scheduler.add_job(body, id=f"j{n}", at=start_dt)
        stop = scheduler.stop
    elif system == "apscheduler":
        aps = aps_scheduler()
        aps.start()
        for n in range(jobs):
            aps.add_job(body, "date", run_date=start_dt, id=f"j{n}")
        stop = aps.shutdown
    else:
        loop = asyncio.get_running_loop()
        at = start + loop.time() - time.time()
        for _ in range(jobs):
            loop.call_at(at, lambda: loop.create_task(body()))
        stop = lambda: None  # noqa: E731
    assert time.time() < start, "adding the jobs took longer than the lead time"
    finished = await asyncio.wait_for(done, 120)
    result = stop()
    if asyncio.iscoroutine(result):
        await result
    return {"runs_per_s": jobs / (finished - start)}


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


# -- (d) with the state store attached (jobtui only) -----------------------------------------


async def store_throughput(system: str, jobs: int) -> dict[str, float]:
    """Runs per second recorded: from the due instant until every run's row is committed
    (bench/store.py's burst case, which also gives the CPU per run of each thread)."""
    from store import burst  # bench/store.py, beside this script

    return await burst("store", jobs)


async def store_stall(system: str, rate: int, seconds: float) -> dict[str, float]:
    """The worst event-loop stall while ``rate`` runs a second are recorded (with and without
    the store, so the store's own share shows): bench/store.py's stall case."""
    from store import stall

    result = await stall("store" if system.endswith("store") else "engine", rate, seconds)
    return {"worst_stall_ms": result["worst_ms"], **result}


# -- driver ---------------------------------------------------------------------------------


def measure(case: str, system: str, quick: bool) -> dict[str, float]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if system.startswith("before"):  # the same code, importing jobtui from the baseline copy
        assert BASELINE is not None
        env["PYTHONPATH"] = str(BASELINE)
        system = system.removeprefix("before-") if system != "before" else "jobtui"
    cmd = [sys.executable, __file__, "--child", case, system] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{case}/{system} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(case: str, system: str, quick: bool) -> None:
    if case in runmodes.CASES:  # system is the run mode here
        result = asyncio.run(runmodes.CASES[case](system, *runmodes.SIZES[case](quick)))
        print(json.dumps(result))
        return
    sizes = {
        "lateness": (200, 3) if quick else (1000, 10),
        "throughput": (2000,) if quick else (20_000,),
        "idle": (10_000, 1.0) if quick else (100_000, 5.0),
        "memory": (10_000,) if quick else (100_000,),
        "store_throughput": (2000,) if quick else (20_000,),
        "store_stall": (200, 3.0) if quick else (200, 10.0),
    }[case]
    func = {
        "lateness": lateness,
        "throughput": throughput,
        "idle": idle,
        "memory": memory,
        "store_throughput": store_throughput,
        "store_stall": store_stall,
    }[case]
    result = asyncio.run(func(system, *sizes))  # type: ignore[operator]
    print(json.dumps(result))


def table(title: str, rows: list[tuple[str, str, dict[str, dict[str, float]], str]]) -> None:
    print(f"\n{title}")
    header = f"  {'metric':<26}" + "".join(f"{LABELS[s]:>16}" for s in SYSTEMS)
    print(header)
    print("  " + "-" * (len(header) - 2))
    for label, key, results, fmt in rows:
        cells = "".join(f"{format(results[s][key], fmt):>16}" for s in SYSTEMS)
        print(f"  {label:<26}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument(
        "--baseline", metavar="REV", help="also measure jobtui as it was at this git commit"
    )
    parser.add_argument("--child", nargs=2, metavar=("CASE", "SYSTEM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.quick)
        return
    if args.baseline:
        with tempfile.TemporaryDirectory() as folder:
            extract(args.baseline, Path(folder))
            global BASELINE
            BASELINE = Path(folder)
            SYSTEMS.insert(1, "before")
            LABELS["before"] = f"jobtui {args.baseline[:10]}"
            report(args)
        return
    report(args)


def report(args: argparse.Namespace) -> None:
    print(f"jobtui engine benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for case in ("lateness", "throughput", "idle", "memory"):
        results[case] = {}
        for system in SYSTEMS:
            print(f"  measuring {case:<10} {LABELS[system]} ...", file=sys.stderr, flush=True)
            results[case][system] = measure(case, system, args.quick)
    late, thr, idl, mem = (results[c] for c in ("lateness", "throughput", "idle", "memory"))
    table(
        "(a) lateness, 1,000 jobs every second for 10 s (ms)",
        [("p50", "p50", late, ".2f"), ("p99", "p99", late, ".2f"), ("max", "max", late, ".2f")],
    )
    table("(b) 20,000 async jobs due at once", [("runs per second", "runs_per_s", thr, ",.0f")])
    table(
        "(c) 100,000 jobs an hour out",
        [
            ("add, us per job", "add_us", idl, ".2f"),
            ("memory, bytes per job", "bytes_per_job", mem, ",.0f"),
            ("idle CPU, % of a core", "idle_cpu_pct", idl, ".2f"),
        ],
    )
    mine = ["jobtui", *(["before"] if BASELINE else [])]
    stored_by = {s: measure("store_throughput", s, args.quick) for s in mine}
    stall_by = {
        s: {
            "engine": measure("store_stall", "before-engine" if s == "before" else "engine",
                              args.quick),
            "store": measure("store_stall", "before-store" if s == "before" else "store",
                             args.quick),
        }
        for s in mine
    }  # fmt: skip
    stored, stall = stored_by["jobtui"], stall_by["jobtui"]
    print("\n(d) jobtui with the state store attached")
    print(f"  {'':<48}" + "".join(f"{LABELS[s]:>16}" for s in mine))
    rows = [
        ("20,000 runs due at once, recorded per second", lambda s: stored_by[s]["runs_per_s"],
         ",.0f"),
        ("worst loop stall at 200 runs/s, no store (ms)",
         lambda s: stall_by[s]["engine"]["worst_stall_ms"], ".2f"),
        ("worst loop stall at 200 runs/s, with store (ms)",
         lambda s: stall_by[s]["store"]["worst_stall_ms"], ".2f"),
    ]  # fmt: skip
    for label, value, fmt in rows:
        print(f"  {label:<48}" + "".join(f"{format(value(s), fmt):>16}" for s in mine))
    # One chatty job must not make the others late: measured in the same run (issue 15, item 9).
    seconds = 2.0 if args.quick else 5.0
    noisy = {s: chatty.measure(seconds, BASELINE if s == "before" else None) for s in mine}
    print(f"\n(e) `yes` for {seconds:g} s beside a `true` command every second")
    print(f"  {'':<48}" + "".join(f"{LABELS[s]:>16}" for s in mine))
    for label, key, fmt in chatty.ROWS:
        print(f"  {label:<48}" + "".join(f"{format(noisy[s][key], fmt):>16}" for s in mine))
    mode_checks = runmodes.report(measure, args.quick)
    j, a, f = "jobtui", "apscheduler", "floor"
    p99 = {s: late[s]["p99"] for s in SYSTEMS}
    rate = {s: thr[s]["runs_per_s"] for s in SYSTEMS}
    # (label, value, target text, at most / at least, bound); a bound of None is information only
    checks = [
        ("p99 lateness vs floor", p99[j] / p99[f], "max", 2.0),
        ("p99 lateness vs APScheduler", p99[j] / p99[a], "max", 1 / 3),
        ("throughput vs APScheduler", rate[j] / rate[a], "min", 5.0),
        ("throughput vs floor", rate[j] / rate[f], "info", None),
        ("add cost, us per job", idl[j]["add_us"], "max", 10.0),
        ("memory, bytes per job", mem[j]["bytes_per_job"], "max", 1024.0),
        ("idle CPU, % of a core", idl[j]["idle_cpu_pct"], "max", 1.0),
        ("runs/s recorded with the store", stored["runs_per_s"], "min", 10_000.0),
        ("loop stall with the store, ms", stall["store"]["worst_stall_ms"], "max", 5.0),
        ("chatty job's output, MB/s", noisy[j]["mb_s"], "min", chatty.TARGET_MB_S),
        ("1 s job beside it: late, ms", noisy[j]["late_max_ms"], "max", 100.0),
        ("1 s job beside it: skipped", noisy[j]["skipped"], "max", 0.0),
    ]
    checks += mode_checks
    if BASELINE:  # no worse than the design before: ratios to it, within the machine's noise
        b = "before"
        checks += [
            ("p99 lateness vs before", p99[j] / p99[b], "max", 1.15),
            ("throughput vs before", rate[j] / rate[b], "min", 0.85),
            ("add cost vs before", idl[j]["add_us"] / idl[b]["add_us"], "max", 1.15),
            ("memory per job vs before", mem[j]["bytes_per_job"] / mem[b]["bytes_per_job"],
             "max", 1.15),
            ("recorded runs/s vs before", stored["runs_per_s"] / stored_by[b]["runs_per_s"],
             "min", 0.85),
            ("chatty output vs before", noisy[j]["mb_s"] / noisy[b]["mb_s"], "info", None),
        ]  # fmt: skip
    print("\nratios and targets")
    for label, value, kind, bound in checks:
        if bound is None:
            verdict, target = "", "(information)"
        else:
            ok = value <= bound if kind == "max" else value >= bound
            verdict, target = (
                ("ok" if ok else "MISSED"),
                f"{'<=' if kind == 'max' else '>='} {bound:.2f}",
            )
        print(f"  {label:<30}{value:>12.2f}   target {target:<14} {verdict}")
    if args.quick:
        print("\n(--quick: small sizes; the targets are stated for the full run)")


if __name__ == "__main__":
    main()
