"""Hook delivery: commands, webhooks and healthcheck pings, fed by the scheduler's events.

The scheduler's loop only takes a snapshot of the occurrence and queues it: every delivery runs
in its own task, one job's deliveries in order (a healthcheck's /start before its success) and
at most ``concurrency`` at once. Each has its own timeout and a few attempts with backoff; one
that still fails is logged, kept in the store's notes and told to the listeners, and never
touches the run's outcome. The queue is bounded: past ``max_queued`` a delivery is dropped and
said so, rather than memory growing while an endpoint is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..config.hooks import JobHooks, mask_url
from ..engine import (
    OccurrenceMissed,
    OccurrenceSkipped,
    RunFinished,
    RunStarted,
    Scheduler,
)
from ..store import StateStore
from .occurrence import Occurrence

log = logging.getLogger("jobtui.alerts")
KILL_GRACE = 2.0  # a hook command that outlives its timeout gets this long after SIGTERM
OUTPUT_KEPT = 4000  # characters of a failing hook command's own output kept for the message


@dataclass(frozen=True, slots=True)
class HookFailure:
    """A hook that failed all its attempts; ``hook`` names it with secrets masked."""

    job_id: str
    run_id: str
    hook: str
    message: str
    at: float

    def __str__(self) -> str:
        return f"{self.hook} failed for {self.job_id}: {self.message}"


class HookError(Exception):
    """One attempt failed; the message says how (for the log, secrets masked)."""


@dataclass(slots=True)
class _Delivery:
    occurrence: Occurrence
    name: str  # "on_failure", "webhook https://host/***"
    send: Callable[[], Awaitable[None]]


class Alerts:
    def __init__(
        self,
        scheduler: Scheduler,
        hooks_for: Callable[[str], JobHooks | None],
        *,
        store: StateStore | None = None,
        cwd: Path | None = None,
        concurrency: int = 8,
        max_queued: int = 1000,
        attempts: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self.scheduler = scheduler
        self.hooks_for = hooks_for
        self.store = store
        self.cwd = cwd
        self.attempts = attempts
        self.backoff = backoff
        self.max_queued = max_queued
        self.failed: list[Callable[[HookFailure], None]] = []  # listeners: console, log
        self.dropped = 0
        self._concurrency = concurrency
        self._slots: asyncio.Semaphore | None = None
        self._queues: dict[str, deque[_Delivery]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._queued = 0
        self._client: httpx.AsyncClient | None = None
        self._client_lock = asyncio.Lock()
        self._commands: set[int] = set()  # process groups of hook commands going
        subscribe = scheduler.subscribe
        self._unsubscribes = [
            subscribe(self._on_started, RunStarted),
            subscribe(self._on_ended, RunFinished),
            subscribe(self._on_ended, OccurrenceSkipped),
            subscribe(self._on_ended, OccurrenceMissed),
        ]

    # -- life cycle -----------------------------------------------------------------------
    def start(self, abandoned: list[dict[str, Any]] | None = None) -> None:
        """Start delivering (on the loop); ``abandoned`` are runs the last jobtui left
        unfinished, which call on_missed."""
        self._slots = asyncio.Semaphore(self._concurrency)
        now = time.time()
        for found in abandoned or ():
            self.occurred(Occurrence.abandoned(found, now))

    async def stop(self, drain: float = 5.0) -> None:
        """Give queued deliveries ``drain`` seconds, then cancel what is left (and say so)."""
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                left = self._queued + len(pending)
                log.warning("stopping: %d hook deliveries were not made", left)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def kill_leftovers(self) -> None:
        """The loop is gone (a crash): no hook command may outlive jobtui."""
        for pgid in list(self._commands):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)

    @property
    def command_groups(self) -> frozenset[int]:
        """The process groups of the hook commands going: what kill_leftovers kills."""
        return frozenset(self._commands)

    @property
    def busy(self) -> bool:
        """Whether a delivery is queued or going."""
        return bool(self._tasks)

    # -- from the scheduler (on its loop: only snapshots and queueing here) ---------------
    def _on_started(self, event: RunStarted) -> None:
        hooks = self.hooks_for(event.run.job_id)
        if hooks is not None and hooks.healthcheck and event.run.attempt <= 1:
            self._healthcheck(hooks, Occurrence.of_run(event.run, started=True))

    def _on_ended(self, event: RunFinished | OccurrenceSkipped | OccurrenceMissed) -> None:
        hooks = self.hooks_for(event.run.job_id)
        if hooks is not None and not hooks.empty:
            self.occurred(Occurrence.of_run(event.run), hooks)

    def occurred(self, occurrence: Occurrence, hooks: JobHooks | None = None) -> None:
        """Queue every hook this occurrence's end calls."""
        hooks = hooks or self.hooks_for(occurrence.job_id)
        if hooks is None:
            return
        event = occurrence.event
        command = hooks.command(event) if event is not None else None
        if command is not None:
            self._queue(
                _Delivery(
                    occurrence,
                    f"on_{event}",
                    lambda: self._run_command(command, occurrence, hooks.timeout),
                )
            )
        if hooks.webhook and event in hooks.webhook_on:
            url = hooks.webhook
            self._queue(
                _Delivery(
                    occurrence,
                    f"webhook {mask_url(url)}",
                    lambda: self._post(
                        url, occurrence.webhook_body(), hooks.timeout, "application/json"
                    ),
                )
            )
        if hooks.healthcheck:
            self._healthcheck(hooks, occurrence)

    def _healthcheck(self, hooks: JobHooks, occurrence: Occurrence) -> None:
        suffix = occurrence.healthcheck_suffix()
        if suffix is None or not hooks.healthcheck:
            return
        url = _ping_url(hooks.healthcheck, suffix)
        body = occurrence.output_tail.encode()
        self._queue(
            _Delivery(
                occurrence,
                f"healthcheck {mask_url(url)}",
                lambda: self._post(url, body, hooks.timeout, "text/plain; charset=utf-8"),
            )
        )

    def _queue(self, delivery: _Delivery) -> None:
        if self._slots is None:
            return  # not started (a scheduler used without a host): nothing to deliver with
        job_id = delivery.occurrence.job_id
        if self._queued >= self.max_queued:
            self.dropped += 1
            self._failed(delivery, f"dropped: {self.max_queued} deliveries already waiting")
            return
        self._queues.setdefault(job_id, deque()).append(delivery)
        self._queued += 1
        if job_id not in self._tasks:
            self._tasks[job_id] = asyncio.get_running_loop().create_task(
                self._drain(job_id), name=f"jobtui-hooks-{job_id}"
            )

    # -- delivering -----------------------------------------------------------------------
    async def _drain(self, job_id: str) -> None:
        queue = self._queues[job_id]
        try:
            while queue:
                delivery = queue.popleft()
                self._queued -= 1
                await self._deliver(delivery)
        finally:
            self._tasks.pop(job_id, None)
            if not queue:
                self._queues.pop(job_id, None)
            else:  # cancelled while more waited: they are not delivered
                self._queued -= len(queue)
                queue.clear()

    async def _deliver(self, delivery: _Delivery) -> None:
        assert self._slots is not None
        message = ""
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                async with self._slots:
                    await delivery.send()
                return
            except HookError as exc:
                message = str(exc)
                log.info(
                    "%s for %s: attempt %d failed: %s",
                    delivery.name,
                    delivery.occurrence.job_id,
                    attempt + 1,
                    message,
                )
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        self._failed(delivery, f"{message} (after {tries})")

    def _failed(self, delivery: _Delivery, message: str) -> None:
        occurrence = delivery.occurrence
        failure = HookFailure(
            occurrence.job_id, occurrence.run_id, delivery.name, message, time.time()
        )
        log.info("%s", failure)  # the listeners show it: the headless log, the console
        if self.store is not None:
            self.store.note_job_event(
                occurrence.job_id, "hook_failed", f"{delivery.name}: {message}", at=failure.at
            )
        for listener in list(self.failed):
            try:
                listener(failure)
            except Exception:
                log.exception("a hook-failure listener failed")

    async def _post(self, url: str, body: bytes, timeout: float, content_type: str) -> None:
        client = await self._http_client()
        try:
            response = await client.post(
                url, content=body, headers={"Content-Type": content_type}, timeout=timeout
            )
        except httpx.TimeoutException:
            raise HookError(f"no answer within {timeout:g}s") from None
        except httpx.HTTPError as exc:
            # httpx's messages may carry the URL: say what kind of failure only.
            raise HookError(type(exc).__name__) from None
        if not response.is_success:
            raise HookError(f"HTTP {response.status_code} {response.reason_phrase}")

    async def _http_client(self) -> httpx.AsyncClient:
        """Made on first use, in a thread: loading the CA certificates for its TLS context
        and the modules its first request imports takes tens of milliseconds, which the loop
        must not spend."""
        async with self._client_lock:
            if self._client is None:
                self._client = await asyncio.to_thread(_make_client)
        return self._client

    async def _run_command(
        self, command: str | tuple[str, ...], occurrence: Occurrence, timeout: float
    ) -> None:
        fd, name = tempfile.mkstemp(prefix=f"jobtui-{occurrence.job_id}-", suffix=".log")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(occurrence.output_tail)
            env = {**os.environ, **occurrence.environment(), "JOBTUI_OUTPUT_FILE": name}
            argv = ("/bin/sh", "-c", command) if isinstance(command, str) else command
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=self.cwd,
                    env=env,
                    start_new_session=True,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
            except OSError as exc:
                raise HookError(f"cannot start {argv[0]}: {exc.strerror}") from None
            self._commands.add(process.pid)
            try:
                output, _ = await asyncio.wait_for(process.communicate(), timeout)
            except TimeoutError:
                await _kill_group(process)
                raise HookError(f"still running after {timeout:g}s: killed") from None
            except asyncio.CancelledError:
                await _kill_group(process)
                raise
            finally:
                self._commands.discard(process.pid)
            if process.returncode != 0:
                said = output.decode(errors="replace")[-OUTPUT_KEPT:].strip().splitlines()
                last = f": {said[-1]}" if said else ""
                raise HookError(f"exited with status {process.returncode}{last}")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)


def _make_client() -> httpx.AsyncClient:
    import anyio._backends._asyncio  # noqa: F401 (what httpx's first request would import)
    import h11  # noqa: F401
    import httpcore._async.http11  # noqa: F401

    return httpx.AsyncClient(follow_redirects=True)


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            await asyncio.wait_for(process.wait(), wait)
            return
        except TimeoutError:
            continue


def _ping_url(base: str, suffix: str) -> str:
    """healthchecks.io's ping URLs: the suffix goes on the path, before any query."""
    if not suffix:
        return base
    path, sep, query = base.partition("?")
    return f"{path.rstrip('/')}{suffix}{sep}{query}"
