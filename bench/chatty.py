"""Chatty-job benchmark: one command printing as fast as it can, and a 1 s job beside it.

    python bench/chatty.py                     # jobtui as it is
    python bench/chatty.py --baseline 127b233  # and jobtui at that commit, side by side
    python bench/chatty.py --seconds 3         # shorter

`yes` runs for ``--seconds`` (a job timeout stops it) while a `true` command is due every second.
Printed: the output throughput jobtui captured, its CPU use, how late the 1 s job started and how
long its runs took, how many of its occurrences were skipped because the last one was still
going, and how long reading the last 5,000 lines of the huge log takes (what the details screen
does when it opens). Each system runs in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from baseline import beside, child_env  # bench/baseline.py, beside this script

TARGET_MB_S = 50.0


async def chatty(seconds: float) -> dict[str, float]:
    from jobtui import OccurrenceSkipped, RunFinished, RunStarted, Scheduler

    scheduler = Scheduler(timezone="UTC")
    late: list[float] = []
    took: list[float] = []
    skipped = 0
    done = asyncio.get_running_loop().create_future()
    chatty_run = None

    def on_event(event: object) -> None:
        nonlocal skipped, chatty_run
        if isinstance(event, RunStarted) and event.run.job_id == "tick":
            late.append(event.run.started_ts - event.run.scheduled_ts)
        elif isinstance(event, RunFinished) and event.run.job_id == "tick":
            took.append(event.run.duration or 0.0)
        elif isinstance(event, OccurrenceSkipped) and event.run.job_id == "tick":
            skipped += 1
        elif isinstance(event, RunFinished) and event.run.job_id == "chatty":
            chatty_run = event.run
            done.set_result(None)

    scheduler.subscribe(on_event)
    scheduler.add_job(["yes"], id="chatty", timeout=seconds, kill_grace=1)
    scheduler.add_job(["true"], id="tick", every="1s")
    await scheduler.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    scheduler.run_now("chatty")
    await asyncio.wait_for(done, seconds + 60)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    await scheduler.stop()
    assert chatty_run is not None
    output = chatty_run.output
    t0 = time.perf_counter()
    if hasattr(output, "since"):
        output.since(-5000, 5000)
    else:  # the design before: the log view read every kept line
        output.lines()[-5000:]
    tail_ms = (time.perf_counter() - t0) * 1000
    return {
        "mb_s": output.total_lines * 2 / wall / 1e6,  # `yes` prints "y\n"
        "cpu_pct": cpu / wall * 100,
        "late_max_ms": max(late, default=0.0) * 1000,
        "took_max_ms": max(took, default=0.0) * 1000,
        "tick_runs": float(len(took)),
        "skipped": float(skipped),
        "tail_ms": tail_ms,
    }


def measure(seconds: float, baseline: Path | None) -> dict[str, float]:
    env = child_env(baseline)
    cmd = [sys.executable, __file__, "--child", "--seconds", str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds * 40 + 120)
    if out.returncode != 0:
        raise SystemExit(f"chatty failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


ROWS = [
    ("output captured, MB/s", "mb_s", ".1f"),
    ("jobtui CPU, % of a core", "cpu_pct", ".0f"),
    ("1 s job: latest start, ms", "late_max_ms", ".1f"),
    ("1 s job: longest run, ms", "took_max_ms", ".1f"),
    ("1 s job: runs", "tick_runs", ".0f"),
    ("1 s job: skipped", "skipped", ".0f"),
    ("last 5,000 log lines, ms", "tail_ms", ".2f"),
]


def report(seconds: float, baseline: str | None) -> None:
    print(f"jobtui chatty-job benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    print(f"`yes` for {seconds:g} s beside a `true` command every second\n")
    results = {"jobtui": measure(seconds, None)}
    if baseline:

        def before(where: Path | None) -> None:
            results[f"jobtui {baseline[:10]}"] = measure(seconds, where)

        beside(baseline, before)
    names = list(results)
    print(f"  {'metric':<28}" + "".join(f"{name:>20}" for name in names))
    print("  " + "-" * (28 + 20 * len(names)))
    for label, key, fmt in ROWS:
        print(f"  {label:<28}" + "".join(f"{format(results[n][key], fmt):>20}" for n in names))
    now = results["jobtui"]
    checks = [
        ("throughput, MB/s", now["mb_s"], f">= {TARGET_MB_S:.0f}", now["mb_s"] >= TARGET_MB_S),
        ("1 s job started late, ms", now["late_max_ms"], "<= 100", now["late_max_ms"] <= 100),
        ("1 s job skipped", now["skipped"], "== 0", now["skipped"] == 0),
    ]
    print("\nratios and targets")
    for label, value, target, ok in checks:
        print(f"  {label:<30}{value:>12.2f}   target {target:<10} {'ok' if ok else 'MISSED'}")
    if baseline:
        before = results[names[1]]
        print(f"  {'throughput vs before':<30}{now['mb_s'] / before['mb_s']:>12.1f}x")
        print(
            f"  {'latest 1 s start vs before':<30}"
            f"{now['late_max_ms'] / max(before['late_max_ms'], 1e-9):>12.3f}x"
        )
        print(f"  {'last 5,000 lines vs before':<30}{now['tail_ms'] / before['tail_ms']:>12.3f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long `yes` runs")
    parser.add_argument("--baseline", metavar="REV", help="also measure jobtui at this commit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(chatty(args.seconds))))
        return
    report(args.seconds, args.baseline)


if __name__ == "__main__":
    main()
