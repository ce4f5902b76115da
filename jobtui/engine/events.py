"""What the scheduler tells its subscribers (the console, the store, the headless log).

Events are delivered on the event loop, in order, as they happen; subscribers never need to poll
the jobs. A subscriber is either a plain callback (called synchronously: keep it quick) or an
async iterator from `EventBroker.stream()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from typing import TypeVar, cast

from .run import Run

log = logging.getLogger("jobtui.engine")


AnyEvent = TypeVar("AnyEvent", bound="Event")


def _set_by_slot(cls: type[AnyEvent]) -> type[AnyEvent]:
    """Give a frozen event an __init__ that stores each field through its slot's descriptor.
    The one dataclass writes calls object.__setattr__ for each field (how a frozen dataclass
    gets past its own __setattr__): ~0.3 us an event more, and every run publishes two or
    three (bench/instructions.py). Same signature, same event; still frozen
    (tests/test_events_init.py)."""
    # What this __init__ does not do: a new field of that kind must fail here, not quietly.
    assert "__post_init__" not in cls.__dict__, f"{cls.__name__}: __post_init__ is not run"
    names, params, env = [], [], {}
    for f in fields(cls):  # type: ignore[arg-type]
        assert f.init and f.default_factory is MISSING, f"{cls.__name__}.{f.name}: unsupported"
        env[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            env[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        names.append(f.name)
    body = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    exec(f"def __init__(self, {', '.join(params)}):\n{body}", env)  # the fields, nothing else
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


@dataclass(frozen=True, slots=True)
class Event:
    time: float  # wall clock, seconds since the epoch

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.time, UTC)


@dataclass(frozen=True, slots=True)
class SchedulerStarted(Event):
    pass


@dataclass(frozen=True, slots=True)
class SchedulerStopped(Event):
    pass


@dataclass(frozen=True, slots=True)
class JobAdded(Event):
    job_id: str


@dataclass(frozen=True, slots=True)
class JobModified(Event):
    job_id: str


@dataclass(frozen=True, slots=True)
class JobRemoved(Event):
    job_id: str


@_set_by_slot
@dataclass(frozen=True, slots=True)
class JobStateChanged(Event):
    """Paused, resumed, disabled, finished: ``state`` is the new JobState, ``reason`` why."""

    job_id: str
    state: str
    reason: str = ""


@_set_by_slot
@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """A run is about to start its first attempt (or a retry: see ``run.attempt``)."""

    run: Run


@_set_by_slot
@dataclass(frozen=True, slots=True)
class RunProgress(Event):
    """The run's progress, status message or output changed (coalesced per loop turn)."""

    run: Run


@_set_by_slot
@dataclass(frozen=True, slots=True)
class RunRetrying(Event):
    """An attempt failed; the next one starts at ``retry_at`` (wall clock)."""

    run: Run
    retry_at: float
    error: str


@_set_by_slot
@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    run: Run


@_set_by_slot
@dataclass(frozen=True, slots=True)
class OccurrenceSkipped(Event):
    """An occurrence did not run because of the overlap policy; ``run`` is its record."""

    run: Run


@_set_by_slot
@dataclass(frozen=True, slots=True)
class OccurrenceMissed(Event):
    """An occurrence did not run because of catch-up or misfire grace; ``run`` is its record."""

    run: Run


@dataclass(frozen=True, slots=True)
class ClockJumped(Event):
    """The wall clock stepped (``kind`` "forward"/"backward") or the machine slept ("suspend")."""

    kind: str
    seconds: float


Subscriber = Callable[[Event], object]


@dataclass(slots=True)
class _Stream:
    queue: deque[Event] = field(default_factory=deque)
    waiter: asyncio.Future[None] | None = None
    maxsize: int = 100_000
    dropped: int = 0


class Interest:
    """Whether anyone receives events of one type (so one is worth building). The broker
    keeps ``wanted`` current as subscribers come and go: a run's start and finish read one
    attribute instead of asking the broker every time."""

    __slots__ = ("event_type", "wanted")

    def __init__(self, event_type: type[Event]) -> None:
        self.event_type = event_type
        self.wanted = False


class EventBroker:
    """Fans events out to callbacks and streams, in the order they were published.

    A callback may ask for some event types only; events are routed by their type through a
    table built on first use, so publishing a type nobody asked for costs a dict lookup."""

    def __init__(self) -> None:
        # Every callback with the types it asked for (empty: all), in subscription order.
        self._callbacks: list[tuple[Subscriber, tuple[type[Event], ...]]] = []
        self._streams: list[_Stream] = []
        self._routes: dict[type[Event], tuple[Subscriber, ...]] = {}
        self._interests: dict[type[Event], Interest] = {}

    def wants(self, event_type: type[Event]) -> bool:
        """Whether anyone would receive an event of this type (so it is worth building)."""
        return bool(self._route(event_type)) or bool(self._streams)

    def interest(self, event_type: type[Event]) -> Interest:
        """``wants(event_type)`` as a flag kept current, for code that asks for every run."""
        interest = self._interests.get(event_type)
        if interest is None:
            interest = self._interests[event_type] = Interest(event_type)
            interest.wanted = self.wants(event_type)
        return interest

    def _subscribers_changed(self) -> None:
        self._routes.clear()
        for interest in self._interests.values():
            interest.wanted = self.wants(interest.event_type)

    def subscribe(
        self, callback: Callable[[AnyEvent], object], *types: type[AnyEvent]
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for every event, or only for events of ``types`` (and
        their subclasses); returns a function that unsubscribes. Typed so that a handler of
        one event type subscribes to that type: a handler of several subscribes once per type.
        """
        entry = (cast(Subscriber, callback), types)
        self._callbacks.append(entry)
        self._subscribers_changed()

        def unsubscribe() -> None:
            if entry in self._callbacks:
                self._callbacks.remove(entry)
                self._subscribers_changed()

        return unsubscribe

    def _route(self, event_type: type[Event]) -> tuple[Subscriber, ...]:
        route = self._routes.get(event_type)
        if route is None:
            route = tuple(
                callback
                for callback, types in self._callbacks
                if not types or issubclass(event_type, types)
            )
            self._routes[event_type] = route
        return route

    async def stream(self, maxsize: int = 100_000) -> AsyncIterator[Event]:
        """Iterate over events as they come. A reader that falls ``maxsize`` behind loses the
        oldest progress events first (never a start or a finish)."""
        stream = _Stream(maxsize=maxsize)
        self._streams.append(stream)
        self._subscribers_changed()
        try:
            while True:
                while stream.queue:
                    yield stream.queue.popleft()
                stream.waiter = asyncio.get_running_loop().create_future()
                await stream.waiter
        finally:
            self._streams.remove(stream)
            self._subscribers_changed()

    def publish(self, event: Event) -> None:
        for callback in self._route(type(event)):
            try:
                callback(event)
            except Exception:
                log.exception("an event subscriber failed on %r", event)
        for stream in self._streams:
            if len(stream.queue) >= stream.maxsize:
                self._make_room(stream)
            stream.queue.append(event)
            waiter = stream.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    @staticmethod
    def _make_room(stream: _Stream) -> None:
        for index, queued in enumerate(stream.queue):
            if isinstance(queued, RunProgress):
                del stream.queue[index]
                stream.dropped += 1
                return
        stream.queue.popleft()
        stream.dropped += 1
