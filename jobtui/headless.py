"""Headless mode: the scheduler without a UI, one log line per event, hot reload of jobs.toml,
and a graceful stop on SIGINT/SIGTERM. The mode for systemd units and containers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from datetime import UTC, datetime
from functools import singledispatch
from pathlib import Path
from typing import Any, TextIO

from .config import ConfigError, Problem, load
from .control.controller import LocalController
from .control.listen import ControlSocketError
from .control.server import ControlServer
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
from .engine.printable import printable, printable_text
from .engine.pyoutput import DescriptorCapture
from .host import Host, open_store
from .store import StoreError


class EventLog:
    """Writes one line per event: plain text, or one JSON object per line."""

    def __init__(self, out: TextIO, fmt: str = "text") -> None:
        self.out = out
        self.json = fmt == "json"
        self.broken = asyncio.Event()  # the reader of the log went away

    def __call__(self, event: Event) -> None:
        fields = describe(event)
        if fields is None:
            return
        name = str(fields.pop("event"))
        self.write(event=name, time=event.time, **fields)

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
        if self.broken.is_set():
            return
        try:
            self.out.write(line + "\n")
            self.out.flush()
        except BrokenPipeError:
            self.broken.set()


def _quote(value: object) -> str:
    """The value bare, or as a JSON string when it has spaces, quotes or characters a terminal
    would act on (a job's name or error can hold escape sequences): json.dumps escapes C0, DEL,
    C1 and everything else that is not ASCII."""
    text = str(value)
    if text == "" or printable(text) != text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text)
    return text


@singledispatch
def describe(event: Event) -> dict[str, object] | None:
    """The event's name and fields for a log line; None for events the log leaves out
    (progress is for the console)."""
    return None


@describe.register
def _(event: RunStarted) -> dict[str, object] | None:
    run = event.run
    return {
        "event": "run_started",
        "job": run.job_id,
        "run": run.run_id,
        "scheduled_for": run.scheduled_for.isoformat(),
        "manual": run.manual or None,
    }


@describe.register
def _(event: RunFinished) -> dict[str, object] | None:
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


@describe.register
def _(event: RunRetrying) -> dict[str, object] | None:
    return {
        "event": "run_retrying",
        "job": event.run.job_id,
        "run": event.run.run_id,
        "attempt": event.run.attempt + 1,
        "retry_at": datetime.fromtimestamp(event.retry_at, UTC).isoformat(),
        "error": event.error,
    }


_OCCURRENCE_EVENT_NAMES = {
    OccurrenceSkipped: "occurrence_skipped",
    OccurrenceMissed: "occurrence_missed",
}


@describe.register(OccurrenceSkipped)
@describe.register(OccurrenceMissed)
def _(event: OccurrenceSkipped | OccurrenceMissed) -> dict[str, object] | None:
    return {
        "event": _OCCURRENCE_EVENT_NAMES[type(event)],
        "job": event.run.job_id,
        "scheduled_for": event.run.scheduled_for.isoformat(),
        "reason": event.run.reason,
    }


@describe.register
def _(event: JobStateChanged) -> dict[str, object] | None:
    return {"event": "job_state", "job": event.job_id, "state": event.state, "reason": event.reason}


_JOB_EVENT_NAMES = {JobAdded: "job_added", JobModified: "job_modified", JobRemoved: "job_removed"}


@describe.register(JobAdded)
@describe.register(JobModified)
@describe.register(JobRemoved)
def _(event: JobAdded | JobModified | JobRemoved) -> dict[str, object] | None:
    return {"event": _JOB_EVENT_NAMES[type(event)], "job": event.job_id}


@describe.register
def _(event: ClockJumped) -> dict[str, object] | None:
    return {"event": "clock_jumped", "kind": event.kind, "seconds": round(event.seconds, 3)}


@describe.register
def _(event: SchedulerStarted) -> dict[str, object] | None:
    return {"event": "started"}


@describe.register
def _(event: SchedulerStopped) -> dict[str, object] | None:
    return {"event": "stopped"}


async def run_headless(
    path: Path, *, log_format: str, grace: float | None, out: TextIO = sys.stdout
) -> int:
    log = EventLog(out, log_format)
    try:
        config = load(path)
    except ConfigError as exc:
        print(printable_text(str(exc)), file=sys.stderr)
        return 2
    for warning in config.warnings:
        log.write(event="config_warning", problem=str(warning))
    if grace is None:  # --grace not given: [scheduler] stop_grace (default 30 s)
        grace = config.stop_grace
    try:
        store = open_store(config)
    except StoreError as exc:
        print(f"jobtui: {printable_text(str(exc))}", file=sys.stderr)
        return 1

    def abandoned(found: list[dict[str, Any]]) -> None:
        for run in found:
            log.write(
                event="run_abandoned",
                job=run["job_id"],
                run=run["run_id"],
                killed=run["killed"] or None,
                host=run.get("host"),  # a shared state's: the host that ran it
                reason=run["reason"],
            )

    abandoned(store.abandoned)
    host = Host(config, store=store, stop_grace=grace, tune_runtime=True)
    host.abandoned.append(abandoned)  # another host sharing the state died meanwhile
    store.on_status = lambda status: log.write(event="store", status=status or "writing again")
    host.scheduler.subscribe(log)
    host.reloaded.append(lambda new: log.write(event="reloaded", jobs=len(new.jobs)))
    host.alerts.failed.append(
        lambda failure: log.write(
            event="hook_failed",
            job=failure.job_id,
            run=failure.run_id,
            hook=failure.hook,
            error=failure.message,
        )
    )

    def failed(problems: list[Problem]) -> None:
        for problem in problems:
            log.write(event="reload_failed", problem=str(problem))
        log.write(event="reload_failed", detail="the previous jobs keep running")

    host.reload_failed.append(failed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    capture = capture_job_output(log, out)
    watched = watch_for_a_gone_reader(loop, log)
    # Consoles and `jobtui status`/`run`/... reach the scheduler through the control socket.
    server = ControlServer(LocalController(host), host_kind="headless", log=log.write)
    try:
        await host.start()
        try:
            await server.start()
        except ControlSocketError as exc:  # the jobs matter more than the socket: run anyway
            log.write(event="control_unavailable", detail=str(exc))
        # With no one reading the log (`| head`, a closed pipe), jobtui stops as on SIGTERM,
        # as a tool killed by SIGPIPE would, and exits with that status.
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(log.broken.wait())]
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in pending:
            wait.cancel()
        log.write(event="stopping", grace=grace)
    finally:
        # The socket goes before the state's lock: a successor that can own the state must
        # never find this daemon's socket still answering.
        await server.close()
        await host.stop(grace)
        for sig in signals:
            loop.remove_signal_handler(sig)
        if watched is not None:
            loop.remove_reader(watched)
        if capture is not None:
            capture.stop()
    if log.broken.is_set():
        raise BrokenPipeError("the log's reader went away")
    return 0


def watch_for_a_gone_reader(loop: asyncio.AbstractEventLoop, log: EventLog) -> int | None:
    """A log piped into `head` must end jobtui when head exits, even if jobtui has nothing more
    to write for an hour: the write end of a pipe polls as an error once its reader closed."""
    try:
        fd = log.out.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
    except (OSError, ValueError, AttributeError):
        return None

    def gone() -> None:
        loop.remove_reader(fd)  # level-triggered: once is enough
        log.broken.set()

    loop.add_reader(fd, gone)
    return fd


def capture_job_output(log: EventLog, out: TextIO) -> DescriptorCapture | None:
    """When the log goes to descriptor 1, what Python jobs write there (os.system, C code)
    must not land between its lines: point 1 and 2 at pipes, and write the log to the real
    stdout. Output no single run can be credited with becomes an ``output`` log line."""
    try:
        if out.fileno() != 1:
            return None
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return None
    capture = DescriptorCapture(
        lambda stream, text: log.write(event="output", stream=stream, text=text)
    )
    log.out = capture.stdout
    return capture
