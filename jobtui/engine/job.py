"""Jobs: what to run, when, under which policies, and the state the scheduler keeps for each."""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any

from .durations import parse_duration
from .errors import InvalidJobOption
from .plans import Plan
from .process_inputs import NUL_IN_COMMAND, check_environment
from .run import Run
from .triggers import Trigger, plan_for


class JobState(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    PAUSED = "paused"
    DISABLED = "disabled"  # too many consecutive failures; resume() re-enables it
    FINISHED = "finished"  # its trigger has no more occurrences, max_runs, or it said "never"


class Catchup(StrEnum):
    LATEST = "latest"
    ALL = "all"
    NONE = "none"


class OverlapPolicy(StrEnum):
    SKIP = "skip"
    QUEUE = "queue"
    REPLACE = "replace"
    PARALLEL = "parallel"


@dataclass(frozen=True, slots=True)
class Overlap:
    policy: OverlapPolicy
    limit: int = 1  # runs at once (parallel:N); 1 for the other policies

    @classmethod
    def parse(cls, value: object, job_id: str | None = None) -> Overlap:
        if isinstance(value, Overlap):
            return value
        text = str(value).strip().lower() if isinstance(value, str) else None
        if text in ("skip", "queue", "replace"):
            return cls(OverlapPolicy(text))
        if text and text.startswith("parallel"):
            _, _, count = text.partition(":")
            if count.strip().isdigit() and int(count) >= 1:
                return cls(OverlapPolicy.PARALLEL, int(count))
        raise InvalidJobOption(
            f'expected "skip", "queue", "replace" or "parallel:N" (N at least 1), got {value!r}',
            key="overlap",
            job_id=job_id,
        )

    def __str__(self) -> str:
        if self.policy is OverlapPolicy.PARALLEL:
            return f"parallel:{self.limit}"
        return self.policy.value


def _seconds(value: object, key: str, job_id: str | None, *, allow_zero: bool = False) -> float:
    return parse_duration(value, key=key, job_id=job_id, allow_zero=allow_zero).total_seconds()


def _count(value: object, key: str, job_id: str | None, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidJobOption(
            f"expected a whole number of at least {minimum}, got {value!r}", key=key, job_id=job_id
        )
    return value


def check_max_concurrency(value: object) -> int | None:
    """The scheduler-wide limit on runs at once: None (no limit) or a whole number >= 1."""
    return None if value is None else _count(value, "max_concurrency", None, minimum=1)


def _flag(value: object, key: str, job_id: str | None) -> bool:
    if not isinstance(value, bool):
        raise InvalidJobOption(f"expected true or false, got {value!r}", key=key, job_id=job_id)
    return value


def _retry_filter(value: object, key: str, job_id: str | None) -> tuple[type | str | int, ...]:
    items = value if isinstance(value, list | tuple | set | frozenset) else (value,)
    result: list[type | str | int] = []
    for item in items:
        is_exception = isinstance(item, type) and issubclass(item, BaseException)
        if is_exception or (isinstance(item, int) and not isinstance(item, bool)):
            result.append(item)
        elif isinstance(item, str) and item.strip():
            result.append(item.strip())
        else:
            raise InvalidJobOption(
                f"expected exception types (or their names) and command exit codes, got {item!r}",
                key=key,
                job_id=job_id,
            )
    return tuple(result)


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Every policy a job can set, with its default. Durations are in seconds."""

    name: str = ""
    description: str = ""
    start: float | None = None  # wall clock bounds, seconds since the epoch
    end: float | None = None
    jitter: float = 0.0
    run_immediately: bool = False
    soft_start: float = 0.0  # window over which jobs due at start-up are spread
    timeout: float | None = None
    kill_grace: float = 10.0
    retries: int = 0
    retry_backoff: float = 1.0
    retry_max: float = 300.0
    retry_on: tuple[type | str | int, ...] = ()
    no_retry_on: tuple[type | str | int, ...] = ()
    max_failures: int | None = None
    max_runs: int | None = None
    overlap: Overlap = Overlap(OverlapPolicy.SKIP)
    catchup: Catchup = Catchup.LATEST
    misfire_grace: float | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] | None = None
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    run_mode: str | None = None  # None: the kind of function decides (see processes.py)

    def with_changes(self, job_id: str | None, zone: tzinfo, **changes: Any) -> JobOptions:
        """A copy with ``changes`` validated; raises InvalidJobOption naming the bad key."""
        if not changes:
            return self
        clean: dict[str, Any] = {}
        for key, value in changes.items():
            parse = _PARSERS.get(key)
            if parse is None:
                raise InvalidJobOption(
                    f"unknown option; accepted: {', '.join(sorted(_PARSERS))}",
                    key=key,
                    job_id=job_id,
                )
            clean[key] = parse(value, job_id, zone)
        result = replace(self, **clean)
        if result.start is not None and result.end is not None and result.end <= result.start:
            raise InvalidJobOption("end must be later than start", key="end", job_id=job_id)
        if result.retry_max < result.retry_backoff:
            raise InvalidJobOption(
                "retry_max must be at least retry_backoff", key="retry_max", job_id=job_id
            )
        return result


def _moment(value: object, job_id: str | None, zone: tzinfo, key: str) -> float | None:
    from .triggers import to_timestamp

    return None if value is None else to_timestamp(value, zone, key=key, job_id=job_id)


def _optional_seconds(key: str) -> Callable[[object, str | None, tzinfo], float | None]:
    return lambda v, j, z: None if v is None else _seconds(v, key, j)


def _optional_count(key: str, minimum: int) -> Callable[[object, str | None, tzinfo], int | None]:
    return lambda v, j, z: None if v is None else _count(v, key, j, minimum=minimum)


def _text(key: str) -> Callable[[object, str | None, tzinfo], str]:
    def parse(value: object, job_id: str | None, zone: tzinfo) -> str:
        if not isinstance(value, str):
            raise InvalidJobOption(f"expected text, got {value!r}", key=key, job_id=job_id)
        return value

    return parse


def _soft_start(value: object, job_id: str | None, zone: tzinfo) -> float:
    if value is True:
        return 30.0
    if value is False or value is None or value == 0:
        return 0.0
    return _seconds(value, "soft_start", job_id)


def _catchup(value: object, job_id: str | None, zone: tzinfo) -> Catchup:
    try:
        return Catchup(value.lower() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidJobOption(
            f'expected "latest", "all" or "none", got {value!r}', key="catchup", job_id=job_id
        ) from None


def _args(value: object, job_id: str | None, zone: tzinfo) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidJobOption(f"expected a list, got {value!r}", key="args", job_id=job_id)
    return tuple(value)


def _mapping(key: str, *, strings: bool) -> Callable[[object, str | None, tzinfo], Any]:
    def parse(value: object, job_id: str | None, zone: tzinfo) -> Mapping[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise InvalidJobOption(
                f"expected a table of names to values, got {value!r}", key=key, job_id=job_id
            )
        if strings:
            bad = [k for k, v in value.items() if not isinstance(v, str | int | float)]
            if bad:
                raise InvalidJobOption(
                    f"environment values must be text or numbers; {bad[0]!r} is not",
                    key=key,
                    job_id=job_id,
                )
            env = {k: str(v) for k, v in value.items()}
            check_environment(env, key, job_id)
            return env
        return dict(value)

    return parse


def _cwd(value: object, job_id: str | None, zone: tzinfo) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise InvalidJobOption(f"expected a folder path, got {value!r}", key="cwd", job_id=job_id)
    path = os.fspath(value)
    if "\0" in path:
        raise InvalidJobOption(
            f"{path!r} holds a NUL character, which no folder path can hold",
            key="cwd",
            job_id=job_id,
        )
    if not os.path.isdir(path):
        raise InvalidJobOption(
            f'folder "{path}" does not exist (or is not a folder)', key="cwd", job_id=job_id
        )
    return path


def _run_mode(value: object, job_id: str | None) -> str | None:
    if value in (None, "thread", "async", "process"):
        return value  # type: ignore[return-value]
    expected = f'expected "thread", "async" or "process", got {value!r}'
    raise InvalidJobOption(expected, key="run_mode", job_id=job_id)


_PARSERS: dict[str, Callable[[object, str | None, tzinfo], Any]] = {
    "name": _text("name"),
    "description": _text("description"),
    "start": lambda v, j, z: _moment(v, j, z, "start"),
    "end": lambda v, j, z: _moment(v, j, z, "end"),
    "jitter": lambda v, j, z: 0.0 if v is None else _seconds(v, "jitter", j, allow_zero=True),
    "run_immediately": lambda v, j, z: _flag(v, "run_immediately", j),
    "soft_start": _soft_start,
    "timeout": _optional_seconds("timeout"),
    "kill_grace": lambda v, j, z: _seconds(v, "kill_grace", j, allow_zero=True),
    "retries": lambda v, j, z: _count(v, "retries", j, minimum=0),
    "retry_backoff": lambda v, j, z: _seconds(v, "retry_backoff", j),
    "retry_max": lambda v, j, z: _seconds(v, "retry_max", j),
    "retry_on": lambda v, j, z: _retry_filter(v, "retry_on", j),
    "no_retry_on": lambda v, j, z: _retry_filter(v, "no_retry_on", j),
    "max_failures": _optional_count("max_failures", 1),
    "max_runs": _optional_count("max_runs", 1),
    "overlap": lambda v, j, z: Overlap.parse(v, j),
    "catchup": _catchup,
    "misfire_grace": lambda v, j, z: (
        None if v is None else _seconds(v, "misfire_grace", j, allow_zero=True)
    ),
    "args": _args,
    "kwargs": _mapping("kwargs", strings=False),
    "env": _mapping("env", strings=True),
    "cwd": _cwd,
    "run_mode": lambda v, j, z: _run_mode(v, j),
}
OPTION_NAMES = frozenset(_PARSERS)
DEFAULT_OPTIONS = JobOptions()
assert {f.name for f in fields(JobOptions)} == OPTION_NAMES


@dataclass(slots=True)
class JobSnapshot:
    """The part of a job's state that outlives the process (see Scheduler.restore). Read-only
    by convention, not frozen: a frozen dataclass sets each field through object.__setattr__,
    and with a state store one is made for every run (2 us of the loop's ~20 a run). The
    events' way round that (events._set_by_slot) costs 540 ns for these ten fields against
    180 for plain slot stores."""

    paused: bool = False
    pause_reason: str = ""
    disabled_reason: str = ""
    consecutive_failures: int = 0
    run_count: int = 0
    last_fired: float | None = None
    grid_anchor: float | None = None
    finished: bool = False
    catch_up: bool = True
    next_fire: float | None = None  # what the store shows; restore() plans afresh


class TargetKind(StrEnum):
    ASYNC = "async"  # a coroutine function: runs on the event loop
    SYNC = "sync"  # a plain function: runs in a worker thread, never on the loop
    COMMAND = "command"  # a shell command (str) or an argv list: runs as a subprocess


def classify_target(target: object, job_id: str | None) -> tuple[TargetKind, bool]:
    """What kind of job ``target`` is, and whether it takes a Run first."""
    if isinstance(target, str):
        if not target.strip():
            raise InvalidJobOption("the command is empty", key="command", job_id=job_id)
        if "\0" in target:
            raise InvalidJobOption(NUL_IN_COMMAND, key="command", job_id=job_id)
        return TargetKind.COMMAND, False
    if isinstance(target, Sequence) and not isinstance(target, bytes):
        if not target or not all(isinstance(part, str | os.PathLike) for part in target):
            raise InvalidJobOption(
                "a command list needs the program and its arguments as text, "
                'for example ["pg_dump", "-f", "db.sql"]',
                key="command",
                job_id=job_id,
            )
        if any("\0" in os.fspath(part) for part in target):
            raise InvalidJobOption(NUL_IN_COMMAND, key="command", job_id=job_id)
        return TargetKind.COMMAND, False
    if not callable(target):
        raise InvalidJobOption(
            f"expected a function, a shell command or an argv list, got {target!r}",
            key="run",
            job_id=job_id,
        )
    return _classify_callable(target)


@functools.lru_cache(maxsize=4096)
def _classify_callable(target: Callable[..., Any]) -> tuple[TargetKind, bool]:
    kind = TargetKind.ASYNC if is_async_callable(target) else TargetKind.SYNC
    return kind, _takes_run(target)


def is_async_callable(target: object) -> bool:
    """Whether calling ``target`` gives a coroutine: an async def, a partial of one, or an
    object with an async ``__call__``."""
    func = target
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _takes_run(target: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return False
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return False
    annotation = params[0].annotation
    if annotation is Run or annotation == "Run" or getattr(annotation, "__name__", "") == "Run":
        return True
    return annotation is inspect.Parameter.empty and params[0].name == "run"


class Job:
    """A scheduled job and its live state. Read it freely; change it through the Scheduler."""

    __slots__ = (
        "_backlog",
        "_heap_version",
        "_pending",
        "_retry_waits",
        "_soft_delay",
        "_threads_alive",
        "active",
        "consecutive_failures",
        "disabled_reason",
        "finish_reason",
        "finished",
        "id",
        "kind",
        "last_fired",
        "last_run",
        "next_fire",
        "options",
        "pause_reason",
        "paused",
        "plan",
        "run_count",
        "takes_run",
        "target",
        "trigger",
        "zone",
    )

    def __init__(
        self,
        job_id: str,
        target: Any,
        kind: TargetKind,
        takes_run: bool,
        trigger: Trigger | None,
        options: JobOptions,
        zone: tzinfo,
    ) -> None:
        self.id = job_id
        self.target = target
        self.kind = kind
        self.takes_run = takes_run
        self.trigger = trigger
        self.options = options
        self.zone = zone
        self.paused = False
        self.pause_reason = ""
        self.disabled_reason = ""
        self.finished = False
        self.finish_reason = ""
        self.consecutive_failures = 0
        self.run_count = 0  # scheduled runs started (max_runs counts these)
        self.last_fired: float | None = None  # newest occurrence handled (run, skipped, missed)
        self.next_fire: float | None = None
        self.last_run: Run | None = None
        self.active: list[Run] = []
        self._pending: float | None = None  # queued occurrence (overlap="queue"/"replace")
        self._backlog: deque[float] | None = None  # catchup="all" occurrences waiting their turn
        self.plan: Plan = plan_for(trigger)  # where its occurrences fall: its schedule state
        self._heap_version = 0
        self._threads_alive = 0
        self._soft_delay = 0.0
        self._retry_waits: dict[str, asyncio.Future[None]] | None = None

    @property
    def name(self) -> str:
        return self.options.name or self.id

    @property
    def state(self) -> JobState:
        if self.active:
            if all(run.run_id in (self._retry_waits or ()) for run in self.active):
                return JobState.RETRYING
            return JobState.RUNNING
        if self.disabled_reason:
            return JobState.DISABLED
        if self.paused:
            return JobState.PAUSED
        if self.finished:
            return JobState.FINISHED
        return JobState.SCHEDULED

    @property
    def next_run_time(self) -> datetime | None:
        """When the next occurrence falls (UTC), or None when none is planned."""
        if self.next_fire is None or self.paused or self.disabled_reason or self.finished:
            return None
        return datetime.fromtimestamp(self.next_fire, UTC)

    @property
    def last_fired_at(self) -> datetime | None:
        return None if self.last_fired is None else datetime.fromtimestamp(self.last_fired, UTC)

    @property
    def grid_anchor(self) -> float | None:
        """Where an ``every`` job's grid is anchored (wall clock), once it is planned."""
        return self.plan.grid_anchor

    def snapshot(self) -> JobSnapshot:
        # By position, in JobSnapshot's field order: with a store, one is made every run, and
        # a call with keywords builds a dict for __init__.
        return JobSnapshot(
            self.paused,
            self.pause_reason,
            self.disabled_reason,
            self.consecutive_failures,
            self.run_count,
            self.last_fired,
            self.plan.grid_anchor,
            self.finished,
            True,  # catch_up, the default: only a snapshot loaded from a store says otherwise
            self.next_fire,
        )

    def describe_trigger(self) -> str:
        return self.trigger.describe(self.zone) if self.trigger is not None else "on demand"

    def __repr__(self) -> str:
        return f"<Job {self.id!r} {self.describe_trigger()} {self.state.value}>"
