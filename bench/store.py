"""State-store benchmark: jobtui with its SQLite store attached (claims and results durable).

    python bench/store.py                     # jobtui as it is
    python bench/store.py --baseline af4ca3f  # and jobtui at that commit, side by side
    python bench/store.py --quick             # smaller numbers, for a smoke test
    python bench/store.py --profile           # where the time goes, per thread (cProfile)

(1) 20,000 one-shot jobs due at once: runs per second from the due instant until every run's
    row (claim, then result) is committed; and the same without the store, so its share shows.
(2) jobs spread evenly over each second (200 and 2,000 runs a second) for a few seconds: the
    worst and p99 lateness of a 1 ms sleep on the loop, with the store and without it.

Every measurement runs in a fresh subprocess; each number is the median of the rounds. The
garbage collector and the GIL's switch interval are set as the jobtui command sets them
(jobtui.host.tune_collector: what is alive once the scheduler started is frozen, full passes
rarer; tune_switching: 0.2 ms), with the store and without it.
bench/engine.py section (d) runs cases from here too.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import inspect
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from baseline import beside, child_env  # bench/baseline.py, beside this script

TARGET_RUNS_S = 50_000.0
TARGET_STALL_MS = 5.0
RATES = (200, 2_000)  # runs a second in the stall case


def with_store(scheduler_class: Any, store: Any) -> Any:
    """A scheduler that claims and records through ``store``. Before the DataStore seam (a
    --baseline older than it) the store attached itself to a scheduler made without it."""
    if store is None or "store" not in inspect.signature(scheduler_class).parameters:
        return scheduler_class(timezone="UTC")
    return scheduler_class(timezone="UTC", store=store)


def as_the_command_does() -> None:
    """The garbage-collector and GIL-switching policy the jobtui command's host applies once
    its scheduler started (jobtui.host.tune_collector, tune_switching); a baseline older than
    them had none, or only the first."""
    import jobtui.host

    for policy in ("tune_collector", "tune_switching"):
        tune = getattr(jobtui.host, policy, None)
        if tune is not None:
            tune()


def start_store(store: Any, scheduler: Any) -> None:
    if hasattr(store, "start"):
        store.start()
    else:  # the baseline's way
        store.attach(scheduler)


class Profiles:
    """cProfile on the loop (from the due instant) and on the store's writer thread."""

    def __init__(self) -> None:
        self.loop = cProfile.Profile()
        self.writer = cProfile.Profile()

    def install(self) -> None:
        from jobtui.store import writer

        run = writer.BatchWriter._run
        profile = self.writer

        def profiled(self: Any) -> None:
            profile.enable()
            try:
                run(self)
            finally:
                profile.disable()

        writer.BatchWriter._run = profiled  # type: ignore[method-assign]

    def report(self, top: int = 18) -> str:
        out = io.StringIO()
        for name, profile in (("loop thread", self.loop), ("writer thread", self.writer)):
            out.write(f"\n== {name}, by own time\n")
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("tottime").print_stats(top)
        return out.getvalue()


async def burst(system: str, jobs: int, profiles: Profiles | None = None) -> dict[str, float]:
    """Runs per second recorded: from the due instant until every run's row is committed
    (``system`` "engine": the same runs without a store, until the last one finished)."""
    from jobtui import RunFinished, Scheduler
    from jobtui.store import Store, read_runs

    if profiles is not None:
        profiles.install()
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"{folder}/state.db") if system != "engine" else None
        scheduler = with_store(Scheduler, store)
        start = time.time() + 2.0 + jobs / 20_000
        start_dt = datetime.fromtimestamp(start, UTC)
        all_finished = asyncio.get_running_loop().create_future()
        finished_runs = 0

        def count(event: object) -> None:  # told by the engine: nothing polls the jobs
            nonlocal finished_runs
            if isinstance(event, RunFinished):
                finished_runs += 1
                if finished_runs == jobs:
                    all_finished.set_result(None)

        async def body() -> None:
            return None

        for n in range(jobs):
            scheduler.add_job(body, id=f"j{n}", at=start_dt)
        if store is not None:
            start_store(store, scheduler)
        scheduler.subscribe(count)
        await scheduler.start()
        as_the_command_does()
        await asyncio.sleep(start - time.time() - 0.05)
        if profiles is not None:
            profiles.loop.enable()
        # CPU time of each thread, besides the wall clock: the machine's other load moves
        # the rate, much less what each run costs.
        writer = getattr(getattr(store, "writer", None), "_thread", None)
        clocks = [time.pthread_getcpuclockid(threading.get_ident())]
        if writer is not None and writer.ident is not None:
            clocks.append(time.pthread_getcpuclockid(writer.ident))
        cpu0 = [time.clock_gettime(clock) for clock in clocks]
        await asyncio.wait_for(all_finished, 120)
        if store is not None:
            await asyncio.to_thread(store.flush, 120)
        finished = time.time()
        cpu = [time.clock_gettime(clock) - c0 for clock, c0 in zip(clocks, cpu0, strict=True)]
        if profiles is not None:
            profiles.loop.disable()
        await scheduler.stop()
        if store is not None:
            await asyncio.to_thread(store.close)
            recorded = len(read_runs(Path(folder) / "state.db", limit=jobs + 10))
            assert recorded == jobs, f"{recorded} of {jobs} runs recorded"
    return {
        "runs_per_s": jobs / (finished - start),
        "loop_us": cpu[0] / jobs * 1e6,
        "writer_us": (cpu[1] if len(cpu) > 1 else 0.0) / jobs * 1e6,
    }


async def stall(system: str, rate: int, seconds: float) -> dict[str, float]:
    """How late a 1 ms sleep on the loop wakes while ``rate`` runs a second (spread evenly over
    each second) are recorded; ``system`` "engine" runs them without a store."""
    from jobtui import Scheduler
    from jobtui.store import Store

    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"{folder}/state.db") if system != "engine" else None
        scheduler = with_store(Scheduler, store)

        async def body(run: Any) -> None:
            run.progress = 0.5
            run.log("a line of output")

        phase = datetime.now(UTC) + timedelta(seconds=1)
        for n in range(rate):  # spread over the second: 200 runs a second, not a burst of 200
            start = phase + timedelta(seconds=n / rate)
            scheduler.add_job(body, id=f"j{n}", every="1s", start=start, run_immediately=True)
        if store is not None:
            start_store(store, scheduler)
        await scheduler.start()
        as_the_command_does()
        await asyncio.sleep(max(0.0, (phase - datetime.now(UTC)).total_seconds()))
        late = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            late.append(time.perf_counter() - before - 0.001)
        await scheduler.stop()
        if store is not None:
            await asyncio.to_thread(store.close)
    late.sort()
    return {"worst_ms": late[-1] * 1000, "p99_ms": late[int(len(late) * 0.99)] * 1000}


# -- driver ---------------------------------------------------------------------------------


def measure(case: str, system: str, arg: str, baseline: Path | None) -> dict:
    env = child_env(baseline)  # with a baseline: the same code, importing jobtui from it
    cmd = [sys.executable, __file__, "--child", case, system, arg]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{case}/{system} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(case: str, system: str, arg: str) -> None:
    if case == "burst":
        result = asyncio.run(burst(system, int(arg)))
    else:
        rate, seconds = arg.split(",")
        result = asyncio.run(stall(system, int(rate), float(seconds)))
    print(json.dumps(result))


def report(args: argparse.Namespace, baseline: Path | None) -> None:
    jobs = 2000 if args.quick else 20_000
    seconds = 2.0 if args.quick else 5.0
    rounds = 1 if args.quick else 3
    columns = {"jobtui": None} | ({f"jobtui {args.baseline[:10]}": baseline} if baseline else {})
    rows: list[tuple[str, dict[str, float], str]] = []
    cases = [("burst", system, str(jobs)) for system in ("store", "engine")]
    cases += [("stall", system, f"{r},{seconds}") for r in RATES for system in ("store", "engine")]
    # Round by round, each case for every column in turn: the machine's other load then
    # falls on both columns alike, not on whichever was measured while it ran.
    runs: dict[tuple[str, tuple[str, str, str]], list[dict[str, float]]] = {}
    for round_ in range(rounds):
        print(f"  round {round_ + 1} of {rounds} ...", file=sys.stderr, flush=True)
        for case in cases:
            for name, where in columns.items():
                runs.setdefault((name, case), []).append(measure(*case, where))
    got: dict[str, dict[str, float]] = {name: {} for name in columns}
    for (name, (kind, system, arg)), results in runs.items():
        median = {key: statistics.median(r[key] for r in results) for key in results[0]}
        if kind == "burst":
            got[name][f"burst {system}"] = median["runs_per_s"]
            got[name][f"loop us {system}"] = median["loop_us"]
            got[name][f"writer us {system}"] = median["writer_us"]
        else:
            rate = int(arg.split(",")[0])
            got[name][f"worst {system} {rate}"] = median["worst_ms"]
            got[name][f"p99 {system} {rate}"] = median["p99_ms"]
    labels = [
        (f"{jobs:,} runs due at once: recorded per second", "burst store", ",.0f"),
        ("  CPU per run, loop thread (us)", "loop us store", ".1f"),
        ("  CPU per run, writer thread (us)", "writer us store", ".1f"),
        ("  the same runs, no store: run per second", "burst engine", ",.0f"),
        ("  no store: CPU per run, loop thread (us)", "loop us engine", ".1f"),
    ]
    for rate in RATES:
        labels += [
            (f"loop stall at {rate:,} runs/s, store: worst ms", f"worst store {rate}", ".2f"),
            ("  p99 ms", f"p99 store {rate}", ".2f"),
            ("  no store: worst ms", f"worst engine {rate}", ".2f"),
            ("  no store: p99 ms", f"p99 engine {rate}", ".2f"),
        ]
    for label, key, fmt in labels:
        rows.append((label, {name: got[name][key] for name in columns}, fmt))
    print(f"\njobtui state-store benchmark  (python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cpus, median of {rounds})")  # fmt: skip
    print(f"  {'':<50}" + "".join(f"{name:>18}" for name in columns))
    for label, values, fmt in rows:
        print(f"  {label:<50}" + "".join(f"{format(values[n], fmt):>18}" for n in columns))
    mine = got["jobtui"]
    worst = max(mine[f"worst store {rate}"] for rate in RATES)
    checks = [
        ("runs/s recorded with the store", mine["burst store"], ">=", TARGET_RUNS_S),
        ("store's loop CPU per run, us", mine["loop us store"] - mine["loop us engine"], "info", 0),
        ("worst loop stall with the store, ms", worst, "<=", TARGET_STALL_MS),
    ]
    if baseline is not None:
        before = got[f"jobtui {args.baseline[:10]}"]
        checks += [
            ("recorded runs/s vs before", mine["burst store"] / before["burst store"], "info", 0),
            ("loop CPU per run vs before", mine["loop us store"] / before["loop us store"],
             "info", 0),
            ("writer CPU per run vs before", mine["writer us store"] / before["writer us store"],
             "info", 0),
        ]  # fmt: skip
    print("\ntargets")
    for label, value, op, bound in checks:
        if op == "info":
            print(f"  {label:<38}{value:>12.2f}   (information)")
            continue
        ok = value >= bound if op == ">=" else value <= bound
        verdict = "met" if ok else "MISSED"
        print(f"  {label:<38}{value:>12,.2f}   target {op} {bound:,.0f}  {verdict}")
    if args.quick:
        print("\n(--quick: small sizes; the targets are stated for the full run)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--baseline", metavar="REV", help="also measure jobtui at this commit")
    parser.add_argument("--profile", action="store_true", help="cProfile the burst case")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.profile:
        profiles = Profiles()
        result = asyncio.run(burst("store", 2000 if args.quick else 20_000, profiles))
        print(f"{result['runs_per_s']:,.0f} runs/s recorded (under cProfile)")
        print(profiles.report())
        return
    beside(args.baseline, lambda where: report(args, where))


if __name__ == "__main__":
    main()
