"""The control socket's protocol: what a running jobtui (a daemon, or a console that hosts the
scheduler) and its clients (an attached console, the `jobtui status`/`run`/`pause`... verbs)
say to each other.

Transport: one Unix socket per state file (see paths.py), newline-delimited JSON, UTF-8. Every
message is one JSON object on one line with a ``"type"`` field. A client's line may be at most
``MAX_REQUEST_LINE`` bytes (1 MiB); the server's lines may be longer (a snapshot of many jobs),
up to ``MAX_SERVER_LINE``. Unknown fields are ignored by both sides, so a newer peer may add
fields without a version change; ``PROTOCOL_VERSION`` changes when a message changes meaning.

Server → client, once, on connect::

    {"type": "hello", "protocol": 1, "pid": 4242, "started_at": 1760000000.0,
     "config_path": "/srv/jobs.toml", "state_path": "/srv/.jobtui/state.db",
     "version": "0.1.0", "host": "headless"}          # or "console"

A peer whose credentials are refused gets, instead of a hello, one error reply with id null and
code ``"refused"``, then the server closes.

Client → server, requests (``id`` is the client's, echoed in the reply; ``params`` an object)::

    {"type": "request", "id": 7, "method": "pause", "params": {"job_id": "backup"}}

Server → client, the reply to each request (exactly one of ``result`` and ``error``)::

    {"type": "reply", "id": 7, "result": null}
    {"type": "reply", "id": 7, "error": {"code": "unknown_job", "message": "no job \"bakup\""}}

Error codes: ``parse_error`` (not JSON, not UTF-8), ``invalid_request`` (not a request object),
``line_too_long`` (the connection is closed after it), ``unknown_method``, ``invalid_params``
(missing or mistyped parameters; the message names the parameter), ``unknown_job``,
``unknown_run``, ``not_running`` (the scheduler is stopping), ``failed`` (the action itself
failed, say jobs.toml could not be edited), ``refused`` (not the daemon's user).

Methods (``METHODS`` below, params → result), mirroring the Controller interface:

    watch       {}                                   → null, then a snapshot and events follow
    jobs        {}                                   → [JobView, ...] in the table's order
    job         {job_id}                             → JobView | null
    next_times  {job_id, n=5}                        → ["2026-10-24T12:00:00+00:00", ...]
    history     {job_id, limit=100}                  → [run record, ...] newest first
    log         {job_id, run_id, start=0, limit=1000}→ [[line, ...], next_start]
    summary     {}                                   → Summary
    config_line {job_id}                             → int | null
    why         {job_id}                             → Why (as ``jobtui why --json``) | null
    run_now     {job_id, follow=false}               → run_id (str); follow: as ``follow``
                                                       from line 0, with no race on the id
    pause / resume / cancel / remove {job_id}        → null
    reload      {}                                   → bool (false: problems, the old jobs run)
    follow      {job_id, run_id, start=0}            → null, then "log" events for that run
    unfollow    {job_id, run_id}                     → null

Pushed events: only after ``watch``. First a snapshot, then numbered events; ``seq`` rises by
one per broadcast event, and a snapshot carries the ``seq`` of the last event it includes::

    {"type": "snapshot", "seq": 41, "jobs": [JobView, ...], "summary": Summary,
     "config": {"path": ..., "name": ..., "state_path": ..., "timezone": "Europe/Paris"},
     "reload_problems": ["jobs.toml:3:1: ..."]}
    {"type": "jobs", "seq": 42, "views": [JobView, ...], "removed": ["old"], "order": null}
    {"type": "progress", "seq": 43, "runs": [{"job_id": "backup", "run_id": "...",
                                              "progress": 0.4, "status_message": "copying"}]}
    {"type": "summary", "seq": 44, "summary": Summary}
    {"type": "run_failed", "seq": 45, "job_id": "backup", "message": "CalledProcessError: ..."}
    {"type": "hook_failed", "seq": 45, "job_id": "backup", "message": "webhook https://...: ..."}
    {"type": "reload_finished", "seq": 46, "ok": false, "problems": ["..."]}
    {"type": "log", "job_id": "backup", "run_id": "...", "start": 120,
     "lines": ["...", ...], "next": 130, "done": false}
    {"type": "log", ..., "done": true, "outcome": "failed", "exit_code": 3, "error": "..."}

``jobs`` carries the full views of the jobs that changed since the last event, ``removed`` the
ids of jobs that went, and ``order`` the whole id order when jobs came, went or moved (else
null). ``progress`` carries the latest progress and status message of each running run that
reported since the last flush (coalesced, at most every ``FLUSH_INTERVAL``); a client applies it
to the run in its view (``ProgressEvent.apply``). Views are re-sent whole at least once a second
while they change, and ``summary`` at most once a second or after an action or a notice.
A ``jobs`` event is also what the Controller's JobsChanged notice becomes on the client.
``log`` events are per client (no ``seq``): the run's lines numbered from its first line ever
(``start`` .. ``next``), sent only while the client follows the run; ``done`` is true on the
last one, once the run finished and its output was sent, with the run's outcome, a command's
exit code and the error line. A client that falls behind (its send
queue passed a bound) is sent a fresh snapshot instead of the events it missed; a client that
reads nothing for ``STALL_TIMEOUT`` seconds is dropped.

The views (JobView, RunView, Summary) are the controller's frozen dataclasses, encoded field by
field; enums (state, outcome) as their string values; times as seconds since the epoch.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import msgspec

from .controller import HookFailed, JobView, ReloadFinished, RunFailed, Summary

PROTOCOL_VERSION = 1
MAX_REQUEST_LINE = 1024 * 1024  # a request longer than this closes the connection
MAX_SERVER_LINE = 256 * 1024 * 1024  # a snapshot of 50,000 jobs is about 30 MB
FLUSH_INTERVAL = 0.1  # seconds between coalesced pushes of changed views
STALL_TIMEOUT = 30.0  # a client that reads nothing this long is dropped


# -- envelopes ------------------------------------------------------------------------------
class Hello(msgspec.Struct, tag="hello", tag_field="type", kw_only=True):
    protocol: int
    pid: int
    started_at: float
    config_path: str
    state_path: str
    version: str
    host: str  # "headless" or "console": who runs the scheduler


class Request(msgspec.Struct, tag="request", tag_field="type", kw_only=True):
    id: int | str | None = None
    method: str
    params: dict[str, Any] = {}


class ErrorInfo(msgspec.Struct, kw_only=True):
    code: str
    message: str


class Reply(msgspec.Struct, tag="reply", tag_field="type", kw_only=True, omit_defaults=True):
    id: int | str | None
    # Raw: the server encodes a result once; the client decodes it by the method's type.
    # UNSET (left out) in an error reply, so exactly one of result and error is present.
    result: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    error: ErrorInfo | None = None


class ConfigInfo(msgspec.Struct, kw_only=True):
    path: str
    name: str
    state_path: str
    timezone: str


class Snapshot(msgspec.Struct, tag="snapshot", tag_field="type", kw_only=True):
    seq: int
    jobs: list[JobView]
    summary: Summary
    config: ConfigInfo
    reload_problems: list[str]


class JobsEvent(msgspec.Struct, tag="jobs", tag_field="type", kw_only=True):
    seq: int
    views: list[JobView]
    removed: list[str] = []
    order: list[str] | None = None


class RunProgressItem(msgspec.Struct, kw_only=True):
    job_id: str
    run_id: str
    progress: float | None
    status_message: str


class ProgressEvent(msgspec.Struct, tag="progress", tag_field="type", kw_only=True):
    """Progress and status of running runs, coalesced: the latest of each run since the last
    flush. Cheaper than whole views for what moves ten times a second; the views themselves
    catch up at least once a second."""

    seq: int
    runs: list[RunProgressItem]

    def apply(self, views: dict[str, JobView]) -> set[str]:
        """Update the running runs in ``views`` (by job id) in place; the ids of the jobs
        whose view changed. A run no longer running is left alone."""
        changed = set()
        for item in self.runs:
            view = views.get(item.job_id)
            if view is None or not any(run.run_id == item.run_id for run in view.running):
                continue
            running = tuple(
                replace(run, progress=item.progress, status_message=item.status_message)
                if run.run_id == item.run_id
                else run
                for run in view.running
            )
            views[item.job_id] = replace(view, running=running)
            changed.add(item.job_id)
        return changed


class SummaryEvent(msgspec.Struct, tag="summary", tag_field="type", kw_only=True):
    seq: int
    summary: Summary


class RunFailedEvent(msgspec.Struct, tag="run_failed", tag_field="type", kw_only=True):
    seq: int
    job_id: str
    message: str

    def notice(self) -> RunFailed:
        return RunFailed(self.job_id, self.message)


class HookFailedEvent(msgspec.Struct, tag="hook_failed", tag_field="type", kw_only=True):
    seq: int
    job_id: str
    message: str  # which hook (secrets masked) and how it failed, after its retries

    def notice(self) -> HookFailed:
        return HookFailed(self.job_id, self.message)


class ReloadFinishedEvent(msgspec.Struct, tag="reload_finished", tag_field="type", kw_only=True):
    seq: int
    ok: bool
    problems: list[str]

    def notice(self) -> ReloadFinished:
        return ReloadFinished(self.ok, tuple(self.problems))


class LogEvent(msgspec.Struct, tag="log", tag_field="type", kw_only=True):
    job_id: str
    run_id: str
    start: int
    lines: list[str]
    next: int
    done: bool = False
    # On the last event (done): how the run ended, for `jobtui run --wait`'s exit status.
    outcome: str | None = None
    exit_code: int | None = None
    error: str | None = None  # "Type: first line of the message"


ServerMessage = (
    Hello | Reply | Snapshot | JobsEvent | ProgressEvent | SummaryEvent | RunFailedEvent
    | HookFailedEvent | ReloadFinishedEvent | LogEvent
)  # fmt: skip
NumberedEvent = (
    JobsEvent | ProgressEvent | SummaryEvent | RunFailedEvent | HookFailedEvent
    | ReloadFinishedEvent
)  # fmt: skip


# -- method parameters ----------------------------------------------------------------------
class NoParams(msgspec.Struct, forbid_unknown_fields=True):
    pass


class JobParams(msgspec.Struct, forbid_unknown_fields=True):
    job_id: str


class NextTimesParams(msgspec.Struct, forbid_unknown_fields=True):
    job_id: str
    n: int = 5


class HistoryParams(msgspec.Struct, forbid_unknown_fields=True):
    job_id: str
    limit: int = 100


class RunNowParams(msgspec.Struct, forbid_unknown_fields=True):
    job_id: str
    follow: bool = False  # stream the new run's output (as ``follow`` does) from its start


class LogParams(msgspec.Struct, forbid_unknown_fields=True):
    job_id: str
    run_id: str
    start: int = 0
    limit: int = 1000


class FollowParams(msgspec.Struct, forbid_unknown_fields=True):
    job_id: str
    run_id: str
    start: int = 0


class UnfollowParams(msgspec.Struct, forbid_unknown_fields=True):
    job_id: str
    run_id: str


# Each method's parameter struct and the type its result decodes to on the client.
METHODS: dict[str, tuple[type[msgspec.Struct], Any]] = {
    "watch": (NoParams, None),
    "jobs": (NoParams, list[JobView]),
    "job": (JobParams, JobView | None),
    "next_times": (NextTimesParams, list[datetime]),
    "history": (HistoryParams, list[dict[str, Any]]),
    "log": (LogParams, tuple[list[str], int]),
    "summary": (NoParams, Summary),
    "config_line": (JobParams, int | None),
    "why": (JobParams, dict[str, Any] | None),
    "run_now": (RunNowParams, str),
    "pause": (JobParams, None),
    "resume": (JobParams, None),
    "cancel": (JobParams, None),
    "remove": (JobParams, None),
    "reload": (NoParams, bool),
    "follow": (FollowParams, None),
    "unfollow": (UnfollowParams, None),
}
# Limits on numeric parameters, so a request cannot ask the daemon for unbounded work.
MAX_NEXT_TIMES = 1000
MAX_HISTORY = 10_000
MAX_LOG_LINES = 100_000


class ProtocolError(Exception):
    """A message that cannot be understood; ``code`` is the error code the reply carries."""

    def __init__(self, code: str, message: str, request_id: int | str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id  # echoed when the line was an object with a usable id


# -- encoding -------------------------------------------------------------------------------
_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(Request)
_server_decoder = msgspec.json.Decoder(ServerMessage)


def encode(message: msgspec.Struct) -> bytes:
    """One message as a line, newline included."""
    return _encoder.encode(message) + b"\n"


def reply(request_id: int | str | None, result: Any = None) -> bytes:
    return encode(Reply(id=request_id, result=encode_result(result)))


def error_reply(request_id: int | str | None, code: str, message: str) -> bytes:
    return encode(Reply(id=request_id, error=ErrorInfo(code=code, message=message)))


def encode_result(value: Any) -> msgspec.Raw:
    """A result encoded once (a reply may be shared or stored before it is sent)."""
    return msgspec.Raw(_encoder.encode(value))


def decode_request(line: bytes) -> Request:
    """A client's line as a Request; raises ProtocolError with the reply's code."""
    try:
        return _request_decoder.decode(line)
    except msgspec.DecodeError as exc:
        text = str(exc)
        try:
            loose = msgspec.json.decode(line)
        except msgspec.DecodeError:
            raise ProtocolError("parse_error", f"not a JSON line: {text}") from None
        request_id = loose.get("id") if isinstance(loose, dict) else None
        raise ProtocolError(
            "invalid_request",
            f'{text}; a request is {{"type": "request", "id": ..., "method": ..., "params": {{}}}}',
            request_id if isinstance(request_id, int | str) else None,
        ) from None


def decode_params(request: Request) -> msgspec.Struct:
    """The request's params as its method's struct; raises ProtocolError."""
    entry = METHODS.get(request.method)
    if entry is None:
        known = ", ".join(sorted(METHODS))
        raise ProtocolError(
            "unknown_method", f'no method "{request.method}" (known: {known})', request.id
        )
    params_type = entry[0]
    try:
        return msgspec.convert(request.params, params_type)
    except msgspec.ValidationError as exc:
        raise ProtocolError("invalid_params", f"{request.method}: {exc}", request.id) from None


def decode_server_message(line: bytes) -> ServerMessage:
    """A server's line; raises msgspec.DecodeError when it is not one of ours."""
    return _server_decoder.decode(line)


def decode_result(method: str, raw: msgspec.Raw | msgspec.UnsetType) -> Any:
    """A reply's result as the method's result type (JobView, Summary, datetimes...); raises
    msgspec.ValidationError when it is not of that type."""
    result_type = METHODS[method][1]
    if result_type is None or isinstance(raw, msgspec.UnsetType):
        return None
    return msgspec.json.decode(raw, type=result_type)
