"""Alerts benchmark: what hooks cost the scheduler's loop.

    python bench/alerts.py            # about 15 s
    python bench/alerts.py --quick    # smaller numbers, for a smoke test

Each case runs in a fresh subprocess. Printed: a table and the ratios against the same case with
no hooks configured, measured in the same run.

(a) throughput: N trivial async jobs run at once through a scheduler with `Alerts` subscribed,
    (1) with no hooks configured, (2) with a webhook on every success to a local endpoint that
    answers after 200 ms, against (0) no Alerts at all; runs per second.
(b) loop lag: the worst delay of a 10 ms ticker on the loop while those webhooks are delivered
    (a slow endpoint must never hold the loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CASES = {"none": "no Alerts", "no_hooks": "Alerts, no hooks", "slow_webhook": "webhook, 200 ms"}


def serve_slowly() -> str:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(0.2)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/hook"


async def measure(case: str, runs: int) -> dict[str, float]:
    from jobtui import Scheduler
    from jobtui.alerts import Alerts
    from jobtui.config.hooks import JobHooks

    scheduler = Scheduler(timezone="UTC")
    done = asyncio.Event()
    finished = 0

    async def body() -> None:
        nonlocal finished
        finished += 1
        if finished == runs:
            done.set()

    for index in range(runs):
        scheduler.add_job(body, id=f"job{index}")
    alerts = None
    if case != "none":
        hooks = None
        if case == "slow_webhook":
            hooks = JobHooks(webhook=serve_slowly(), webhook_on=frozenset({"success"}))
        alerts = Alerts(scheduler, lambda job_id: hooks, concurrency=8, max_queued=runs * 2)
    lag = 0.0
    ticking = True

    async def ticker() -> None:
        nonlocal lag
        loop = asyncio.get_running_loop()
        while ticking:
            before = loop.time()
            await asyncio.sleep(0.01)
            lag = max(lag, loop.time() - before - 0.01)

    await scheduler.start()
    if alerts is not None:
        alerts.start()
    tick = asyncio.create_task(ticker())
    started = time.perf_counter()
    for index in range(runs):
        scheduler.run_now(f"job{index}")
    await done.wait()
    elapsed = time.perf_counter() - started
    if alerts is not None:
        while alerts.busy:  # the deliveries go on after the runs: keep measuring the lag
            await asyncio.sleep(0.05)
    ticking = False
    await tick
    if alerts is not None:
        await alerts.stop()
    await scheduler.stop()
    return {"runs_per_s": runs / elapsed, "max_lag_ms": lag * 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(asyncio.run(measure(args.case, args.runs))))
        return
    runs = 200 if args.quick else 2000
    results = {}
    for case in CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--case", case, "--runs", str(runs)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results[case] = json.loads(out)
    print(f"{runs} manual runs of a trivial async job\n")
    print(f"{'case':<20} {'runs/s':>10} {'max loop lag':>14} {'vs no Alerts':>14}")
    base = results["none"]["runs_per_s"]
    for case, label in CASES.items():
        result = results[case]
        ratio = result["runs_per_s"] / base
        print(
            f"{label:<20} {result['runs_per_s']:>10.0f} {result['max_lag_ms']:>11.1f} ms "
            f"{ratio:>13.2f}x"
        )


if __name__ == "__main__":
    main()
