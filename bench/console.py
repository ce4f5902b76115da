"""Console benchmark: CPU used per second of wall time, and keypress-to-screen latency.

    python bench/console.py            # 1,000 jobs, 50 running, progress 10 times a second
    python bench/console.py --quick
    python bench/console.py --baseline 8dec20f   # and the console at that commit, alternating

The app runs headless (Textual's run_test) at 160x50 with the real clock. Targets: under 15% of
one core, and a keypress answered within 50 ms. Each round also measures a console attached to
a headless daemon (another process) running the same jobs: its CPU must stay within that of a
console hosting the scheduler, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
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


ATTACHED = "attached"


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


async def measure(
    jobs: int, running: int, seconds: float, presses: int, attach: Path | None = None
) -> dict[str, float]:
    """The console on ``jobs`` jobs: hosting them (in a temporary folder), or attached to
    the daemon that runs the jobs.toml at ``attach``."""
    from jobtui.config import load
    from jobtui.console.app import JobtuiApp
    from jobtui.console.widgets.job_table import JobTable
    from jobtui.control.client import RemoteController

    with tempfile.TemporaryDirectory() as folder:
        if attach is None:
            app = JobtuiApp(
                load(write_jobs(Path(folder), jobs, running)), watch_file=False, grace=0
            )
        else:
            config = load(attach)
            remote = RemoteController(config.path, config.timezone, state_path=config.state_path)
            app = JobtuiApp(config, attach=remote)
        async with app.run_test(size=(160, 50)):
            await asyncio.sleep(2.0)  # let the table fill and the runs start
            busy = sum(len(job.running) for job in app.controller.jobs())
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


def sizes(quick: bool) -> tuple[int, int, float, int]:
    """jobs, running, seconds measured, key presses"""
    return (200, 10, 2.0, 5) if quick else (1000, 50, 5.0, 20)


def child(quick: bool, attach: Path | None) -> None:
    jobs, running, seconds, presses = sizes(quick)
    result = asyncio.run(measure(jobs, running, seconds, presses, attach))
    print(json.dumps({**result, "jobs": jobs}))


def run_child(quick: bool, baseline: Path | None, attach: Path | None = None) -> dict[str, float]:
    """One measurement in a fresh process; with ``baseline``, of the jobtui unpacked there;
    with ``attach``, of a console attached to the daemon running that jobs.toml."""
    env = dict(os.environ)
    if baseline is not None:
        env["PYTHONPATH"] = str(baseline)
    cmd = [sys.executable, __file__, "--child", *(["--quick"] if quick else [])]
    if attach is not None:
        cmd += ["--attach", str(attach)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"the console benchmark failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_attached(quick: bool, folder: Path) -> dict[str, float]:
    """A headless daemon on the same jobs in its own process, and a console attached to it."""
    jobs, running, _, _ = sizes(quick)
    path = write_jobs(folder, jobs, running)
    log = folder / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "jobtui", str(path), "--headless", "--grace", "0"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "control_listening" not in log.read_text():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start:\n{log.read_text()}")
            time.sleep(0.1)
        return run_child(quick, None, attach=path)
    finally:
        daemon.terminate()
        daemon.wait(60)


def extract(rev: str, folder: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "jobtui"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--baseline", metavar="REV", help="also measure the console at REV")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each, alternating")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--attach", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.quick, args.attach)
        return
    with tempfile.TemporaryDirectory() as folder:
        systems: dict[str, Path | None] = {"jobtui": None}
        if args.baseline:
            extract(args.baseline, Path(folder))
            systems[f"jobtui {args.baseline[:10]}"] = Path(folder)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in [*systems, ATTACHED]}
        for round_number in range(args.rounds):  # alternating, so a noisy minute hits all alike
            for name, tree in systems.items():
                samples[name].append(run_child(args.quick, tree))
            daemon_folder = Path(folder) / f"daemon{round_number}"
            daemon_folder.mkdir()
            samples[ATTACHED].append(run_attached(args.quick, daemon_folder))
    results = {
        name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for name, runs in samples.items()
    }
    first = results["jobtui"]
    print(f"jobtui console benchmark (python {sys.version.split()[0]}, medians of {args.rounds})")
    print(f"  {first['jobs']:.0f} jobs, {first['running']:.0f} running, progress 10 times a second")
    print(f"  {'':<30}" + "".join(f"{name:>18}" for name in results))
    rows = [
        ("CPU, % of one core", "cpu_pct", 15.0),
        ("keypress to screen, p50 ms", "key_p50_ms", 50.0),
        ("keypress to screen, max ms", "key_max_ms", None),
    ]
    for label, key, bound in rows:
        cells = "".join(f"{r[key]:>18.1f}" for r in results.values())
        verdict = "" if bound is None else ("ok" if first[key] <= bound else "MISSED")
        target = "(info)" if bound is None else f"<= {bound:g}"
        print(f"  {label:<30}{cells}   target {target:<8} {verdict}")
    attached = results[ATTACHED]
    ratio = attached["cpu_pct"] / first["cpu_pct"] if first["cpu_pct"] else float("inf")
    verdict = "ok" if ratio <= 1.0 else "MISSED"
    print(f"  {'CPU, attached vs hosting':<44}{ratio:>6.2f}   target <= 1.00  {verdict}")
    if args.baseline:
        before = results[f"jobtui {args.baseline[:10]}"]
        for label, key, _ in rows[:2]:
            ratio = first[key] / before[key] if before[key] else float("inf")
            verdict = "ok" if ratio <= 1.2 else "MISSED"
            print(f"  {label + ' vs before':<44}{ratio:>6.2f}   target <= 1.20  {verdict}")
    print("  (keypress: from the key event to the end of the next screen refresh)")


if __name__ == "__main__":
    main()
