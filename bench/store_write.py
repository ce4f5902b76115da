"""The SQLite backend's write() alone, without the event loop: the batches of a burst of 20,000
one-shot runs (4,096-claim batches, then 4,096-write batches of each run's result, job save and
job note), CPU and wall time per write, on a fresh database. "busy": a Python thread spins
meanwhile, holding the GIL as the busy event loop does, so every statement that lets go of the
GIL waits for it to come back (which is what a statement costs the writer during a burst).

    python bench/store_write.py                    # jobtui as it is
    python bench/store_write.py --baseline a448dca # and jobtui at that commit, alternated

Each measurement runs in a fresh subprocess; the numbers are medians of the rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from baseline import beside, child_env  # bench/baseline.py, beside this script

RUNS = 20_000


def batches() -> tuple[list[Any], list[Any]]:
    """The writes of a burst, as the store makes them: claims, then per run its result, its
    job's saved state and the job's note that it finished."""
    from jobtui.store.writer import Kind, Write

    succeeded = getattr(Kind, "SUCCEEDED", None)
    t0 = time.time()
    claims, results = [], []
    for n in range(RUNS):
        job, run = f"j{n}", f"ab12cd34{n + 1:06x}"
        claims.append(Write(Kind.CLAIM, (run, job, t0, t0 + n * 1e-6), None, False, False, job))
        if succeeded is not None:  # a plain success's short row, as the store writes it
            results.append(Write(succeeded, (t0 + 1, 1, t0 + 0.5, run), job_id=job))
        else:  # a baseline from before Kind.SUCCEEDED: the whole result
            finish = (t0 + 1, "succeeded", "", 1, None, "", None, None, None, None, None, None, 0)
            results.append(Write(Kind.FINISH, (*finish, t0 + 0.5, run), job_id=job))
        save = (job, 0, "", "", 0, 1, t0, None, None, 1, "", t0 + 1)
        results.append(Write(Kind.SAVE_JOB, save, job_id=job))
        results.append(Write(Kind.JOB_EVENT, (job, t0 + 1, "finished", "its last run ended")))
    return claims, results


def measure(busy: bool) -> dict[str, float]:
    from jobtui.store.sqlite import SQLiteBackend
    from jobtui.store.writer import BATCH, Kind, Write

    claims, results = batches()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        backend = SQLiteBackend(Path(folder) / "state.db", keep_runs=None, keep_days=None)
        # The jobs' rows, as when they were added: the saves of the burst update them.
        size = getattr(backend, "batch_size", BATCH)  # as the writer takes them (a baseline's too)
        saves = [w for w in results if w.kind is Kind.SAVE_JOB]
        for start in range(0, len(saves), size):
            backend.write(saves[start : start + size])
        # What the writer then does while it idles, where the backend has it (warm).
        getattr(backend, "warm", lambda: None)()
        stop = threading.Event()

        def spin() -> None:  # pure Python: holds the GIL but for the switch interval
            while not stop.is_set():
                pass

        spinner = threading.Thread(target=spin, daemon=True)
        if busy:
            spinner.start()
        try:
            for name, writes in (("claims", claims), ("results", results)):
                batch_list: list[list[Write]] = [
                    writes[start : start + size] for start in range(0, len(writes), size)
                ]
                cpu0, wall0 = time.thread_time(), time.perf_counter()
                for batch in batch_list:
                    backend.write(batch)
                out[f"{name} cpu"] = (time.thread_time() - cpu0) / len(writes) * 1e6
                out[f"{name} wall"] = (time.perf_counter() - wall0) / len(writes) * 1e6
        finally:
            stop.set()
            if busy:
                spinner.join()
            backend.close()
    per_run = len(results) // RUNS  # writes of a run besides its claim
    for kind in ("cpu", "wall"):
        out[f"run {kind}"] = out[f"claims {kind}"] + per_run * out[f"results {kind}"]
    return out


def run_child(busy: bool, where: Path | None) -> dict[str, float]:
    env = child_env(where)
    cmd = [sys.executable, __file__, "--child", "busy" if busy else "quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="REV", help="also measure jobtui at this commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child == "busy")))
        return
    beside(args.baseline, lambda baseline: report(args, baseline))


def report(args: argparse.Namespace, baseline: Path | None) -> None:
    columns: dict[str, Path | None] = {"jobtui": None}
    if baseline is not None:
        columns[f"jobtui {args.baseline[:10]}"] = baseline
    got: dict[tuple[str, bool], list[dict[str, float]]] = {}
    for round_ in range(args.rounds):  # alternated: the machine's load falls on both alike
        print(f"  round {round_ + 1} of {args.rounds} ...", file=sys.stderr, flush=True)
        for busy in (False, True):
            for name, where in columns.items():
                got.setdefault((name, busy), []).append(run_child(busy, where))
    print(f"\nSQLiteBackend.write, us per write (median of {args.rounds})")
    print(f"  {'':<26}" + "".join(f"{name:>20}" for name in columns))
    keys = ("claims cpu", "claims wall", "results cpu", "results wall", "run cpu", "run wall")
    for busy in (False, True):
        for key in keys:
            label = f"{'busy' if busy else 'quiet'}: {key}" + " (per run)" * key.startswith("run")
            values = [statistics.median(r[key] for r in got[(n, busy)]) for n in columns]
            print(f"  {label:<26}" + "".join(f"{v:>20.2f}" for v in values))


if __name__ == "__main__":
    main()
