"""Instructions per run, counted by valgrind's callgrind: what a run costs, whatever else the
machine is doing (timings on a shared 2-core machine swing by 2x; these counts move by ~1-3%).

    python bench/instructions.py                      # jobtui as it is, and the asyncio floor
    python bench/instructions.py --baseline a448dca   # and jobtui at that commit, side by side
    python bench/instructions.py --jobs 500           # smaller (each case runs under valgrind)

Cases (each run twice, and only the difference counted, so start-up, imports and adding the
jobs fall out):
- interval: N jobs every 3 seconds (time for a pass under valgrind), run 4 times against 2
  times; per run. Beside it the floor (a
  timer per job that starts a task, as bench/engine.py's floor does), and the ratio.
- one-shot: N one-shot jobs due at once, against N due in 100 days (never run); per run, as
  the jobtui command runs them (its collector and GIL-switching policy).
- store: the same one-shot jobs with the SQLite store attached (claims and results durable),
  under the same policy, so the store's share is the difference: the event loop's
  thread and the store writer's thread, each per run.
Needs valgrind (Debian's valgrind package).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from baseline import beside, child_env  # bench/baseline.py, beside this script
from store import as_the_command_does, start_store, with_store  # bench/store.py's

EVERY = 3  # seconds between passes: under valgrind a pass of 1,000 runs takes about one

# -- what runs under valgrind ---------------------------------------------------------------


async def interval(system: str, jobs: int, passes: int) -> None:
    left = jobs * passes
    done = asyncio.get_running_loop().create_future()

    async def body() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            done.set_result(None)

    loop = asyncio.get_running_loop()
    if system != "floor":
        from jobtui import Scheduler  # before the first due time: slow under valgrind
    # A whole second, time enough to add every job under valgrind (~50 times slower).
    start = float(int(time.time()) + 3 + jobs // 200)
    if system == "floor":
        offset = loop.time() - time.time()

        def fire(k: int) -> None:
            loop.create_task(body())  # noqa: RUF006 - the floor keeps nothing, on purpose
            if k + 1 < passes:
                loop.call_at(start + (k + 1) * EVERY + offset, fire, k + 1)

        for _ in range(jobs):
            loop.call_at(start + offset, fire, 0)
        await asyncio.wait_for(done, 600)
        return
    scheduler = Scheduler(timezone="UTC")
    start_dt = datetime.fromtimestamp(start, UTC)
    end_dt = start_dt + timedelta(seconds=(passes - 1) * EVERY)
    for n in range(jobs):
        scheduler.add_job(
            body, id=f"j{n}", every=f"{EVERY}s", start=start_dt, end=end_dt, run_immediately=True
        )
    await scheduler.start()
    await asyncio.wait_for(done, 600)  # every occurrence ran, none caught up or missed
    await scheduler.stop()


async def one_shot(system: str, jobs: int, due: bool) -> None:
    from jobtui import RunFinished, Scheduler
    from jobtui.store import Store

    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"{folder}/state.db") if system == "store" else None
        scheduler = with_store(Scheduler, store)
        at = datetime.now(UTC) + (timedelta(seconds=3) if due else timedelta(days=100))
        done = asyncio.get_running_loop().create_future()
        left = jobs

        def count(event: RunFinished) -> None:
            nonlocal left
            left -= 1
            if left == 0:
                done.set_result(None)

        async def body() -> None:
            return None

        for n in range(jobs):
            scheduler.add_job(body, id=f"j{n}", at=at)
        if store is not None:
            start_store(store, scheduler)
        scheduler.subscribe(count, RunFinished)
        await scheduler.start()
        as_the_command_does()  # with the store or without: the store's share compares the two
        if due:
            await asyncio.wait_for(done, 600)
        if store is not None:
            await asyncio.to_thread(store.flush, 600)
        await scheduler.stop()
        if store is not None:
            await asyncio.to_thread(store.close)


# -- the driver -----------------------------------------------------------------------------


def count(case: str, system: str, jobs: int, arg: str, where: Path | None) -> list[int]:
    """Instructions of each thread (in the order they started) of one run under callgrind."""
    with tempfile.TemporaryDirectory() as out:
        env = child_env(where)
        cmd = [
            "valgrind", "--tool=callgrind", "--separate-threads=yes",
            f"--callgrind-out-file={out}/cg.%p", sys.executable, __file__,
            "--child", case, system, str(jobs), arg,
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if result.returncode != 0:
            raise SystemExit(f"{case}/{system} failed:\n{result.stderr[-3000:]}")
        counts: dict[int, int] = {}
        for path in glob.glob(f"{out}/cg.*-*"):
            thread = int(path.rsplit("-", 1)[1])
            for line in Path(path).read_text().splitlines():
                if line.startswith("summary:"):
                    counts[thread] = int(line.split()[1])
        return [counts[t] for t in sorted(counts)]


def per_run(case: str, system: str, jobs: int, where: Path | None) -> list[float]:
    """Per run, by thread: the loop's (the main thread), then the store writer's if any."""
    larger, smaller, runs = ("4", "2", 2 * jobs) if case == "interval" else ("due", "idle", jobs)
    more, fewer = (
        count(case, system, jobs, larger, where),
        count(case, system, jobs, smaller, where),
    )
    threads = 2 if system == "store" else 1  # the loop's, the writer's (then to_thread's)
    return [(more[t] - fewer[t]) / runs for t in range(threads)]


def child(case: str, system: str, jobs: int, arg: str) -> None:
    if case == "interval":
        asyncio.run(interval(system, jobs, int(arg)))
    else:
        asyncio.run(one_shot(system, jobs, arg == "due"))


def report(args: argparse.Namespace, baseline: Path | None) -> None:
    columns: dict[str, Path | None] = {"jobtui": None}
    if baseline is not None:
        columns[f"jobtui {args.baseline[:10]}"] = baseline
    rows: list[tuple[str, dict[str, float]]] = []
    floor = per_run("interval", "floor", args.jobs, None)[0]
    interval_runs = {
        name: per_run("interval", "jobtui", args.jobs, w)[0] for name, w in columns.items()
    }
    one_shot_runs = {
        name: per_run("one-shot", "jobtui", args.jobs, w)[0] for name, w in columns.items()
    }
    stored = {name: per_run("one-shot", "store", args.jobs, w) for name, w in columns.items()}
    rows.append((f"interval, {args.jobs:,} jobs a pass", interval_runs))
    rows.append(("  x the asyncio floor", {n: v / floor for n, v in interval_runs.items()}))
    rows.append((f"one-shot, {args.jobs:,} due at once", one_shot_runs))
    rows.append(("  with the SQLite store: loop thread", {n: v[0] for n, v in stored.items()}))
    rows.append(("  with the SQLite store: writer thread", {n: v[1] for n, v in stored.items()}))
    rows.append(("  the store's share of the loop's", {
        n: stored[n][0] - one_shot_runs[n] for n in columns}))  # fmt: skip
    print(f"\njobtui instructions per run (callgrind; python {sys.version.split()[0]})")
    print(f"  {'':<42}" + "".join(f"{name:>20}" for name in columns))
    print(f"  {'asyncio floor (a timer that starts a task)':<42}{floor:>20,.0f}")
    for label, values in rows:
        fmt = ".2f" if label.strip().startswith("x ") else ",.0f"
        print(f"  {label:<42}" + "".join(f"{format(values[n], fmt):>20}" for n in columns))
    if baseline is not None:
        before = f"jobtui {args.baseline[:10]}"
        print("\n  now vs before:", ", ".join(
            f"{label.strip()} {values['jobtui'] / values[before]:.2f}x"
            for label, values in rows if not label.strip().startswith("x ")
        ))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per case (default 1000)")
    parser.add_argument("--baseline", metavar="REV", help="also count jobtui at this commit")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, system, jobs, arg = args.child
        child(case, system, int(jobs), arg)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind (Debian: apt-get install valgrind)")
    beside(args.baseline, lambda where: report(args, where))


if __name__ == "__main__":
    main()
