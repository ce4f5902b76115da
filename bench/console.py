"""Console benchmark: CPU used per second of wall time, and keypress-to-screen latency.

    python bench/console.py            # 1,000 jobs, 50 running, progress 10 times a second
    python bench/console.py --quick

The app runs headless (Textual's run_test) at 160x50 with the real clock. Targets: under 15% of
one core, and a keypress answered within 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROGRESS_JOB = """
import asyncio

async def progress(run):
    step = 0
    while True:
        step += 1
        run.progress = (step % 100) / 100
        run.status_message = f"step {step}"
        await asyncio.sleep(0.1)
"""


def write_jobs(folder: Path, jobs: int, running: int) -> Path:
    (folder / "benchjobs.py").write_text(PROGRESS_JOB)
    parts = ['[scheduler]\ntimezone = "UTC"\n']
    for n in range(running):
        parts.append(
            f'[jobs.busy{n:03}]\nrun = "benchjobs:progress"\nevery = "1h"\nrun_immediately = true\n'
        )
    for n in range(jobs - running):
        parts.append(f'[jobs.idle{n:04}]\ncommand = "true"\nevery = "{1 + n % 50}h"\n')
    path = folder / "jobs.toml"
    path.write_text("\n".join(parts))
    path.chmod(0o644)
    return path


async def measure(jobs: int, running: int, seconds: float, presses: int) -> dict[str, float]:
    from jobtui.config import load
    from jobtui.console.app import JobtuiApp
    from jobtui.console.widgets.job_table import JobTable

    with tempfile.TemporaryDirectory() as folder:
        path = write_jobs(Path(folder), jobs, running)
        app = JobtuiApp(load(path), watch_file=False, grace=0)
        async with app.run_test(size=(160, 50)):
            await asyncio.sleep(2.0)  # let the table fill and the runs start
            busy = len(app.scheduler.running_runs())
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
            table = app.screen.query_one(JobTable)
            latencies = []
            loop = asyncio.get_running_loop()
            for index in range(presses):
                before = table.cursor_row
                drawn: asyncio.Future[float] = loop.create_future()
                start = time.perf_counter()
                app.simulate_key("j" if index % 2 == 0 else "k")  # as if typed
                while table.cursor_row == before:
                    await asyncio.sleep(0.001)
                # The moment the screen is next drawn is when the user sees the answer.
                table.call_after_refresh(
                    lambda d=drawn: d.done() or d.set_result(time.perf_counter())
                )
                latencies.append((await drawn - start) * 1000)
                await asyncio.sleep(0.2)
            await app.shut_down()
    return {
        "running": busy,
        "cpu_pct": cpu * 100,
        "key_p50_ms": statistics.median(latencies),
        "key_max_ms": max(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    jobs, running, seconds, presses = (200, 10, 2.0, 5) if args.quick else (1000, 50, 5.0, 20)
    result = asyncio.run(measure(jobs, running, seconds, presses))
    print(f"jobtui console benchmark (python {sys.version.split()[0]})")
    print(f"  {jobs} jobs, {result['running']} running, progress updated 10 times a second each")
    rows = [
        ("CPU, % of one core", result["cpu_pct"], "<= 15", result["cpu_pct"] <= 15),
        ("keypress to screen, p50 ms", result["key_p50_ms"], "<= 50", result["key_p50_ms"] <= 50),
        ("keypress to screen, max ms", result["key_max_ms"], "(info)", True),
    ]
    for label, value, target, ok in rows:
        verdict = "" if target == "(info)" else ("ok" if ok else "MISSED")
        print(f"  {label:<30}{value:>10.1f}   target {target:<8} {verdict}")
    print("  (keypress: from the key event to the end of the next screen refresh)")


if __name__ == "__main__":
    main()
