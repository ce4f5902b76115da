"""A run: one execution of a job for one occurrence, and what it reported while it ran."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import traceback as tb
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from .errors import RunNotSucceeded
from .output import LogLine, RunOutput

if TYPE_CHECKING:
    from .executors import Execution

__all__ = ["LogLine", "Outcome", "Run", "RunError", "RunOutput", "current_run"]


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # an occurrence came while the job was still running (overlap)
    MISSED = "missed"  # an occurrence fell outside the catch-up policy or misfire grace
    ABANDONED = "abandoned"  # the process died while it ran (filled in by the state store)


@dataclass(frozen=True, slots=True)
class RunError:
    """What went wrong: an exception's type, message and traceback, or a command's exit."""

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException, *, limit: int = 64_000) -> RunError:
        text = "".join(tb.format_exception(exc))
        if len(text) > limit:
            text = text[: limit // 4] + "\n[... traceback cut ...]\n" + text[-limit // 2 :]
        return cls(type(exc).__qualname__, str(exc), text)

    @property
    def first_line(self) -> str:
        line = self.message.strip().splitlines()[0] if self.message.strip() else ""
        return f"{self.type}: {line}" if line else self.type


_output_lock = threading.Lock()
_current_run: contextvars.ContextVar[Run | None] = contextvars.ContextVar(
    "jobtui_current_run", default=None
)


def current_run() -> Run | None:
    """The run the calling code belongs to, from inside a job body (async or thread)."""
    return _current_run.get()


class Run:
    """One execution of a job for one occurrence (``scheduled_for``), across its retries.

    A job body writes ``progress`` (0..1, or None for indeterminate) and ``status_message``, and
    calls ``log()``; the console and the store are told through the scheduler's events. It is
    safe to set these from a worker thread.
    """

    __slots__ = (
        "_cancel_with_waiter",
        "_done",
        "_exception",
        "_execution",
        "_finished_ts",
        "_notify",
        "_output",
        "_output_limits",
        "_progress",
        "_scheduled_ts",
        "_started_ts",
        "_status_message",
        "_value",
        "_wall",
        "attempt",
        "error",
        "exit_code",
        "job_id",
        "manual",
        "outcome",
        "pid",
        "reason",
        "run_id",
        "signal",
    )

    def __init__(
        self,
        job_id: str,
        run_id: str,
        scheduled_ts: float,
        # Not keyword-only: the runner passes these by position for every run, since calling a
        # class with keywords builds a dict for __init__ (about 1,800 instructions a run).
        manual: bool = False,
        wall: Callable[[], float] | None = None,
        output_limits: tuple[int, int] | None = None,
    ) -> None:
        self.job_id = job_id
        self.run_id = run_id
        self._scheduled_ts = scheduled_ts
        self.manual = manual
        self.attempt = 0
        self._started_ts: float | None = None
        self._finished_ts: float | None = None
        self._progress: float | None = None
        self._status_message: str = ""
        self.outcome: Outcome | None = None
        self.error: RunError | None = None
        self.exit_code: int | None = None  # a command's exit status
        self.signal: str | None = None  # the signal that ended a command ("SIGKILL")
        self.reason: str = ""  # why it was skipped, missed or cancelled
        self.pid: int | None = None  # a command's process (and process group) id
        self._output: RunOutput | None = None  # made on first use: most runs print nothing
        self._output_limits = output_limits
        self._wall = wall
        self._notify: Callable[[Run], None] | None = None
        self._value: object = None  # what the function returned
        self._exception: BaseException | None = None  # what it raised (the last attempt)
        self._done: asyncio.Future[None] | None = None  # made when someone awaits the run
        self._cancel_with_waiter: Callable[[], None] | None = None  # run_now(wait=True)
        self._execution: Execution | None = None  # the attempt under way (the runner's)

    @property
    def output(self) -> RunOutput:
        """What the run printed and logged (head and tail kept, the middle counted)."""
        output = self._output
        if output is None:
            with _output_lock:  # a thread job and the loop may ask for it at once
                output = self._output
                if output is None:
                    limits = self._output_limits
                    output = self._output = RunOutput(*limits) if limits else RunOutput()
        return output

    # -- times ----------------------------------------------------------------------------
    @property
    def scheduled_for(self) -> datetime:
        """The occurrence this run serves, in UTC (for a manual run: when it was asked for)."""
        return datetime.fromtimestamp(self._scheduled_ts, UTC)

    @property
    def started_at(self) -> datetime | None:
        ts = self._started_ts
        return None if ts is None else datetime.fromtimestamp(ts, UTC)

    @property
    def finished_at(self) -> datetime | None:
        ts = self._finished_ts
        return None if ts is None else datetime.fromtimestamp(ts, UTC)

    # The same moments as plain seconds since the epoch, for code that stores or compares them.
    @property
    def scheduled_ts(self) -> float:
        return self._scheduled_ts

    @property
    def started_ts(self) -> float | None:
        return self._started_ts

    @property
    def finished_ts(self) -> float | None:
        return self._finished_ts

    @property
    def has_output(self) -> bool:
        """Whether anything was printed or logged (without making an empty buffer)."""
        return self._output is not None

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (to now, while it runs)."""
        if self._started_ts is None:
            return None
        end = self._finished_ts
        if end is None:
            end = self._wall() if self._wall else datetime.now(UTC).timestamp()
        return max(0.0, end - self._started_ts)

    @property
    def is_finished(self) -> bool:
        return self.outcome is not None

    # -- what the body reports ------------------------------------------------------------
    @property
    def progress(self) -> float | None:
        return self._progress

    @progress.setter
    def progress(self, value: float | None) -> None:
        if value is not None:
            value = min(1.0, max(0.0, float(value)))
        if value != self._progress:
            self._progress = value
            self._changed()

    @property
    def status_message(self) -> str:
        return self._status_message

    @status_message.setter
    def status_message(self, value: object) -> None:
        text = "" if value is None else str(value)
        if text != self._status_message:
            self._status_message = text
            self._changed()

    def log(self, message: object) -> None:
        """Add a line to the run's captured output."""
        now = self._wall() if self._wall else datetime.now(UTC).timestamp()
        for line in str(message).splitlines() or [""]:
            self.output.append("log", line, now)
        self._changed()

    # -- awaiting it --------------------------------------------------------------------
    @property
    def result(self) -> object:
        """What the function returned. A failed run raises what the function raised (for a
        process-mode run: the same exception type when it could be rebuilt, else a
        RemoteError with the child's traceback); a run that timed out, was cancelled, or has
        not finished raises RunNotSucceeded."""
        if self.outcome is None:
            raise RunNotSucceeded(self.run_id, "has not finished", "await it first")
        if self._exception is not None and self.outcome is Outcome.FAILED:
            raise self._exception
        if self.outcome is not Outcome.SUCCEEDED:
            raise RunNotSucceeded(self.run_id, self.outcome.value, self.reason)
        return self._value

    def __await__(self) -> Generator[object, None, Run]:
        """``await run`` waits until it has finished and gives the run back."""
        if self.outcome is None:
            if self._done is None:
                self._done = asyncio.get_running_loop().create_future()
            try:
                # Shielded: one awaiter giving up must not end the wait of the others.
                yield from asyncio.shield(self._done).__await__()
            except asyncio.CancelledError:
                if self._cancel_with_waiter is not None and self.outcome is None:
                    self._cancel_with_waiter()
                raise
        return self

    def _finished(self) -> None:
        self._cancel_with_waiter = None
        done = self._done
        if done is not None and not done.done():
            done.set_result(None)

    def _changed(self) -> None:
        notify = self._notify
        if notify is not None:
            notify(self)

    def __repr__(self) -> str:
        state = self.outcome.value if self.outcome else ("running" if self._started_ts else "new")
        return (
            f"<Run {self.run_id} job={self.job_id!r} for={self.scheduled_for.isoformat()} "
            f"attempt={self.attempt} {state}>"
        )
