"""The `jobtui` command: run jobs.toml in the console or headless, check it, list its next times,
read its history."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, ConfigError, load
from .engine.printable import printable, printable_text
from .engine.timezones import zone_name

# What every verb runs on when no file is named (remote_cli.py takes it from here).
DEFAULT_FILE = Path("jobs.toml")

# The verbs that talk to a running jobtui (remote_cli.py, imported only when used).
REMOTE_VERBS = ("status", "run", "pause", "resume", "cancel", "reload")

EXAMPLES = """\
examples:
  jobtui jobs.toml                         open the live console on the jobs (attached,
                                           if a jobtui already runs them)
  jobtui attach jobs.toml                  the console on the jobtui that runs jobs.toml
  jobtui jobs.toml --headless              run the jobs, one log line per event (Ctrl-C stops)
  jobtui jobs.toml --headless --log-format json
  jobtui check jobs.toml                   report every problem in the file, or summarise it
  jobtui list jobs.toml --next 5           the next five times of every job
  jobtui list jobs.toml --from 2026-10-24T12:00 --json
  jobtui history jobs.toml --job backup --limit 50
  jobtui why jobs.toml backup              why a job ran, or did not, and when it runs next

talking to a running jobtui (headless or console) of jobs.toml (default ./jobs.toml):
  jobtui status [jobs.toml] [--json]       each job's state, next run and running runs
  jobtui run JOB [jobs.toml] [--wait]      a manual run; --wait prints its output and exits
                                           with its outcome (0, the command's status, 124
                                           timed out, 130 cancelled, 75 not run)
  jobtui pause|resume|cancel JOB [jobs.toml]
  jobtui reload [jobs.toml]

exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error
"""


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobtui",
        description="A job scheduler with a live terminal console. Commands: "
        "jobtui FILE [--headless], jobtui check FILE, jobtui list FILE.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jobtui {__version__}")
    parser.add_argument("file", type=Path, help="the jobs.toml to run")
    parser.add_argument("--headless", action="store_true", help="run without the console")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="headless log lines as plain text (default) or JSON",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=None,
        help="headless: seconds running jobs get to finish on SIGINT/SIGTERM "
        "(default: [scheduler] stop_grace, or 30)",
    )
    return parser


def check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobtui check",
        description="Validate a jobs.toml: every problem is reported (file:line:col), not only "
        "the first; on success, a summary of the jobs.",
    )
    parser.add_argument("file", type=Path)
    return parser


def list_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobtui list",
        description="The jobs of a jobs.toml with their next fire times (like systemctl "
        "list-timers).",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--next", type=int, default=1, metavar="N", help="how many fire times per job (default 1)"
    )
    parser.add_argument(
        "--from",
        dest="start",
        metavar="DATETIME",
        help="compute from this ISO date and time (default now; "
        "without an offset it is read in the scheduler's timezone)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def history_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobtui history",
        description="Past runs from the state store, newest first. It only reads, so it can "
        "run beside a running jobtui.",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument("--job", metavar="ID", help="only this job's runs")
    parser.add_argument("--limit", type=int, default=20, metavar="N", help="how many (default 20)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def why_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobtui why",
        description="A job's recent occurrences (ran, skipped, missed, and why) and its next "
        "one, in plain words. It only reads, so it can run beside a running jobtui.",
    )
    parser.add_argument("job", metavar="JOB", help="the job's id")
    parser.add_argument(
        "file", type=Path, nargs="?", default=DEFAULT_FILE,
        help="the jobs.toml (default ./jobs.toml)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "check":
            return check(check_parser().parse_args(argv[1:]))
        if argv and argv[0] == "list":
            return list_jobs(list_parser().parse_args(argv[1:]))
        if argv and argv[0] == "history":
            return history(history_parser().parse_args(argv[1:]))
        if argv and argv[0] == "attach":
            return run_console(attach_parser().parse_args(argv[1:]).file, attach_only=True)
        if argv and argv[0] in REMOTE_VERBS:
            from . import remote_cli

            return remote_cli.main(argv[0], argv[1:])
        if argv and argv[0] == "why":
            return why(why_parser().parse_args(argv[1:]))
        return run(run_parser().parse_args(argv))
    except KeyboardInterrupt:
        return 1
    except BrokenPipeError:
        # The reader went away (`jobtui list ... | head`): stop quietly, as tools killed by
        # SIGPIPE do. stdout goes to /dev/null so that the flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _load_reporting(path: Path) -> Config | None:
    """The config, or None after printing every problem in it."""
    try:
        return load(path)
    except ConfigError as exc:
        print(printable_text(str(exc)), file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    if not args.headless:
        return run_console(args.file)
    from .headless import run_headless

    return asyncio.run(run_headless(args.file, log_format=args.log_format, grace=args.grace))


def run_console(path: Path, *, attach_only: bool = False) -> int:
    from .console.launch import open_console

    return open_console(path, attach_only=attach_only)


def attach_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jobtui attach",
        description="Open the console on the jobtui that runs this jobs.toml (a daemon started "
        "with --headless, or another console); fail if none does. Quitting leaves it running.",
    )
    parser.add_argument("file", type=Path, nargs="?", default=DEFAULT_FILE,
                        help="the jobs.toml it runs (default: ./jobs.toml)")  # fmt: skip
    return parser


def check(args: argparse.Namespace) -> int:
    try:
        config = load(args.file)
    except ConfigError as exc:
        print(printable_text(str(exc)), file=sys.stderr)
        count = len([p for p in exc.problems if not p.warning])
        file = printable(str(args.file))
        print(f"{count} problem{'s' if count != 1 else ''} in {file}", file=sys.stderr)
        return 2
    for warning in config.warnings:
        print(printable_text(str(warning)), file=sys.stderr)
    print(
        f"{printable(str(args.file))}: {len(config.jobs)} "
        f"job{'s' if len(config.jobs) != 1 else ''}, timezone {zone_name(config.timezone)}, "
        f"state {printable(config.state_url or str(config.state_path))}"
    )
    # Every cell shown as printable() makes it, and measured so, so the columns line up.
    ids = {spec.id: printable(spec.id) for spec in config.jobs.values()}
    width = max((len(job_id) for job_id in ids.values()), default=0)
    jobs = {job.id: job for job in config.make_scheduler().jobs()}
    triggers = {
        spec.id: printable(
            jobs[spec.id].describe_trigger()
            + (f" ({spec.timezone})" if spec.timezone else "")
            + (" [paused]" if spec.paused else "")
        )
        for spec in config.jobs.values()
    }
    trig = max((len(text) for text in triggers.values()), default=0)
    for spec in config.jobs.values():
        target = printable(spec.target_text)
        print(f"  {ids[spec.id]:<{width}}  {triggers[spec.id]:<{trig}}  {target}")
    return 0


def history(args: argparse.Namespace) -> int:
    from .store import StoreError, UnusableStatePath

    config = _load_reporting(args.file)
    if config is None:
        return 2
    if args.limit < 1:
        print("jobtui history: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        runs = _read_history(config, args.job, args.limit)
    except (UnusableStatePath, StoreError) as exc:
        print(f"jobtui history: {printable_text(str(exc))}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        print(f"no runs recorded in {printable(config.state_url or str(config.state_path))}")
        return 0
    # The store keeps what the job said; what is printed shows its control characters as escapes.
    ids = [printable(r["job_id"]) for r in runs]
    width = max(len(job_id) for job_id in ids)
    print(f"{'JOB':<{width}}  {'SCHEDULED FOR':<25}  {'OUTCOME':<10}  {'ATT':>3}  DETAIL")
    for job_id, run in zip(ids, runs, strict=True):
        detail = run["reason"] or (
            f"{run['error_type']}: {run['error_message']}" if run["error_type"] else ""
        )
        if run["manual"]:
            detail = f"(manual) {detail}".strip()
        if run.get("host"):  # a database several hosts share: which one ran it
            detail = f"[{run['host']}] {detail}".strip()
        outcome = printable(run["outcome"] or "unfinished")  # running, or abandoned at restart
        when = printable(run["scheduled_for"][:19]) + "Z"  # the file may not be jobtui's own
        print(
            f"{job_id:<{width}}  {when:<25}  {outcome:<10}  {run['attempt']:>3}  "
            f"{printable(detail.splitlines()[0]) if detail else ''}"
        )
    return 0


def _read_history(config: Config, job: str | None, limit: int) -> list[dict[str, Any]]:
    from .store import read_runs

    if config.state_url is None:
        return read_runs(config.state_path, job=job, limit=limit)
    from .store.pgstore import read_runs as read_shared_runs

    return read_shared_runs(config.state_url, job=job, limit=limit)


def _read_context(config: Config, job: str) -> dict[str, Any]:
    from .store import read_context

    if config.state_url is None:
        return read_context(config.state_path, job)
    from .store.pgstore import read_context as read_shared_context

    return read_shared_context(config.state_url, job)


def why(args: argparse.Namespace) -> int:
    from .control.why import RECENT, JobFacts, explain
    from .store import StoreError, UnusableStatePath

    config = _load_reporting(args.file)
    if config is None:
        return 2
    if args.job not in config.jobs:
        known = ", ".join(sorted(config.jobs)) or "none"
        print(
            f'jobtui why: no job "{printable(args.job)}" in {printable(str(args.file))} '
            f"(jobs: {printable(known)})",
            file=sys.stderr,
        )
        return 2
    scheduler = config.make_scheduler()
    try:
        context = _read_context(config, args.job)
        runs = _read_history(config, args.job, RECENT * 4)
    except (UnusableStatePath, StoreError) as exc:
        print(f"jobtui why: {printable_text(str(exc))}", file=sys.stderr)
        return 1
    facts = JobFacts.of(scheduler.get(args.job), kept=context["job"])
    now = datetime.now(UTC)
    # A running jobtui keeps its plan in the store (an `every` grid, a returned time); this
    # process's fresh scheduler would only know the trigger.
    planned = (context["job"] or {}).get("next_fire")
    times = scheduler.next_times(args.job, 1, after=now)
    next_ts = times[0].timestamp() if times else None
    if planned is not None and planned > now.timestamp():
        next_ts = planned
    answer = explain(
        facts,
        runs,
        context,
        now=now.timestamp(),
        next_ts=next_ts,
    )
    print(json.dumps(answer.to_dict(), indent=2) if args.json else printable_text(answer.text()))
    return 0


def list_jobs(args: argparse.Namespace) -> int:
    config = _load_reporting(args.file)
    if config is None:
        return 2
    if args.next < 1:
        print("jobtui list: --next must be at least 1", file=sys.stderr)
        return 2
    start = None
    if args.start:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            print(
                f'jobtui list: cannot read --from "{args.start}": use ISO 8601, such as '
                "2026-10-24T12:00 or 2026-10-24T12:00+02:00",
                file=sys.stderr,
            )
            return 2
        if start.tzinfo is None:
            start = start.replace(tzinfo=config.timezone)
    scheduler = config.make_scheduler()
    after = start or datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for job in scheduler.jobs():
        times = [] if job.paused else scheduler.next_times(job.id, args.next, after=after)
        rows.append(
            {
                "id": job.id,
                "trigger": job.describe_trigger(),
                "timezone": zone_name(job.zone),
                "paused": job.paused,
                "next": [t.isoformat(timespec="seconds") for t in times],
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cells = [(printable(r["id"]), printable(r["trigger"]), printable(r["timezone"])) for r in rows]
    width = max((len(job_id) for job_id, _, _ in cells), default=2)
    trig = max((len(trigger) for _, trigger, _ in cells), default=7)
    print(f"{'ID':<{width}}  {'TRIGGER':<{trig}}  {'NEXT':<25}  TIMEZONE")
    for row, (job_id, trigger, zone) in zip(rows, cells, strict=True):
        shown: list[str] = row["next"] or (["(paused)"] if row["paused"] else ["(never)"])
        print(f"{job_id:<{width}}  {trigger:<{trig}}  {shown[0]:<25}  {zone}")
        for more in shown[1:]:
            print(f"{'':<{width}}  {'':<{trig}}  {more}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
