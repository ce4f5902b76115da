"""The Controller interface the console's screens use, and what crosses it: plain views of
jobs and runs, and small change notices.

The views are frozen dataclasses of plain values (no live Job or Run), so the same screens can
be fed by a scheduler in this process (``LocalController``) or from the other end of a socket
(``RemoteController``). Nothing here imports Textual or rich (a test keeps it so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol

from ..engine import JobState, Outcome
from .why import Why

LOG_LIMIT = 5000  # log lines per call: a screen shows no more, and the call stays cheap


# -- views ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunView:
    """One run as the screens show it. Times are wall-clock seconds since the epoch."""

    run_id: str
    job_id: str
    manual: bool
    attempt: int
    scheduled_ts: float
    started_ts: float | None
    finished_ts: float | None
    outcome: Outcome | None
    progress: float | None
    status_message: str
    error_type: str | None
    error_message: str | None
    error_line: str | None  # "Type: first line of the message", as notifications show it
    reason: str
    pid: int | None
    # Where it runs (ran) when hosts share the state: this host's name for its own runs, the
    # other host's for theirs. Empty when no other host can run the job (an SQLite state), and
    # from a daemon older than the field.
    host: str = ""

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish; None until it started or while it runs (use elapsed)."""
        if self.started_ts is None or self.finished_ts is None:
            return None
        return max(0.0, self.finished_ts - self.started_ts)

    def elapsed(self, now: float) -> float:
        """Seconds it ran (or has been running, at ``now``)."""
        if self.started_ts is None:
            return 0.0
        return max(0.0, (self.finished_ts or now) - self.started_ts)


@dataclass(frozen=True, slots=True)
class JobView:
    """One job as the screens show it."""

    id: str
    name: str
    description: str
    trigger: str  # in words: "every 10m", "at 02:30 every day"
    timezone: str
    target: str  # what it runs, in words
    options: tuple[tuple[str, str], ...]  # (name, value) of options that are not the default
    state: JobState
    paused: bool
    pause_reason: str
    disabled_reason: str
    next_fire: float | None  # as planned, even while paused (the table sorts by it)
    next_run_ts: float | None  # None when no run is planned (paused, disabled, finished)
    last_run: RunView | None
    running: tuple[RunView, ...]

    @property
    def current_run(self) -> RunView | None:
        """The newest running run, else the last finished one."""
        return self.running[-1] if self.running else self.last_run

    @property
    def next_run_time(self) -> datetime | None:
        return None if self.next_run_ts is None else datetime.fromtimestamp(self.next_run_ts, UTC)


@dataclass(frozen=True, slots=True)
class Summary:
    config_name: str
    jobs: int
    running: int
    failed_24h: int
    paused: int
    store_status: str  # empty while the store is healthy (or there is none)
    # Set when the scheduler runs in another process (a daemon this console is attached to):
    # its pid, since when this console follows it, and whether the link is down (the views
    # then show the last picture received).
    daemon_pid: int | None = None
    attached_since: float | None = None
    disconnected: bool = False
    # When hosts share the state: this host's name (empty otherwise: no Host column), and how
    # many of ``running`` run on other hosts.
    host: str = ""
    running_elsewhere: int = 0


# -- change notices -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JobsChanged:
    """These jobs' views changed in a way worth redrawing now (not merely progress)."""

    job_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunFailed:
    job_id: str
    message: str  # "Type: first line", or the outcome ("timed_out")


@dataclass(frozen=True, slots=True)
class HookFailed:
    job_id: str
    message: str  # which hook (secrets masked) and how it failed, after its retries


@dataclass(frozen=True, slots=True)
class ReloadFinished:
    ok: bool
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ActionFailed:
    """An action could not be carried out where the scheduler runs (a daemon refused it or
    could not be reached); in-process actions raise instead."""

    message: str


Notice = JobsChanged | RunFailed | HookFailed | ReloadFinished | ActionFailed


class Controller(Protocol):
    """Everything the console asks of jobtui. Reads are cheap and never block, except
    ``history`` (call it from a thread worker)."""

    @property
    def config_path(self) -> Path: ...
    @property
    def timezone(self) -> tzinfo: ...
    @property
    def reload_problems(self) -> tuple[str, ...]: ...

    def now(self) -> float: ...
    def jobs(self) -> list[JobView]: ...
    def job(self, job_id: str) -> JobView | None: ...
    def next_times(self, job_id: str, n: int = 5) -> list[datetime]: ...
    def history(self, job_id: str, limit: int = 100) -> list[dict[str, Any]]: ...
    def log(
        self, job_id: str, run_id: str, start: int = 0, limit: int = LOG_LIMIT
    ) -> tuple[tuple[str, ...], int]: ...
    def summary(self) -> Summary: ...
    @property
    def host_name(self) -> str: ...  # summary().host, without the summary's pass over every job
    def why(self, job_id: str) -> Why | None: ...
    def config_line(self, job_id: str) -> int | None: ...

    def run_now(self, job_id: str) -> None: ...
    def pause(self, job_id: str) -> None: ...
    def resume(self, job_id: str) -> None: ...
    def cancel(self, job_id: str) -> None: ...
    def remove(self, job_id: str) -> None: ...
    async def reload(self) -> bool: ...

    def subscribe(self, callback: Callable[[Notice], None]) -> Callable[[], None]: ...
