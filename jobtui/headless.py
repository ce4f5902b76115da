"""Headless mode: the scheduler without a UI, one log line per event, hot reload of jobs.toml,
and a graceful stop on SIGINT/SIGTERM. The mode for systemd units and containers."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from .config import Config, ConfigError, Problem, Reloader, load
from .engine import (
    ClockJumped,
    Event,
    JobAdded,
    JobModified,
    JobRemoved,
    JobStateChanged,
    OccurrenceMissed,
    OccurrenceSkipped,
    RunFinished,
    RunRetrying,
    RunStarted,
    SchedulerStarted,
    SchedulerStopped,
)
from .store import Store, StoreError

RELOAD_POLL = 0.5  # seconds between looks at jobs.toml: an edit is picked up within a second


class EventLog:
    """Writes one line per event: plain text, or one JSON object per line."""

    def __init__(self, out: TextIO, fmt: str = "text") -> None:
        self.out = out
        self.json = fmt == "json"

    def __call__(self, event: Event) -> None:
        fields = describe(event)
        if fields is None:
            return
        self.write(**fields, time=event.time)

    def write(self, *, event: str, time: float | None = None, **fields: object) -> None:
        when = datetime.fromtimestamp(
            time if time is not None else datetime.now(UTC).timestamp(), UTC
        )
        stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if self.json:
            record = {
                "time": stamp,
                "event": event,
                **{k: v for k, v in fields.items() if v is not None},
            }
            line = json.dumps(record, default=str)
        else:
            parts = [f"{k}={_quote(v)}" for k, v in fields.items() if v not in (None, "")]
            line = f"{stamp} {event:<16} {' '.join(parts)}".rstrip()
        self.out.write(line + "\n")
        self.out.flush()


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


def describe(event: Event) -> dict[str, object] | None:
    """The event's name and fields for a log line."""
    if isinstance(event, RunStarted):
        run = event.run
        return {
            "event": "run_started",
            "job": run.job_id,
            "run": run.run_id,
            "scheduled_for": run.scheduled_for.isoformat(),
            "manual": run.manual or None,
        }
    if isinstance(event, RunFinished):
        run = event.run
        return {
            "event": "run_finished",
            "job": run.job_id,
            "run": run.run_id,
            "outcome": run.outcome.value if run.outcome else None,
            "duration": round(run.duration or 0.0, 3),
            "attempt": run.attempt,
            "exit_code": run.exit_code,
            "signal": run.signal,
            "error": run.error.first_line if run.error else None,
            "reason": run.reason or None,
        }
    if isinstance(event, RunRetrying):
        return {
            "event": "run_retrying",
            "job": event.run.job_id,
            "run": event.run.run_id,
            "attempt": event.run.attempt + 1,
            "retry_at": datetime.fromtimestamp(event.retry_at, UTC).isoformat(),
            "error": event.error,
        }
    if isinstance(event, OccurrenceSkipped | OccurrenceMissed):
        kind = "skipped" if isinstance(event, OccurrenceSkipped) else "missed"
        return {
            "event": f"occurrence_{kind}",
            "job": event.run.job_id,
            "scheduled_for": event.run.scheduled_for.isoformat(),
            "reason": event.run.reason,
        }
    if isinstance(event, JobStateChanged):
        return {
            "event": "job_state",
            "job": event.job_id,
            "state": event.state,
            "reason": event.reason,
        }
    if isinstance(event, JobAdded | JobModified | JobRemoved):
        name = {JobAdded: "job_added", JobModified: "job_modified", JobRemoved: "job_removed"}
        return {"event": name[type(event)], "job": event.job_id}
    if isinstance(event, ClockJumped):
        return {"event": "clock_jumped", "kind": event.kind, "seconds": round(event.seconds, 3)}
    if isinstance(event, SchedulerStarted):
        return {"event": "started"}
    if isinstance(event, SchedulerStopped):
        return {"event": "stopped"}
    return None  # progress is for the console, not the log


async def run_headless(
    path: Path, *, log_format: str, grace: float | None, out: TextIO = sys.stdout
) -> int:
    log = EventLog(out, log_format)
    try:
        config = load(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    for warning in config.warnings:
        log.write(event="config_warning", problem=str(warning))
    try:
        store = Store.open(
            config.state_path, keep_runs=config.keep_runs, keep_days=config.keep_days
        )
    except StoreError as exc:
        print(f"jobtui: {exc}", file=sys.stderr)
        return 1
    for run in store.abandoned:
        log.write(
            event="run_abandoned",
            job=run["job_id"],
            run=run["run_id"],
            killed=run["killed"] or None,
        )
    if grace is None:  # --grace not given: [scheduler] stop_grace (default 30 s)
        grace = config.stop_grace
    scheduler = config.make_scheduler(store=store, stop_grace=grace)
    store.restore(scheduler, {job_id: spec.fingerprint for job_id, spec in config.jobs.items()})
    store.on_status = lambda status: log.write(event="store", status=status or "writing again")
    scheduler.subscribe(log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handlers: list[Callable[[], None]] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
        handlers.append(lambda s=sig: loop.remove_signal_handler(s))

    def reloaded(new: Config) -> None:
        log.write(event="reloaded", jobs=len(new.jobs))

    def failed(problems: list[Problem]) -> None:
        for problem in problems:
            log.write(event="reload_failed", problem=str(problem))
        log.write(event="reload_failed", detail="the previous jobs keep running")

    reloader = Reloader(
        scheduler,
        config,
        on_reloaded=reloaded,
        on_failed=failed,
        on_job_changed=store.set_fingerprint,
    )
    store.start()
    await scheduler.start()
    watcher = asyncio.create_task(reloader.watch())
    try:
        await stop.wait()
        log.write(event="stopping", grace=grace)
    finally:
        watcher.cancel()
        await scheduler.stop(grace)
        await asyncio.to_thread(store.close)
        for remove in handlers:
            remove()
    return 0
