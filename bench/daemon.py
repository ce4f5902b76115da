"""Daemon benchmark: what attached clients cost the scheduler.

    python bench/daemon.py            # 4 rounds of 10 s each way (about 90 s)
    python bench/daemon.py --quick    # 1 round of 4 s each way, for a smoke test

A daemon process (the Host and ControlServer of `jobtui --headless`, no state store so disk
speed does not count) runs 1,000 jobs: 950 trivial jobs every 5 s, spread over the period
(190 occurrences a second), and 50 long runs that set their progress 10 times a second and
log a line each second. Measured: how late each occurrence started after its instant (p50,
p99, max), and the daemon's CPU, with no clients and with 10 clients. Each client is its own
process, watches (snapshot, then every pushed event, decoded as a console would) and follows
the log of one of the long runs. Rounds alternate (none, 10, none, 10, ...), each in a fresh
daemon process, so drift on the machine hits both sides alike.

Target (issue 10): p99 lateness with 10 clients within 1.2x of no clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

JOBS = 1000
RUNNERS = 50
PERIOD = 5.0
CLIENTS = 10


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


# -- the daemon (a child process) -----------------------------------------------------------
async def daemon(seconds: float, clients: int, folder: Path) -> dict:
    from jobtui.config import load
    from jobtui.control.controller import LocalController
    from jobtui.control.server import ControlServer
    from jobtui.engine import Run, RunStarted
    from jobtui.host import Host

    jobs = folder / "jobs.toml"
    jobs.write_text('[scheduler]\ntimezone = "UTC"\n')
    host = Host(load(jobs))
    scheduler = host.scheduler

    async def tick() -> None:
        pass

    async def long_run(run: Run) -> None:
        step = 0
        while True:
            step += 1
            run.progress = (step % 100) / 100
            run.status_message = f"step {step}"
            if step % 10 == 0:
                run.log(f"step {step}")
            await asyncio.sleep(0.1)

    # Anchored one period back: the grid's first instants come within a second of the start.
    start = datetime.fromtimestamp(time.time() - PERIOD + 1.0, UTC)
    for number in range(JOBS - RUNNERS):
        offset = PERIOD * number / (JOBS - RUNNERS)
        when = datetime.fromtimestamp(start.timestamp() + offset, UTC)
        scheduler.add_job(tick, id=f"tick{number:04}", every=PERIOD, start=when)
    for number in range(RUNNERS):
        scheduler.add_job(long_run, id=f"long{number:02}")
    lateness: list[float] = []
    measuring = False

    def started(event: RunStarted) -> None:
        run = event.run
        if measuring and not run.manual and run.started_ts is not None:
            lateness.append(run.started_ts - run.scheduled_ts)

    scheduler.subscribe(started, RunStarted)
    env = {"XDG_RUNTIME_DIR": str(folder)}
    server = ControlServer(LocalController(host), env=env, log=lambda **_: None)
    await host.start(watch=False)
    path = await server.start()
    for number in range(RUNNERS):
        scheduler.run_now(f"long{number:02}")
    procs = []
    for n in range(clients):
        args = ["--client", str(path), f"long{n % RUNNERS:02}"]
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable, __file__, *args, stdout=asyncio.subprocess.PIPE
            )
        )
    async with asyncio.timeout(30):
        while server.client_count < clients:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # warm-up: snapshots sent, first occurrences under way
    before = resource.getrusage(resource.RUSAGE_SELF)
    measuring = True
    await asyncio.sleep(seconds)
    measuring = False
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    for proc in procs:
        proc.terminate()
    client_reports = []
    for proc in procs:
        out, _ = await proc.communicate()
        if out.strip():
            client_reports.append(json.loads(out))
    await server.close()
    await host.stop(0)
    return {
        "clients": clients,
        "lateness": lateness,
        "cpu": cpu / seconds,
        "client_events": sum(r["events"] for r in client_reports) / max(1, len(client_reports)),
        "client_lines": sum(r["lines"] for r in client_reports) / max(1, len(client_reports)),
        "client_cpu": sum(r["cpu"] for r in client_reports) / max(1, len(client_reports)),
        "client_seconds": min((r["seconds"] for r in client_reports), default=0.0),
    }


# -- a client (a child process of the daemon) -----------------------------------------------
def client(path: str, job_id: str) -> None:
    import signal
    import socket

    from jobtui.control import protocol as p

    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    file = sock.makefile("rb")
    counts = {"events": 0, "lines": 0}
    began = time.monotonic()

    def report(*_: object) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        seconds = time.monotonic() - began
        print(json.dumps({**counts, "cpu": (usage.ru_utime + usage.ru_stime) / seconds,
                          "seconds": seconds}), flush=True)  # fmt: skip
        os._exit(0)

    signal.signal(signal.SIGTERM, report)
    send = sock.sendall
    send(p.encode(p.Request(id=1, method="watch")))
    following = False
    while True:
        line = file.readline(p.MAX_SERVER_LINE)
        if not line:
            report()
        message = p.decode_server_message(line)
        if isinstance(message, p.Snapshot) and not following:
            following = True
            for view in message.jobs:
                if view.id == job_id and view.running:
                    params = {"job_id": job_id, "run_id": view.running[0].run_id}
                    send(p.encode(p.Request(id=2, method="follow", params=params)))
        elif isinstance(message, p.LogEvent):
            counts["lines"] += len(message.lines)
        elif not isinstance(message, p.Reply):
            counts["events"] += 1


# -- the report -----------------------------------------------------------------------------
def measure(seconds: float, clients: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="jobtui-bench-") as folder:
        done = subprocess.run(
            [sys.executable, __file__, "--daemon", str(seconds), str(clients), folder],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round each way")
    parser.add_argument("--daemon", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(*args.client)
        return
    if args.daemon:
        seconds, clients, folder = args.daemon
        print(json.dumps(asyncio.run(daemon(float(seconds), int(clients), Path(folder)))))
        return
    rounds, seconds = (1, 4.0) if args.quick else (4, 10.0)
    print(f"jobtui daemon benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    print(f"  {JOBS} jobs ({JOBS - RUNNERS} every {PERIOD:g} s, {RUNNERS} long runs with progress"
          f" 10/s), {rounds} x {seconds:g} s per side\n")  # fmt: skip
    results: dict[int, list[dict]] = {0: [], CLIENTS: []}
    for number in range(rounds):
        for clients in (0, CLIENTS):
            print(f"  round {number + 1}: {clients} clients ...", file=sys.stderr, flush=True)
            results[clients].append(measure(seconds, clients))
    rows = {}
    pairs = []  # p99 with clients / without, per round: drift on the machine cancels out
    for without, with_clients in zip(results[0], results[CLIENTS], strict=True):
        pairs.append(
            percentile(with_clients["lateness"], 0.99) / percentile(without["lateness"], 0.99)
        )
    for clients, runs in results.items():
        lateness = [value for run in runs for value in run["lateness"]]
        rows[clients] = {
            "occurrences": len(lateness),
            "p50 ms": percentile(lateness, 0.50) * 1000,
            "p99 ms": percentile(lateness, 0.99) * 1000,
            "max ms": max(lateness) * 1000,
            "daemon cpu %": 100 * sum(run["cpu"] for run in runs) / len(runs),
            "events/s per client": sum(run["client_events"] / max(run["client_seconds"], 1e-9)
                                       for run in runs) / len(runs) if clients else 0.0,
            "log lines/s per client": sum(run["client_lines"] / max(run["client_seconds"], 1e-9)
                                          for run in runs) / len(runs) if clients else 0.0,
            "client cpu %": 100 * sum(run["client_cpu"] for run in runs) / len(runs),
        }  # fmt: skip
    names = list(rows[0])
    print(f"  {'':<24}" + "".join(f"{f'{c} clients':>14}" for c in rows))
    for name in names:
        cells = "".join(f"{rows[c][name]:>14.1f}" for c in rows)
        print(f"  {name:<24}{cells}")
    ratio = rows[CLIENTS]["p99 ms"] / max(rows[0]["p99 ms"], 1e-9)
    median = sorted(pairs)[len(pairs) // 2]
    verdict = "ok" if ratio <= 1.2 else "OVER"
    print(f"\n  p99 lateness, {CLIENTS} clients / none: {ratio:.2f}x   target <= 1.2x   {verdict}")
    print(f"  per round pair: {', '.join(f'{r:.2f}x' for r in pairs)} (median {median:.2f}x)")
    if args.quick:
        print("  (--quick: one short round; the target is stated for the full run)")


if __name__ == "__main__":
    main()
