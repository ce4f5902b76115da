"""Console benchmark: CPU used per second of wall time, keypress-to-screen latency, time to open.

    python bench/console.py                      # both cases below, two rounds
    python bench/console.py --case 10k --quick
    python bench/console.py --baseline af4ca3f   # and the console at that commit, alternating

Cases (each with progress updated 10 times a second by every running job):
- 1k: 1,000 jobs, 50 running. Target: under 15% of one core, keypress p50 under 50 ms.
- 10k: 10,000 jobs, 100 running. Targets: under 10% of one core, keypress p50 under 50 ms,
  the app open (config read, scheduler up, table drawn) in under 1 s.

The app runs headless (Textual's run_test) at 160x50 with the real clock. The keys pressed are
the cursor (j, k) and the details screen opened and left (enter, escape); the 50 ms target is
checked for each kind on the time until the screen settles (a details screen's history, read in
a thread, often arrives a frame after the first; the table also gives that first frame). Each
round also
measures a console attached to a headless daemon (another process) running the same jobs: its
CPU must stay within that of a console hosting the scheduler, measured in the same run. For the
daemon's side of attaching, the 10k case also times (in-process) what its loop does when a
console attaches: encoding the snapshot of every job, and the full pass over every view that a
flush makes once a second.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baseline import extract  # bench/baseline.py, beside this script

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
KEYS = ("j", "k", "enter", "escape")  # down, up, open the details, back


@dataclass(frozen=True)
class Case:
    jobs: int
    running: int
    cpu_pct: float  # targets
    key_p50_ms: float
    open_s: float | None
    quick_jobs: int
    quick_running: int
    # Seconds measured: with 10,000 jobs, long enough to take in one of Python's full
    # collections (one every half a minute or so, about 0.3 s each), not to hit or miss it.
    seconds: float


CASES = {
    "1k": Case(1000, 50, 15.0, 50.0, None, 200, 10, 5.0),
    "10k": Case(10_000, 100, 10.0, 50.0, 1.0, 2000, 20, 20.0),
}


def sizes(case: Case, quick: bool) -> tuple[int, int, float, int]:
    """jobs, running, seconds measured, key presses"""
    if quick:
        return case.quick_jobs, case.quick_running, 2.0, 8
    return case.jobs, case.running, case.seconds, 24


def write_jobs(folder: Path, jobs: int, running: int) -> Path:
    (folder / "benchjobs.py").write_text(PROGRESS_JOB)
    parts = ['[scheduler]\ntimezone = "UTC"\n']
    for n in range(running):
        parts.append(
            f'[jobs.busy{n:03}]\nrun = "benchjobs:progress"\nevery = "1h"\nrun_immediately = true\n'
        )
    for n in range(jobs - running):
        parts.append(f'[jobs.idle{n:05}]\ncommand = "true"\nevery = "{1 + n % 50}h"\n')
    path = folder / "jobs.toml"
    path.write_text("\n".join(parts))
    path.chmod(0o644)
    return path


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def drawn(widget: object) -> float:
    """When the screen is next drawn after now: when the user sees the answer."""
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    widget.call_after_refresh(  # type: ignore[attr-defined]
        lambda: done.done() or done.set_result(time.perf_counter())
    )
    return await done


async def measure(
    jobs: int, running: int, seconds: float, presses: int, folder: Path, attach: Path | None
) -> dict[str, float]:
    """The console on ``jobs`` jobs: hosting them (written into ``folder``), or attached to
    the daemon that runs the jobs.toml at ``attach``."""
    from textual.app import App

    from jobtui.config import load
    from jobtui.console.app import JobtuiApp
    from jobtui.console.screens.detail import JobDetailScreen
    from jobtui.console.screens.main import MainScreen
    from jobtui.console.widgets.job_table import JobTable
    from jobtui.control.client import RemoteController

    path = write_jobs(folder, jobs, running) if attach is None else attach
    shown: list[float] = []  # when the table first drew its lines with every job in it
    render_lines = JobTable.render_lines

    def noting(table: JobTable, crop: Any) -> Any:
        lines = render_lines(table, crop)
        if not shown and table.row_count >= jobs:
            shown.append(time.perf_counter())
        return lines

    JobTable.render_lines = noting  # type: ignore[method-assign]
    frames: list[tuple[float, type]] = []  # each frame written out, and the screen it drew
    display = App._display

    def noting_frames(app: App[Any], screen: Any, renderable: Any) -> None:
        if renderable is not None:
            frames.append((time.perf_counter(), type(screen)))
        display(app, screen, renderable)

    App._display = noting_frames  # type: ignore[method-assign]
    start = time.perf_counter()  # opening: reading jobs.toml, starting, the table drawn
    if attach is None:
        app = JobtuiApp(load(path), watch_file=False, grace=0)
    else:
        config = load(path)
        remote = RemoteController(config.path, config.timezone, state_path=config.state_path)
        app = JobtuiApp(config, attach=remote)
    async with app.run_test(size=(160, 50)):
        while not (isinstance(app.screen, MainScreen) and app.screen.query(JobTable)):
            await asyncio.sleep(0.001)
        table = app.screen.query_one(JobTable)
        while not shown:
            await asyncio.sleep(0.001)
        opened = shown[0] - start
        await asyncio.sleep(2.0)  # let the runs start and settle
        busy = sum(len(job.running) for job in app.controller.jobs())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        cursor, details, first_frames = [], [], []
        for index in range(presses):
            key = KEYS[index % len(KEYS)]
            before = table.cursor_row
            began = time.perf_counter()
            frames.clear()
            app.simulate_key(key)  # as if typed
            if key in ("j", "k"):
                while table.cursor_row == before:
                    await asyncio.sleep(0.001)
            else:
                wanted = JobDetailScreen if key == "enter" else MainScreen
                while not isinstance(app.screen, wanted):
                    await asyncio.sleep(0.001)
            took = (await drawn(app.screen) - began) * 1000
            (cursor if key in ("j", "k") else details).append(took)
            if key not in ("j", "k"):  # the screen's first frame, before what follows (history)
                first = next((t for t, kind in frames if kind is wanted), began - 1)
                first_frames.append((first - began) * 1000)
            await asyncio.sleep(0.2)
        await app.shut_down()
    return {
        "running": busy,
        "cpu_pct": cpu * 100,
        "cursor_p50_ms": statistics.median(cursor),
        "cursor_p95_ms": percentile(cursor, 0.95),
        "details_p50_ms": statistics.median(details),
        "details_p95_ms": percentile(details, 0.95),
        "details_first_p50_ms": statistics.median(first_frames),
        "open_s": opened,
    }


async def measure_daemon_side(jobs: int, running: int, folder: Path) -> dict[str, float]:
    """What a daemon's loop does, in ms, when a console attaches (the snapshot, encoded once)
    and once a second for its watchers (the full pass over every view)."""
    from jobtui.config import load
    from jobtui.control import protocol
    from jobtui.control.broadcast import Broadcast
    from jobtui.control.controller import LocalController
    from jobtui.host import Host

    host = Host(load(write_jobs(folder, jobs, running)))
    controller = LocalController(host)
    await host.start(watch=False)
    try:
        await asyncio.sleep(1.0)
        broadcast = Broadcast(controller)
        broadcast.events(time.monotonic())  # the first pass sends everything
        snapshots, passes = [], []
        for _ in range(5):
            await asyncio.sleep(0.3)
            began = time.perf_counter()
            protocol.encode(broadcast.snapshot())
            snapshots.append((time.perf_counter() - began) * 1000)
            broadcast._full_due = True  # the pass the once-a-second timer makes
            began = time.perf_counter()
            broadcast.events(time.monotonic())
            passes.append((time.perf_counter() - began) * 1000)
        broadcast.close()
    finally:
        controller.close()
        await host.stop(0)
    return {"snapshot_ms": statistics.median(snapshots), "full_pass_ms": statistics.median(passes)}


def child(case: Case, quick: bool, attach: Path | None, daemon_side: bool) -> None:
    jobs, running, seconds, presses = sizes(case, quick)
    with tempfile.TemporaryDirectory() as folder:
        if daemon_side:
            result = asyncio.run(measure_daemon_side(jobs, running, Path(folder)))
        else:
            result = asyncio.run(measure(jobs, running, seconds, presses, Path(folder), attach))
    print(json.dumps({**result, "jobs": jobs}))


def run_child(
    case: str, quick: bool, baseline: Path | None, attach: Path | None = None, daemon: bool = False
) -> dict[str, float]:
    """One measurement in a fresh process; with ``baseline``, of the jobtui unpacked there;
    with ``attach``, of a console attached to the daemon running that jobs.toml."""
    env = dict(os.environ)
    if baseline is not None:
        env["PYTHONPATH"] = str(baseline)
    cmd = [sys.executable, __file__, "--child", "--case", case, *(["--quick"] if quick else [])]
    if attach is not None:
        cmd += ["--attach", str(attach)]
    if daemon:
        cmd += ["--daemon-side"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"the console benchmark failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_attached(case: str, quick: bool, folder: Path) -> dict[str, float]:
    """A headless daemon on the same jobs in its own process, and a console attached to it."""
    jobs, running, _, _ = sizes(CASES[case], quick)
    path = write_jobs(folder, jobs, running)
    log = folder / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "jobtui", str(path), "--headless", "--grace", "0"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "control_listening" not in log.read_text():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start:\n{log.read_text()}")
            time.sleep(0.1)
        return run_child(case, quick, None, attach=path)
    finally:
        daemon.terminate()
        daemon.wait(60)


ROWS = (  # label, key, the case's target (attribute of Case) or None
    ("CPU, % of one core", "cpu_pct", "cpu_pct"),
    ("cursor key to screen, p50 ms", "cursor_p50_ms", "key_p50_ms"),
    ("  p95 ms", "cursor_p95_ms", None),
    ("details open/back, p50 ms", "details_p50_ms", "key_p50_ms"),
    ("  p95 ms", "details_p95_ms", None),
    ("  its first frame, p50 ms", "details_first_p50_ms", None),
    ("open until the table shows, s", "open_s", "open_s"),
)


def report(
    name: str,
    case: Case,
    results: dict[str, dict[str, float]],
    before: str | None,
    rounds: int,
    daemon: dict[str, float] | None,
) -> None:
    first, attached = results["jobtui"], results[ATTACHED]
    print(
        f"\ncase {name}: {first['jobs']:,.0f} jobs, {first['running']:.0f} running, progress 10"
        f" times a second (medians of {rounds})"
    )
    print(f"  {'':<32}" + "".join(f"{system:>17}" for system in results) + "   target    verdict")
    for label, key, bound_name in ROWS:
        bound = getattr(case, bound_name) if bound_name else None
        cells = "".join(f"{r[key]:>17.{3 if key == 'open_s' else 1}f}" for r in results.values())
        if bound is None:
            print(f"  {label:<32}{cells}   (info)")
            continue
        verdicts = [("met" if r[key] < bound else "MISSED") for r in (first, attached)]
        print(f"  {label:<32}{cells}   < {bound:<7g} {verdicts[0]} / {verdicts[1]} attached")
    ratio = attached["cpu_pct"] / first["cpu_pct"] if first["cpu_pct"] else float("inf")
    verdict = "met" if ratio <= 1.0 else "MISSED"
    print(f"  {'CPU, attached / hosting':<32}{ratio:>17.2f}   <= 1      {verdict}")
    if before is not None:
        old = results[before]
        for label, key, _ in (ROWS[0], ROWS[1], ROWS[3], ROWS[-1]):
            ratio = first[key] / old[key] if old[key] else float("inf")
            print(f"  {label + ', now / before':<50}{ratio:>6.2f}")
    if daemon is not None:
        snapshot, full_pass = daemon["snapshot_ms"], daemon["full_pass_ms"]
        print(f"  daemon loop: a console attaching costs a snapshot of all jobs, {snapshot:.1f} ms")
        print(f"  to encode; the full pass over every view, once a second, {full_pass:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--baseline", metavar="REV", help="also measure the console at REV")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each, alternating")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--attach", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--daemon-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(CASES[args.case], args.quick, args.attach, args.daemon_side)
        return
    names = list(CASES) if args.case == "all" else [args.case]
    print(f"jobtui console benchmark (python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as folder:
        systems: dict[str, Path | None] = {"jobtui": None}
        before = f"jobtui {args.baseline[:10]}" if args.baseline else None
        if args.baseline and before:
            extract(args.baseline, Path(folder))
            systems[before] = Path(folder)
        for name in names:
            samples: dict[str, list[dict[str, float]]] = {s: [] for s in [*systems, ATTACHED]}
            for round_number in range(args.rounds):  # alternating: a noisy minute hits all alike
                for system, tree in systems.items():
                    samples[system].append(run_child(name, args.quick, tree))
                daemon_folder = Path(folder) / f"daemon-{name}-{round_number}"
                daemon_folder.mkdir()
                samples[ATTACHED].append(run_attached(name, args.quick, daemon_folder))
            results = {
                system: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                for system, runs in samples.items()
            }
            daemon = run_child(name, args.quick, None, daemon=True) if name == "10k" else None
            report(name, CASES[name], results, before, args.rounds, daemon)
    print("\n  (keypress: from the key event to the end of the next screen refresh; open: from")
    print("  reading jobs.toml until the table's lines are first drawn with every job in it;")
    print("  verdicts: hosting / attached)")


if __name__ == "__main__":
    main()
