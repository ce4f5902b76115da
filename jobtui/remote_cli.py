"""The verbs that talk to a running jobtui through its control socket, for scripts and
shells: `jobtui status`, `run`, `pause`, `resume`, `cancel`, `reload` (like supervisorctl and
systemctl). The jobs.toml argument names which daemon (the one that owns its state file)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .cli import DEFAULT_FILE
from .config.statedb import describe, is_database, password_problem, shared_state_key
from .control import protocol as p
from .control.controller import JobView, RunView
from .control.sync_client import Disconnected, NoDaemon, RemoteError, SyncClient
from .engine.printable import printable, printable_line, printable_text

DEFAULT_STATE = ".jobtui/state.db"

# `jobtui run JOB --wait` exits with the run's outcome (documented in the README).
EXIT_FAILED = 1  # failed without an exit status of its own (an exception, a signal)
EXIT_USAGE = 2  # unknown job, bad arguments, jobs.toml with problems (reload)
EXIT_DAEMON_LOST = 69  # the daemon went away before the run finished (EX_UNAVAILABLE)
EXIT_NOT_RUN = 75  # skipped or missed: the run never started (EX_TEMPFAIL)
EXIT_TIMED_OUT = 124  # as timeout(1)
EXIT_CANCELLED = 130  # as a shell reports an interrupted command


def parser(verb: str) -> argparse.ArgumentParser:
    descriptions = {
        "status": "Each job of the running jobtui: state, next run, running runs with progress.",
        "run": "Start a manual run of JOB in the running jobtui.",
        "pause": "Pause JOB in the running jobtui (a running run goes on).",
        "resume": "Resume JOB in the running jobtui, from now on.",
        "cancel": "Cancel JOB's running run(s) in the running jobtui.",
        "reload": "Make the running jobtui read jobs.toml again now.",
    }
    parser = argparse.ArgumentParser(prog=f"jobtui {verb}", description=descriptions[verb])
    if verb in ("run", "pause", "resume", "cancel"):
        parser.add_argument("job", metavar="JOB", help="the job's id")
    parser.add_argument(
        "file",
        type=Path,
        nargs="?",
        default=DEFAULT_FILE,
        help="the jobs.toml the daemon runs (default ./jobs.toml)",
    )
    if verb == "status":
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    if verb == "run":
        parser.add_argument(
            "--wait",
            action="store_true",
            help="print the run's output as it comes and exit with its outcome: 0 succeeded, "
            "the command's exit status (1 for other failures), 124 timed out, 130 cancelled, "
            "75 skipped or missed, 69 the daemon stopped first",
        )
    return parser


def main(verb: str, argv: list[str]) -> int:
    args = parser(verb).parse_args(argv)
    path: Path = args.file
    found = state_of(path)
    if found is None:
        print(f"jobtui {verb}: no such file: {printable(str(path))}", file=sys.stderr)
        return EXIT_USAGE
    state, named = found
    try:
        client = SyncClient.connect(state)
    except NoDaemon:
        shown = printable(str(path))
        print(
            f"jobtui {verb}: no jobtui is running {shown} (state {printable(named)}); "
            f"start one with `jobtui {shown} --headless` (or open the console: `jobtui {shown}`)",
            file=sys.stderr,
        )
        return 1
    except (RemoteError, Disconnected, OSError) as exc:
        print(f"jobtui {verb}: {printable_text(str(exc))}", file=sys.stderr)
        return 1
    action: Callable[[SyncClient, argparse.Namespace], int] = ACTIONS[verb]
    with client:
        try:
            return action(client, args)
        except RemoteError as exc:
            print(f"jobtui {verb}: {printable_text(exc.message)}", file=sys.stderr)
            return EXIT_USAGE if exc.code in ("unknown_job", "invalid_params") else 1
        except Disconnected as exc:
            print(f"jobtui {verb}: lost the daemon: {printable_text(str(exc))}", file=sys.stderr)
            return 1


def state_of(path: Path) -> tuple[Path, str] | None:
    """The state jobs.toml names, read leniently: a file being edited (with problems the
    daemon refused) still names the daemon that runs its last good version. The path the
    daemon's socket is keyed on, and the state as messages name it: a file, or a database
    with this host's name (a daemon started with JOBTUI_HOST is reached with the same)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    state: object = DEFAULT_STATE
    try:
        scheduler = tomllib.loads(text).get("scheduler", {})
        if isinstance(scheduler, dict):
            state = scheduler.get("state", DEFAULT_STATE)
    except tomllib.TOMLDecodeError:
        pass
    if not isinstance(state, str) or not state.strip():
        state = DEFAULT_STATE
    if is_database(state):
        host = os.environ.get("JOBTUI_HOST", "")
        # Never a password, even in a file the daemon would refuse.
        database = "a PostgreSQL database" if password_problem(state) else describe(state)
        named = f"{database}, {f'JOBTUI_HOST={host}' if host else 'JOBTUI_HOST not set'}"
        return shared_state_key(path, state), named
    file = (path.resolve().parent / state).resolve()
    return file, str(file)


# -- the verbs ------------------------------------------------------------------------------
def status(client: SyncClient, args: argparse.Namespace) -> int:
    jobs: list[JobView] = client.call("jobs")
    summary = client.call("summary")
    hello = client.hello
    now = datetime.now(UTC).timestamp()
    if args.json:
        record = {
            "daemon": {
                "pid": hello.pid,
                "host": hello.host,
                "since": _iso(hello.started_at, UTC),
                "config": hello.config_path,
                "state": hello.state_path,
                "version": hello.version,
            },
            "summary": {
                "jobs": summary.jobs,
                "running": summary.running,
                "paused": summary.paused,
                "failed_24h": summary.failed_24h,
                "store_status": summary.store_status,
                # Hosts sharing the state: this host's name and the runs on the others.
                "host": summary.host,
                "running_elsewhere": summary.running_elsewhere,
            },
            "jobs": [_job_record(view, now) for view in jobs],
        }
        print(json.dumps(record, indent=2))
        return 0
    since = _iso(hello.started_at, UTC)
    print(f"jobtui pid {hello.pid} ({hello.host}) since {since}: {printable(hello.config_path)}")
    print(
        f"{summary.jobs} jobs, {summary.running} running{_elsewhere(summary.running_elsewhere)}, "
        f"{summary.paused} paused, "
        f"{summary.failed_24h} failed in 24 h"
        + (f"; store: {printable(summary.store_status)}" if summary.store_status else "")
    )
    ids = {view.id: printable(view.id) for view in jobs}
    width = max((len(shown) for shown in ids.values()), default=3)
    print(f"{'JOB':<{width}}  {'STATE':<9}  {'NEXT RUN':<25}  LAST RUN")
    for view in jobs:
        zone = _zone(view.timezone)
        next_run = _iso(view.next_run_ts, zone) if view.next_run_ts is not None else "-"
        print(f"{ids[view.id]:<{width}}  {view.state.value:<9}  {next_run:<25}  {_last(view, now)}")
        for run in view.running:
            progress = f"{run.progress:4.0%}" if run.progress is not None else "   -"
            message = f"  {printable(run.status_message)}" if run.status_message else ""
            print(
                f"{'':<{width}}  run {printable(run.run_id)} running {_ago(run.elapsed(now))}"
                f"{f' on {printable(run.host)}' if run.host else ''}"
                f"{' (manual)' if run.manual else ''}  {progress}{message}"
            )
    return 0


def run(client: SyncClient, args: argparse.Namespace) -> int:
    run_id: str = client.call("run_now", job_id=args.job, follow=bool(args.wait))
    job = printable(args.job)
    if not args.wait:
        print(f"started run {printable(run_id)} of {job}")
        return 0
    out = sys.stdout
    try:
        while True:
            message = client.read(None)
            if not isinstance(message, p.LogEvent) or message.run_id != run_id:
                continue
            for line in message.lines:
                out.write(printable_line(line) + "\n")
            out.flush()
            if message.done:
                return _outcome_status(args.job, message)
    except Disconnected:
        print(
            f"jobtui run: the daemon stopped before run {printable(run_id)} of {job} finished",
            file=sys.stderr,
        )
        return EXIT_DAEMON_LOST
    except KeyboardInterrupt:  # only the waiting stops: the run belongs to the daemon
        print(
            f"\njobtui run: stopped waiting; run {printable(run_id)} of {job} goes on "
            f"(`jobtui cancel {job}` stops it)",
            file=sys.stderr,
        )
        return EXIT_CANCELLED


def _outcome_status(job_id: str, end: p.LogEvent) -> int:
    outcome = end.outcome or "unknown"
    detail = f": {printable(end.error)}" if end.error and outcome != "succeeded" else ""
    print(f"{printable(job_id)}: {printable(outcome)}{detail}", file=sys.stderr)
    if outcome == "succeeded":
        return 0
    if outcome == "timed_out":
        return EXIT_TIMED_OUT
    if outcome == "cancelled":
        return EXIT_CANCELLED
    if outcome in ("skipped", "missed"):
        return EXIT_NOT_RUN
    if end.exit_code is not None and 0 < end.exit_code < 256:
        return end.exit_code
    return EXIT_FAILED


def _simple(method: str, done: str) -> Callable[[SyncClient, argparse.Namespace], int]:
    def action(client: SyncClient, args: argparse.Namespace) -> int:
        client.call(method, job_id=args.job)
        print(f"{done} {printable(args.job)}")
        return 0

    return action


def reload(client: SyncClient, args: argparse.Namespace) -> int:
    if client.call("reload"):
        print(f"reloaded {printable(client.hello.config_path)}")
        return 0
    # The problems reach watchers; a snapshot carries the ones of the last reload.
    client.call("watch")
    while True:
        message = client.read(10.0)
        if isinstance(message, p.Snapshot):
            break
    for problem in message.reload_problems:
        print(printable_text(problem), file=sys.stderr)
    shown = printable(client.hello.config_path)
    print(f"jobtui reload: {shown} has problems; the previous jobs keep running", file=sys.stderr)
    return EXIT_USAGE


ACTIONS: dict[str, Callable[[SyncClient, argparse.Namespace], int]] = {
    "status": status,
    "run": run,
    "pause": _simple("pause", "paused"),
    "resume": _simple("resume", "resumed"),
    "cancel": _simple("cancel", "cancelled the running run of"),
    "reload": reload,
}


# -- formatting -----------------------------------------------------------------------------
def _zone(name: str) -> Any:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _iso(ts: float | None, zone: Any) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ago(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02}m"


def _elsewhere(count: int) -> str:
    return f" ({count} on other hosts)" if count else ""


def _last(view: JobView, now: float) -> str:
    run = view.last_run
    if run is None or run.outcome is None:
        return "-"
    when = f" {_ago(now - run.finished_ts)} ago" if run.finished_ts is not None else ""
    error = f": {printable(run.error_line)}" if run.error_line else ""
    where = f" on {printable(run.host)}" if run.host else ""
    return f"{run.outcome.value}{when}{where}{error}"


def _run_record(run: RunView) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "manual": run.manual,
        "attempt": run.attempt,
        "started_at": _iso(run.started_ts, UTC) if run.started_ts is not None else None,
        "finished_at": _iso(run.finished_ts, UTC) if run.finished_ts is not None else None,
        "outcome": run.outcome.value if run.outcome is not None else None,
        "progress": run.progress,
        "status": run.status_message,
        "error": run.error_line,
        "pid": run.pid,
        "host": run.host,  # "" unless hosts share the state
    }


def _job_record(view: JobView, now: float) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "state": view.state.value,
        "paused": view.paused,
        "trigger": view.trigger,
        "timezone": view.timezone,
        "next_run": _iso(view.next_run_ts, _zone(view.timezone))
        if view.next_run_ts is not None
        else None,
        "last_run": _run_record(view.last_run) if view.last_run is not None else None,
        "running": [_run_record(run) for run in view.running],
    }
