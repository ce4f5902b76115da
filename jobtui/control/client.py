"""The Controller over a control socket: what an attached console uses instead of a scheduler
of its own.

A background task on the caller's event loop keeps local copies of the daemon's views from
its snapshot and numbered events, and turns them into the same notices LocalController gives,
so the screens cannot tell where the scheduler runs. Reads never wait for the daemon: they
return the local copies (the next times and a run's log are fetched in the background and
arrive on a later redraw). ``history`` blocks and is called from a thread, as it is locally.

When the daemon goes (stopped, restarted, killed), the views keep the last picture, the
summary says the link is down, and the task retries with a growing pause until a daemon
answers again, then starts over from its fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import msgspec

from ..config.locator import Locator
from ..engine.errors import InvalidJobOption
from ..engine.timezones import resolve_timezone
from . import paths
from .controller import (
    LOG_LIMIT,
    ActionFailed,
    JobsChanged,
    JobView,
    Notice,
    Summary,
)
from .listeners import Listeners
from .protocol import (
    MAX_SERVER_LINE,
    PROTOCOL_VERSION,
    Hello,
    HookFailedEvent,
    JobsEvent,
    LogEvent,
    ProgressEvent,
    ReloadFinishedEvent,
    Reply,
    Request,
    RunFailedEvent,
    RunProgressItem,
    Snapshot,
    SummaryEvent,
    decode_result,
    decode_server_message,
    encode,
)
from .runlog import Follows
from .why import Why

RETRY_FIRST = 0.1  # seconds before the first reconnect; doubled after each failure
RETRY_MAX = 2.0  # a restarted daemon is picked up within this long
FIRST_PICTURE = 3.0  # how long start() waits for the first snapshot
REQUEST_TIMEOUT = 10.0
HELLO_TIMEOUT = 5.0
FOLLOW_LEASE = 2.0  # a run's log is followed until a screen did not ask for it this long


log = logging.getLogger(__name__)


class NotConnected(ConnectionError):
    """No daemon is connected now (it went, and the client is retrying)."""


class RequestFailed(Exception):
    """The daemon answered a request with an error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class RemoteController:
    """A Controller for the jobtui that answers on a control socket.

    ``sockets`` says where to look (asked again before each reconnect, since a restarted
    daemon may bind another candidate): by default the candidates of ``state_path``.
    """

    def __init__(
        self,
        config_path: Path,
        timezone: tzinfo,
        *,
        state_path: Path | None = None,
        sockets: Callable[[], list[Path]] | None = None,
        retry_max: float = RETRY_MAX,
        follow_lease: float = FOLLOW_LEASE,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if sockets is None:
            if state_path is None:
                raise ValueError("RemoteController needs a state_path or sockets")
            sockets = lambda: paths.existing(state_path)  # noqa: E731
        self._sockets = sockets
        self._config_path = config_path
        self._timezone = timezone
        self._retry_max = retry_max
        self._wall = wall  # the daemon runs on this machine: the same wall clock, by default
        self._listeners = Listeners()
        self._views: dict[str, JobView] = {}
        self._summary: Summary | None = None
        self._progress: dict[str, RunProgressItem] = {}  # by run id, the latest not yet applied
        self._problems: tuple[str, ...] = ()
        # job id: (its next_fire when asked, how many were asked, the answer)
        self._next_times: dict[str, tuple[float | None, int, list[datetime]]] = {}
        self._asking_next: set[str] = set()
        self._follows = Follows(follow_lease, self._tell, lambda: self._writer is not None)
        self.hello: Hello | None = None
        self.attached_since: float | None = None
        self.connected = asyncio.Event()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # fire-and-forget actions, kept alive

    # -- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background; wait (a little) for the first picture."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._keep_connected(), name="jobtui-attached")
        self._expiry = asyncio.create_task(self._expire_follows(), name="jobtui-follows")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), FIRST_PICTURE)

    async def close(self) -> None:
        """Let go of the daemon; it and its runs go on."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._expiry is not None:
            self._expiry.cancel()
        for task in tuple(self._tasks):
            task.cancel()

    async def _keep_connected(self) -> None:
        delay = RETRY_FIRST
        while True:
            try:
                await self._session()
                delay = RETRY_FIRST  # it was up: the next try comes soon
            except (OSError, EOFError, msgspec.DecodeError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, ValueError):  # fmt: skip
                pass
            except Exception:  # a bug in reading one message must not end reconnecting for good
                log.exception("the link to the running jobtui failed; connecting again")
            finally:
                self._lost()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)

    async def _session(self) -> None:
        reader = writer = None
        for path in self._sockets():
            try:
                reader, writer = await asyncio.open_unix_connection(
                    str(path), limit=MAX_SERVER_LINE
                )
                break
            except OSError:
                continue
        if reader is None or writer is None:
            raise ConnectionError("no daemon answers")
        try:
            # A live daemon greets at once; a process that took the socket and says nothing
            # must not hold the console in a half-open connection.
            first = await asyncio.wait_for(reader.readuntil(b"\n"), HELLO_TIMEOUT)
            hello = decode_server_message(first)
            # A refusal, or a daemon of another protocol (an upgrade half done): the link
            # stays down, and is tried again, as if nothing answered.
            if not isinstance(hello, Hello) or hello.protocol != PROTOCOL_VERSION:
                raise ConnectionError("the socket did not greet as this jobtui's daemon")
            if self.hello is None or hello.pid != self.hello.pid or not self.attached_since:
                self.attached_since = self._wall()
            self.hello = hello
            self._writer = writer
            self._tell("watch", {})
            while True:
                line = await reader.readuntil(b"\n")
                self._handle(decode_server_message(line))
        finally:
            self._writer = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _lost(self) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        for _method, future in self._pending.values():
            if not future.done():
                future.set_exception(NotConnected("the daemon went away"))
        self._pending.clear()
        self._asking_next.clear()
        self._follows.connection_lost()
        if was_connected:
            self._notify(JobsChanged(tuple(self._views)))  # the header says so at once

    # -- what the daemon sends --------------------------------------------------------------
    def _handle(self, message: object) -> None:
        # Numbered events need no check of their own here: a server that had to skip some
        # for this client (it fell behind) sends a fresh snapshot before the next one.
        if isinstance(message, Reply):
            self._on_reply(message)
        elif isinstance(message, Snapshot):
            self._on_snapshot(message)
        elif isinstance(message, JobsEvent):
            self._on_jobs(message)
        elif isinstance(message, ProgressEvent):
            # Kept, not applied: the tick reads the views two times a second, the progress
            # comes ten times, and applying copies views. No notice: the tick draws it.
            for item in message.runs:
                self._progress[item.run_id] = item
        elif isinstance(message, SummaryEvent):
            self._summary = message.summary
        elif isinstance(message, RunFailedEvent | HookFailedEvent):
            self._notify(message.notice())
        elif isinstance(message, ReloadFinishedEvent):
            self._problems = tuple(message.problems)
            self._notify(message.notice())
        elif isinstance(message, LogEvent):
            self._follows.take(message)

    def _on_reply(self, message: Reply) -> None:
        if not isinstance(message.id, int):
            return
        entry = self._pending.pop(message.id, None)
        if entry is None:
            return
        method, future = entry
        if future.done():
            return
        if message.error is not None:
            future.set_exception(RequestFailed(message.error.code, message.error.message))
            return
        try:
            future.set_result(decode_result(method, message.result))
        except msgspec.ValidationError as exc:
            future.set_exception(RequestFailed("invalid_result", str(exc)))

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        gone = set(self._views)
        self._views = {view.id: view for view in snapshot.jobs}
        self._summary = snapshot.summary
        self._problems = tuple(snapshot.reload_problems)
        self._config_path = Path(snapshot.config.path)
        with contextlib.suppress(InvalidJobOption):  # a zone this machine lacks: keep ours
            self._timezone = resolve_timezone(snapshot.config.timezone)
        self._next_times.clear()
        self._progress.clear()
        self.connected.set()
        self._notify(JobsChanged(tuple(gone | set(self._views))))

    def _on_jobs(self, event: JobsEvent) -> None:
        views = self._views
        changed = [job_id for job_id in event.removed if job_id in views]
        for job_id in event.removed:
            views.pop(job_id, None)
            self._next_times.pop(job_id, None)
        if self._progress and event.views:  # whole views are newer than what came before
            fresh = {view.id for view in event.views}
            self._progress = {k: v for k, v in self._progress.items() if v.job_id not in fresh}
        for view in event.views:
            old = views.get(view.id)
            views[view.id] = view
            if old is None or _redraw_worthy(old, view):
                changed.append(view.id)
        if event.order is not None:
            self._views = {job_id: views[job_id] for job_id in event.order if job_id in views}
            self._views.update({k: v for k, v in views.items() if k not in self._views})
        # Progress alone is drawn by the steady tick, as in-process; everything else now.
        if changed:
            self._notify(JobsChanged(tuple(changed)))

    # -- requests ---------------------------------------------------------------------------
    def _send(self, method: str, params: dict[str, Any]) -> asyncio.Future[Any]:
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        if self._writer is None:
            future.set_exception(NotConnected("not connected to the daemon"))
            return future
        request_id = next(self._ids)
        self._pending[request_id] = (method, future)
        self._writer.write(encode(Request(id=request_id, method=method, params=params)))
        return future

    def _tell(self, method: str, params: dict[str, Any]) -> None:
        """A request whose answer nobody waits for (watch, follow, unfollow): a refusal
        (the run is gone already) or a lost connection changes nothing."""
        self._send(method, params).add_done_callback(_ignore_outcome)

    async def request(self, method: str, **params: Any) -> Any:
        """Ask the daemon; raises NotConnected or RequestFailed."""
        return await asyncio.wait_for(self._send(method, params), REQUEST_TIMEOUT)

    def call(self, method: str, **params: Any) -> Any:
        """``request`` from another thread (a screen's thread worker), blocking."""
        if self._loop is None:
            raise NotConnected("not started")
        return asyncio.run_coroutine_threadsafe(self.request(method, **params), self._loop).result(
            REQUEST_TIMEOUT + 1
        )

    def _act(self, method: str, job_id: str, what: str) -> None:
        """An action: sent at once, answered later; a refusal comes back as a notice."""

        async def send() -> None:
            try:
                await self.request(method, job_id=job_id)
            except NotConnected:
                self._notify(ActionFailed(f"{what} {job_id}: the daemon is not connected"))
            except TimeoutError:
                self._notify(ActionFailed(f"{what} {job_id}: the daemon did not answer"))
            except RequestFailed as exc:
                self._notify(ActionFailed(f"{what} {job_id}: {exc}"))

        task = asyncio.ensure_future(send(), loop=self._loop)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- Controller: reads ------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self._config_path

    @property
    def timezone(self) -> tzinfo:
        return self._timezone

    @property
    def reload_problems(self) -> tuple[str, ...]:
        return self._problems

    def now(self) -> float:
        return self._wall()

    def jobs(self) -> list[JobView]:
        self._apply_progress()
        return list(self._views.values())

    def job(self, job_id: str) -> JobView | None:
        self._apply_progress()
        return self._views.get(job_id)

    def _apply_progress(self) -> None:
        if self._progress:
            items, self._progress = list(self._progress.values()), {}
            ProgressEvent(seq=0, runs=items).apply(self._views)

    def next_times(self, job_id: str, n: int = 5) -> list[datetime]:
        """What the daemon last said; asked again (in the background) when the job's next
        time moved. The screen redraws when the answer comes."""
        view = self._views.get(job_id)
        if view is None:
            return []
        known = self._next_times.get(job_id)
        if known is not None and known[0] == view.next_fire and known[1] >= n:
            return known[2][:n]
        if job_id not in self._asking_next and self.connected.is_set():
            self._asking_next.add(job_id)
            asked_for = view.next_fire

            async def ask() -> None:
                try:
                    times = await self.request("next_times", job_id=job_id, n=n)
                except (NotConnected, RequestFailed, TimeoutError):
                    return
                finally:
                    self._asking_next.discard(job_id)
                self._next_times[job_id] = (asked_for, n, times)
                self._notify(JobsChanged((job_id,)))

            task = asyncio.ensure_future(ask(), loop=self._loop)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return known[2][:n] if known is not None else []

    def history(self, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; blocking: call it from a thread worker. Empty while disconnected."""
        try:
            result: list[dict[str, Any]] = self.call("history", job_id=job_id, limit=limit)
        except (NotConnected, RequestFailed, TimeoutError):
            return []
        return result

    def why(self, job_id: str) -> Why | None:
        """As ``history``: blocking, from a thread worker. None for a job the daemon does not
        have; raises NotConnected while disconnected (the screen says so, not "removed")."""
        try:
            answer: dict[str, Any] | None = self.call("why", job_id=job_id)
        except RequestFailed as exc:
            if exc.code == "unknown_job":
                return None
            raise
        return None if answer is None else Why.from_dict(answer)

    def log(
        self, job_id: str, run_id: str, start: int = 0, limit: int = LOG_LIMIT
    ) -> tuple[tuple[str, ...], int]:
        """Up to ``limit`` of the run's lines received so far, from line ``start`` on (numbered
        from the run's first; a negative ``start`` counts back from the newest), and the
        ``start`` to ask for next. Asking follows the run: its lines stream in over this
        connection while a screen keeps asking, and stop when it no longer does (or asks for
        another run)."""
        return self._follows.ask(job_id, run_id).page(start, limit)

    async def _expire_follows(self) -> None:
        while True:
            await asyncio.sleep(self._follows.lease / 2)
            self._follows.expire()

    @property
    def host_name(self) -> str:
        return self._summary.host if self._summary is not None else ""

    def summary(self) -> Summary:
        base = self._summary or Summary(self._config_path.name, len(self._views), 0, 0, 0, "")
        return replace(
            base,
            config_name=self._config_path.name,
            daemon_pid=self.hello.pid if self.hello is not None else None,
            attached_since=self.attached_since,
            disconnected=not self.connected.is_set(),
        )

    def config_line(self, job_id: str) -> int | None:
        """The job's line in jobs.toml as the file reads now: the daemon reads the same file,
        and the editor opens this console's copy of it."""
        try:
            text = self._config_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        return Locator(text).table("jobs", job_id)[0]

    # -- Controller: actions ----------------------------------------------------------------
    def run_now(self, job_id: str) -> None:
        self._act("run_now", job_id, "run")

    def pause(self, job_id: str) -> None:
        self._act("pause", job_id, "pause")

    def resume(self, job_id: str) -> None:
        self._act("resume", job_id, "resume")

    def cancel(self, job_id: str) -> None:
        self._act("cancel", job_id, "cancel")

    def remove(self, job_id: str) -> None:
        self._act("remove", job_id, "remove")

    async def reload(self) -> bool:
        try:
            result: bool = await self.request("reload")
        except (NotConnected, TimeoutError):
            self._notify(ActionFailed("reload: the daemon is not connected"))
            return False
        except RequestFailed as exc:
            self._notify(ActionFailed(f"reload: {exc}"))
            return False
        return result

    def subscribe(self, callback: Callable[[Notice], None]) -> Callable[[], None]:
        return self._listeners.subscribe(callback)

    def _notify(self, notice: Notice) -> None:
        self._listeners.notify(notice)


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not report it as lost


# What a job's view shows besides its running runs' progress and status: compared as one tuple
# (building two copies of each view without the runs cost more than all the decoding).
_SHOWN = operator.attrgetter(*(f.name for f in fields(JobView) if f.name != "running"))


def _redraw_worthy(old: JobView, new: JobView) -> bool:
    """Whether a changed view is more than moving progress (which the steady tick draws)."""
    if len(old.running) != len(new.running) or any(
        a.run_id != b.run_id for a, b in zip(old.running, new.running, strict=True)
    ):
        return True
    return bool(_SHOWN(old) != _SHOWN(new))
