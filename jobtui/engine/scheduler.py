"""The scheduler: keeps jobs, decides when each occurrence runs, applies the policies, runs them.

Occurrences are planned on two heaps, one per clock: ``every`` jobs on elapsed time (a steady
count that includes suspend, so their grid never drifts and ignores wall-clock steps), cron and
``at`` jobs on the wall clock. The loop sleeps until the earliest deadline, never more than
``MAX_SLEEP`` seconds, and on each wake compares the two clocks to notice a stepped clock or a
suspended machine. An occurrence is identified by its job and ``scheduled_for``; a job never
handles an occurrence at or before the last one it handled, so no clock step or restart can make
one run twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import os
import random
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from types import TracebackType
from typing import Any, Self, TypeVar

from .clock import Clock, RealClock, TimerHandle
from .durations import format_duration
from .errors import (
    DuplicateJob,
    InvalidJobOption,
    JobNotFound,
    JobtuiError,
    RunNotFound,
    SchedulerNotRunning,
)
from .events import (
    ClockJumped,
    Event,
    EventBroker,
    JobAdded,
    JobModified,
    JobRemoved,
    JobStateChanged,
    OccurrenceMissed,
    OccurrenceSkipped,
    RunFinished,
    RunProgress,
    RunRetrying,
    RunStarted,
    SchedulerStarted,
    SchedulerStopped,
)
from .executors import Execution, make_execution
from .job import (
    DEFAULT_OPTIONS,
    Catchup,
    Job,
    JobOptions,
    JobSnapshot,
    OverlapPolicy,
    classify_target,
)
from .run import Outcome, Run, RunError
from .timezones import local_zone, resolve_timezone
from .triggers import CronTrigger, DateTrigger, IntervalTrigger, make_trigger, to_timestamp

log = logging.getLogger("jobtui.engine")

MAX_SLEEP = 30.0  # never sleep longer: a suspend or a clock step is noticed within this
CLOCK_STEP_THRESHOLD = 2.0  # wall and elapsed time disagreeing by more is a clock step
CATCHUP_LIMIT = 1000  # at most this many missed occurrences are enumerated per wake-up
LATE_TOLERANCE = 1.0  # an occurrence this late still counts as on time for catchup="none"
TRIGGER_KEYS = ("every", "cron", "at")

F = TypeVar("F", bound=Callable[..., Any])


class Scheduler:
    """Runs jobs on triggers, with policies for overlap, retries, timeouts and catch-up.

    >>> scheduler = Scheduler(timezone="Europe/Berlin")
    >>> scheduler.add_job(["pg_dump", "-f", "db.sql"], cron="@daily", id="dump")
    >>> async with scheduler:
    ...     await scheduler.wait_stopped()
    """

    def __init__(
        self,
        *,
        timezone: str | tzinfo | None = None,
        max_concurrency: int | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
        stop_grace: float = 30.0,
        output_head_bytes: int = 64 * 1024,
        output_tail_bytes: int = 256 * 1024,
        claim: Callable[[Run], Awaitable[bool]] | None = None,
    ) -> None:
        if max_concurrency is not None and (
            isinstance(max_concurrency, bool)
            or not isinstance(max_concurrency, int)
            or max_concurrency < 1
        ):
            raise InvalidJobOption(
                f"expected a whole number of at least 1, got {max_concurrency!r}",
                key="max_concurrency",
            )
        self.clock: Clock = clock or RealClock()
        self.timezone: tzinfo = (
            local_zone() if timezone is None else resolve_timezone(timezone, key="timezone")
        )
        self.max_concurrency = max_concurrency
        self.stop_grace = stop_grace
        # Asked before a scheduled run starts; False means the occurrence already ran (a state
        # store answers from its UNIQUE(job, scheduled_for) record).
        self.claim = claim
        self.events = EventBroker()
        self._output_limits = (output_head_bytes, output_tail_bytes)
        self._random = random.Random(seed)
        self._jobs: dict[str, Job] = {}
        self._wall_heap: list[tuple[float, int, Job, int]] = []
        self._elapsed_heap: list[tuple[float, int, Job, int]] = []
        self._seq = itertools.count()
        # Runs under way (run id -> run, job, task), and the attempt each is in right now.
        self._executions: dict[str, tuple[Run, Job, asyncio.Task[None]]] = {}
        self._current_execution: dict[str, Execution] = {}
        self._slots_used = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._jittered: dict[TimerHandle, tuple[Job, float]] = {}  # occurrences waiting to start
        self._run_prefix = os.urandom(4).hex()
        self._run_counter = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._main_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._stopped: asyncio.Event | None = None
        self._running = False
        self._stopping = False
        self._last_clock = (0.0, 0.0, 0.0)
        self._dirty: dict[Run, None] = {}
        self._flush_scheduled = False
        self._dirty_lock = threading.Lock()
        self._on_run_changed = self._run_changed  # one bound method, not one per run

    # ------------------------------------------------------------------------------------
    # Life cycle
    # ------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start scheduling. Jobs added before now get their first times planned here."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._running = True
        self._stopping = False
        self._stopped = asyncio.Event()
        wall, elapsed = self.clock.wall(), self.clock.elapsed()
        self._last_clock = (wall, elapsed, self.clock.suspended())
        for job in self._jobs.values():
            if job.next_fire is None and not job.finished:
                self._plan_first(job, wall, elapsed)
        self._spread_soft_start(wall, elapsed)
        self._emit(SchedulerStarted(wall))
        self._main_task = self._loop.create_task(self._main(), name="jobtui-scheduler")

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: no new runs; running ones get ``grace`` seconds (default
        ``stop_grace``), then are cancelled (commands: SIGTERM, then SIGKILL after kill_grace)."""
        if not self._running or self._stopping:
            if self._stopped is not None and self._stopping:
                await self._stopped.wait()
            return
        self._stopping = True
        grace = self.stop_grace if grace is None else grace
        if self._main_task is not None:
            self._main_task.cancel()
            await asyncio.gather(self._main_task, return_exceptions=True)
        for timer, (job, ts) in list(self._jittered.items()):
            timer.cancel()
            self._record(
                job, ts, Outcome.MISSED, "the scheduler stopped before it could run", missed=True
            )
        self._jittered.clear()
        for job in self._jobs.values():
            self._drop_waiting(job, "the scheduler stopped before it could run")
        for job in self._jobs.values():
            for run_id in list((job._retry_waits or {}).keys()):
                self._end_retry_wait(job, run_id)
        tasks = [task for _, _, task in self._executions.values()]
        if tasks and grace > 0:
            grace_over = asyncio.get_running_loop().create_future()
            handle = self.clock.call_later(
                grace, lambda: grace_over.done() or grace_over.set_result(None)
            )
            pending = set(tasks)
            while pending and not grace_over.done():
                _, pending = await asyncio.wait(
                    [*pending, grace_over], return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(grace_over)  # type: ignore[arg-type]
            handle.cancel()
        if tasks:
            reason = f"the scheduler stopped and its grace of {format_duration(grace)} ran out"
            for run in self.running_runs():
                self._interrupt(run, Outcome.CANCELLED, reason)
            await asyncio.gather(*tasks, return_exceptions=True)
        self._running = False
        self._emit(SchedulerStopped(self.clock.wall()))
        assert self._stopped is not None
        self._stopped.set()

    async def wait_stopped(self) -> None:
        """Wait until the scheduler has been stopped (by stop() from elsewhere)."""
        if self._stopped is None:
            raise SchedulerNotRunning("wait for it to stop")
        await self._stopped.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------
    # Managing jobs
    # ------------------------------------------------------------------------------------
    def add_job(
        self,
        target: Any,
        *,
        id: str | None = None,
        every: object = None,
        cron: object = None,
        at: object = None,
        timezone: str | tzinfo | None = None,
        paused: bool = False,
        **options: Any,
    ) -> Job:
        """Add a job: a coroutine function, a plain function (runs in a thread), a shell
        command string or an argv list. At most one trigger; none means "run on demand"."""
        job_id = id if id is not None else _default_id(target)
        if not isinstance(job_id, str) or not job_id.strip():
            raise InvalidJobOption(f"a job id must be non-empty text, got {job_id!r}", key="id")
        if job_id in self._jobs:
            raise DuplicateJob(job_id)
        zone = (
            self.timezone
            if timezone is None
            else resolve_timezone(timezone, key="timezone", job_id=job_id)
        )
        kind, takes_run = classify_target(target, job_id)
        trigger = make_trigger(every=every, cron=cron, at=at, zone=zone, job_id=job_id)
        job_options = DEFAULT_OPTIONS.with_changes(job_id, zone, **options)
        job = Job(job_id, target, kind, takes_run, trigger, job_options, zone)
        if paused:
            job.paused = True
            job.pause_reason = "added paused"
        self._jobs[job_id] = job
        if self._running:
            self._plan_first(job, self.clock.wall(), self.clock.elapsed())
        if self.events.has_subscribers:
            self._emit(JobAdded(self.clock.wall(), job_id))
        return job

    def job(self, **kwargs: Any) -> Callable[[F], F]:
        """Decorator form of `add_job`: ``@scheduler.job(every="10m")``."""

        def register(func: F) -> F:
            self.add_job(func, **kwargs)
            return func

        return register

    def get(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(job_id) from None

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def remove(self, job_id: str, *, cancel_running: bool = False) -> Job:
        """Remove a job. Its running run finishes (or is cancelled with ``cancel_running``)."""
        job = self.get(job_id)
        del self._jobs[job_id]
        job._heap_version += 1
        job.next_fire = None
        self._drop_waiting(job, "the job was removed")
        if cancel_running:
            for run in list(job.active):
                self._interrupt(run, Outcome.CANCELLED, "the job was removed")
        self._emit(JobRemoved(self.clock.wall(), job_id))
        return job

    def pause(self, job_id: str, reason: str = "") -> Job:
        """Stop planning occurrences; a running run goes on. Nothing is missed while paused."""
        job = self.get(job_id)
        if job.paused:
            return job
        job.paused = True
        job.pause_reason = reason or "paused by the user"
        job._heap_version += 1
        self._drop_waiting(job, "the job was paused")
        self._emit(JobStateChanged(self.clock.wall(), job_id, job.state.value, job.pause_reason))
        return job

    def resume(self, job_id: str) -> Job:
        """Resume a paused or disabled job from now on: no burst of missed occurrences."""
        job = self.get(job_id)
        if not job.paused and not job.disabled_reason:
            return job
        job.paused = False
        job.pause_reason = ""
        job.disabled_reason = ""
        job.consecutive_failures = 0
        if self._running:
            self._plan_from_now(job)
        self._emit(JobStateChanged(self.clock.wall(), job_id, job.state.value, "resumed"))
        return job

    def modify(self, job_id: str, **changes: Any) -> Job:
        """Change a job's trigger, target or options; its history and counters are kept and
        its next time is recomputed from now."""
        job = self.get(job_id)
        zone = job.zone
        if "timezone" in changes:
            value = changes.pop("timezone")
            zone = self.timezone if value is None else resolve_timezone(value, job_id=job_id)
        trigger_changes = {k: changes.pop(k) for k in TRIGGER_KEYS if k in changes}
        target = changes.pop("target", job.target)
        paused = changes.pop("paused", None)
        kind, takes_run = classify_target(target, job_id)
        trigger = (
            make_trigger(zone=zone, job_id=job_id, **trigger_changes)
            if trigger_changes
            else job.trigger
        )
        options = job.options.with_changes(job_id, zone, **changes)
        trigger_changed = (
            trigger != job.trigger or zone != job.zone or (options.start != job.options.start)
        )
        job.target, job.kind, job.takes_run = target, kind, takes_run
        job.options, job.zone, job.trigger = options, zone, trigger
        if trigger_changed:
            job._anchor_elapsed = None
            job._override = None
            job.finished = False
            job.finish_reason = ""
        below_max = options.max_runs is None or job.run_count < options.max_runs
        if below_max and job.finish_reason.startswith("max_runs"):
            job.finished = False
            job.finish_reason = ""
        if paused is not None and bool(paused) != job.paused:
            (self.pause if paused else self.resume)(job_id)
        if self._running and not job.finished:
            self._plan_from_now(job)
        self._emit(JobModified(self.clock.wall(), job_id))
        return job

    def restore(self, job_id: str, snapshot: JobSnapshot) -> Job:
        """Give a job the state a store kept for it across a restart. With
        ``snapshot.catch_up``, occurrences since ``last_fired`` go through the catch-up policy
        when the scheduler starts (jobs whose definition changed pass False: they start
        afresh from now)."""
        job = self.get(job_id)
        if self._running:
            raise JobtuiError("restore job state before the scheduler starts")
        job.paused = snapshot.paused or job.paused
        job.pause_reason = snapshot.pause_reason or job.pause_reason
        job.disabled_reason = snapshot.disabled_reason
        job.consecutive_failures = snapshot.consecutive_failures
        job.run_count = snapshot.run_count
        job.last_fired = snapshot.last_fired
        job._catch_up_from_last = snapshot.catch_up and snapshot.last_fired is not None
        if snapshot.catch_up and snapshot.grid_anchor is not None:
            job._anchor_wall = snapshot.grid_anchor
            job._anchor_restored = True
        if isinstance(job.trigger, DateTrigger) and snapshot.finished:
            job.finished = True
            job.finish_reason = "it ran at its `at` time"
        return job

    def run_now(self, job_id: str) -> Run:
        """Start a manual run now. It does not move the schedule; history marks it manual."""
        if not self._running or self._stopping:
            raise SchedulerNotRunning("run a job")
        job = self.get(job_id)
        return self._start_run(job, self.clock.wall(), manual=True)

    def cancel(self, target: str) -> list[Run]:
        """Cancel the running run(s) of a job (by job id) or one run (by run id)."""
        runs: list[Run]
        if target in self._jobs:
            runs = list(self._jobs[target].active)
        elif target in self._executions:
            runs = [self._executions[target][0]]
        else:
            runs = []
        if not runs:
            raise RunNotFound(f'"{target}"')
        for run in runs:
            self._interrupt(run, Outcome.CANCELLED, "cancelled by the user")
        return runs

    def running_runs(self) -> list[Run]:
        return [run for run, _, _ in self._executions.values()]

    def next_times(self, job_id: str, n: int = 5, after: datetime | None = None) -> list[datetime]:
        """The job's next ``n`` occurrences after ``after`` (default now), in its timezone."""
        job = self.get(job_id)
        after_ts = (
            self.clock.wall() if after is None else to_timestamp(after, job.zone, key="after")
        )
        times: list[float] = []
        trigger, opts = job.trigger, job.options
        if isinstance(trigger, IntervalTrigger):
            anchor = (
                job._anchor_wall
                if job._anchor_elapsed is not None
                else (opts.start if opts.start is not None else self.clock.wall())
            )
            k = max(math.floor((after_ts - anchor) / trigger.period) + 1, 0)
            if job._anchor_elapsed is None and not opts.run_immediately:
                k = max(k, 1)
            while len(times) < n:
                ts = anchor + k * trigger.period
                if opts.end is not None and ts > opts.end:
                    break
                times.append(ts)
                k += 1
        elif isinstance(trigger, CronTrigger):
            ts = max(after_ts, (opts.start - 1e-6) if opts.start is not None else after_ts)
            while len(times) < n:
                ts = trigger.next_after(ts, job.zone)
                if opts.end is not None and ts > opts.end:
                    break
                times.append(ts)
        elif isinstance(trigger, DateTrigger) and trigger.at > after_ts and job.last_fired is None:
            times.append(trigger.at)
        return [datetime.fromtimestamp(ts, UTC).astimezone(job.zone) for ts in times]

    def subscribe(self, callback: Callable[[Event], object]) -> Callable[[], None]:
        """Shortcut for ``scheduler.events.subscribe``."""
        return self.events.subscribe(callback)

    def stream(self) -> AsyncIterator[Event]:
        return self.events.stream()

    # ------------------------------------------------------------------------------------
    # Planning: when is each job's next occurrence
    # ------------------------------------------------------------------------------------
    def _plan_first(self, job: Job, wall: float, elapsed: float) -> None:
        trigger, opts = job.trigger, job.options
        if job.paused or job.disabled_reason or job.finished:
            return
        catch_up = job._catch_up_from_last and job.last_fired is not None
        job._catch_up_from_last = False
        if isinstance(trigger, IntervalTrigger):
            if job._anchor_restored:
                anchor_wall = job._anchor_wall
            else:
                anchor_wall = opts.start if opts.start is not None else wall
            job._anchor_restored = False
            job._anchor_wall = anchor_wall
            job._anchor_elapsed = elapsed + (anchor_wall - wall)
            since = (wall - anchor_wall) / trigger.period
            if catch_up:  # restarted: the first occurrence after the last one handled
                assert job.last_fired is not None
                job._k = max(
                    math.floor((job.last_fired - anchor_wall) / trigger.period + 1e-9) + 1, 0
                )
            elif since < 0:  # the grid starts in the future
                job._k = 0 if opts.run_immediately else 1
            elif opts.run_immediately:  # fire now, on the latest grid point (identity stays stable)
                job._k = math.floor(since)
            else:  # a start in the past keeps its phase; what fell before now is not a miss
                job._k = math.floor(since) + 1
            self._push_interval(job)
        elif isinstance(trigger, CronTrigger):
            if catch_up:
                assert job.last_fired is not None
                self._plan_cron(job, job.last_fired)  # may be due at once: catch-up decides
            elif opts.run_immediately:
                self._push_wall(job, wall)
                job._override = wall
            else:
                self._plan_cron(job, wall)
        elif isinstance(trigger, DateTrigger):
            if job.last_fired is not None and job.last_fired >= trigger.at:
                self._finish(job, "its `at` time has passed and it ran")
            else:
                self._push_wall(job, trigger.at)
        elif job._override is not None:
            self._push_wall(job, job._override)

    def _plan_from_now(self, job: Job) -> None:
        """Re-plan from the present (after resume or modify): nothing in the past is due."""
        wall, elapsed = self.clock.wall(), self.clock.elapsed()
        job._heap_version += 1
        job.next_fire = None
        if job.paused or job.disabled_reason or job.finished:
            return
        if job._override is not None:
            self._push_wall(job, max(job._override, wall))
            return
        trigger = job.trigger
        if isinstance(trigger, IntervalTrigger):
            if job._anchor_elapsed is None:
                self._plan_first(job, wall, elapsed)
                return
            job._k = max(job._k, math.floor((elapsed - job._anchor_elapsed) / trigger.period) + 1)
            self._push_interval(job)
        elif isinstance(trigger, CronTrigger):
            self._plan_cron(job, wall)
        else:
            self._plan_first(job, wall, elapsed)

    def _plan_cron(self, job: Job, after: float) -> None:
        assert isinstance(job.trigger, CronTrigger)
        opts = job.options
        after = max(after, job.last_fired or after)
        if opts.start is not None:
            after = max(after, opts.start - 1e-6)
        ts = job.trigger.next_after(after, job.zone)
        if opts.end is not None and ts > opts.end:
            self._finish(job, "its end time has passed")
            return
        self._push_wall(job, ts)

    def _push_interval(self, job: Job) -> None:
        assert isinstance(job.trigger, IntervalTrigger) and job._anchor_elapsed is not None
        period = job.trigger.period
        label = job._anchor_wall + job._k * period
        if job.options.end is not None and label > job.options.end:
            self._finish(job, "its end time has passed")
            return
        job.next_fire = label
        job._heap_version += 1
        entry = (job._anchor_elapsed + job._k * period, next(self._seq), job, job._heap_version)
        heapq.heappush(self._elapsed_heap, entry)
        if self._elapsed_heap[0] is entry:
            self._wake_up()

    def _push_wall(self, job: Job, ts: float) -> None:
        job.next_fire = ts
        job._heap_version += 1
        entry = (ts, next(self._seq), job, job._heap_version)
        heapq.heappush(self._wall_heap, entry)
        if self._wall_heap[0] is entry:
            self._wake_up()

    def _finish(self, job: Job, reason: str) -> None:
        job.finished = True
        job.finish_reason = reason
        job.next_fire = None
        job._heap_version += 1
        if self.events.has_subscribers:
            self._emit(JobStateChanged(self.clock.wall(), job.id, job.state.value, reason))

    def _spread_soft_start(self, wall: float, elapsed: float) -> None:
        due = []
        for job in self._jobs.values():
            if job.options.soft_start <= 0 or job.next_fire is None:
                continue
            if isinstance(job.trigger, IntervalTrigger) and job._anchor_elapsed is not None:
                deadline = job._anchor_elapsed + job._k * job.trigger.period - elapsed
            else:
                deadline = job.next_fire - wall
            if deadline <= 0:
                due.append(job)
        for index, job in enumerate(due):
            job._soft_delay = job.options.soft_start * index / len(due)

    # ------------------------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------------------------
    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wall, elapsed = self.clock.wall(), self.clock.elapsed()
            self._notice_clock_changes(wall, elapsed)
            try:
                self._process_due(wall, elapsed)
            except Exception:  # a bug in one job's planning must not stop every job
                log.exception("scheduling pass failed")
            # Read the clocks again: the pass above may have taken a while.
            wall, elapsed = self.clock.wall(), self.clock.elapsed()
            delay = MAX_SLEEP
            if self._elapsed_heap:
                delay = min(delay, self._elapsed_heap[0][0] - elapsed)
            if self._wall_heap:
                delay = min(delay, self._wall_heap[0][0] - wall)
            if delay <= 0:
                await asyncio.sleep(0)
                continue
            self._wake = loop.create_future()
            handle = self.clock.call_later(delay, self._wake_up)
            try:
                await self._wake
            finally:
                handle.cancel()
                self._wake = None

    def _wake_up(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _notice_clock_changes(self, wall: float, elapsed: float) -> None:
        last_wall, last_elapsed, last_suspended = self._last_clock
        suspended = self.clock.suspended()
        self._last_clock = (wall, elapsed, suspended)
        slept = suspended - last_suspended
        if slept > CLOCK_STEP_THRESHOLD:
            self._emit(ClockJumped(wall, "suspend", slept))
        step = (wall - last_wall) - (elapsed - last_elapsed)
        if abs(step) > CLOCK_STEP_THRESHOLD:
            # Cron deadlines are wall times, so they stay right; an occurrence at or before a
            # job's last handled one is never handled again, so a step back repeats nothing.
            self._emit(ClockJumped(wall, "forward" if step > 0 else "backward", step))

    def _process_due(self, wall: float, elapsed: float) -> None:
        due: list[Job] = []
        for heap, now in ((self._elapsed_heap, elapsed), (self._wall_heap, wall)):
            while heap and heap[0][0] <= now:
                _, _, job, version = heapq.heappop(heap)
                if version == job._heap_version and self._jobs.get(job.id) is job:
                    due.append(job)
        for job in due:
            self._handle_due(job, wall, elapsed)

    def _handle_due(self, job: Job, wall: float, elapsed: float) -> None:
        trigger = job.trigger
        if type(trigger) is IntervalTrigger and job._override is None:
            # The hot path: one grid point due, on time. Same outcome as the general path
            # below, without building lists; it decides how many runs a second we can start.
            k, period = job._k, trigger.period
            lateness = elapsed - (job._anchor_elapsed or 0.0) - k * period
            ts = job._anchor_wall + k * period
            end = job.options.end
            if (
                -1e-9 <= lateness < period
                and (end is None or ts <= end)
                and _on_time(job, lateness)
            ):
                job._k = k + 1
                job.next_fire = None
                if job.last_fired is None or ts > job.last_fired:
                    self._fire(job, ts)
                if not job.finished and not job.paused and not job.disabled_reason:
                    self._push_interval(job)
                return
        due_ts = job.next_fire
        job.next_fire = None
        occurrences, not_enumerated = self._collect_due(job, due_ts, wall, elapsed)
        if len(occurrences) == 1 and not_enumerated is None and _on_time(job, occurrences[0][1]):
            self._fire(job, occurrences[0][0])  # the common case: one occurrence, on time
        else:
            self._apply_catchup(job, occurrences, not_enumerated, wall)
        if not job.finished and not job.paused and not job.disabled_reason:
            self._plan_after_due(job, wall)

    def _collect_due(
        self, job: Job, due_ts: float | None, wall: float, elapsed: float
    ) -> tuple[list[tuple[float, float]], tuple[float, int | None] | None]:
        """Occurrences now due, oldest first, as (scheduled_for, lateness in seconds).

        At most CATCHUP_LIMIT are enumerated (a clock set years ahead must not hang or eat
        memory); the ones passed over come back as (first of them, how many, if known)."""
        trigger, opts = job.trigger, job.options
        last = job.last_fired if job.last_fired is not None else -math.inf
        if job._override is not None:
            ts, job._override = job._override, None
            return ([(ts, wall - ts)] if ts > last else []), None
        if isinstance(trigger, IntervalTrigger):
            assert job._anchor_elapsed is not None
            period, anchor = trigger.period, job._anchor_elapsed
            k_now = math.floor((elapsed - anchor) / period + 1e-9)
            if opts.end is not None:
                k_now = min(k_now, math.floor((opts.end - job._anchor_wall) / period))
            if k_now < job._k:
                return [], None
            first = max(job._k, k_now - CATCHUP_LIMIT + 1)
            passed_over = (
                (job._anchor_wall + job._k * period, first - job._k) if first > job._k else None
            )
            occurrences = [
                (job._anchor_wall + k * period, elapsed - (anchor + k * period))
                for k in range(first, k_now + 1)
            ]
            job._k = k_now + 1
            return [o for o in occurrences if o[0] > last], passed_over
        if isinstance(trigger, CronTrigger) and due_ts is not None:
            return self._collect_cron(job, trigger, due_ts, wall, last)
        if isinstance(trigger, DateTrigger):
            ts = trigger.at
            return ([(ts, wall - ts)] if ts > last else []), None
        return [], None

    def _collect_cron(
        self, job: Job, trigger: CronTrigger, due_ts: float, wall: float, last: float
    ) -> tuple[list[tuple[float, float]], tuple[float, int | None] | None]:
        end = job.options.end
        found: list[float] = []
        ts = due_ts
        while ts <= wall and (end is None or ts <= end) and len(found) < CATCHUP_LIMIT:
            if ts > last:
                found.append(ts)
            ts = trigger.next_after(ts, job.zone)
        passed_over: tuple[float, int | None] | None = None
        if ts <= wall and (end is None or ts <= end):
            # More than the limit: skip ahead to roughly the newest CATCHUP_LIMIT before now.
            gap = max((found[-1] - found[0]) / max(len(found) - 1, 1), 1.0) if found else 60.0
            passed_over = (ts, None)
            ts = trigger.next_after(max(ts, wall - gap * (CATCHUP_LIMIT - 1)), job.zone)
            found = []
            while ts <= wall and (end is None or ts <= end) and len(found) < CATCHUP_LIMIT:
                found.append(ts)
                ts = trigger.next_after(ts, job.zone)
        return [(t, wall - t) for t in found], passed_over

    def _plan_after_due(self, job: Job, wall: float) -> None:
        trigger = job.trigger
        if isinstance(trigger, IntervalTrigger):
            self._push_interval(job)
        elif isinstance(trigger, CronTrigger):
            self._plan_cron(job, wall)
        elif isinstance(trigger, DateTrigger) and job._override is None:
            waiting = job.active or any(j is job for j, _ in self._jittered.values())
            if not waiting:  # else its run's end finishes it (the run may return a new time)
                self._finish(job, "it ran at its `at` time")
        if job._override is not None and job.next_fire is None:
            self._push_wall(job, job._override)

    def _apply_catchup(
        self,
        job: Job,
        occurrences: list[tuple[float, float]],
        passed_over: tuple[float, int | None] | None,
        wall: float,
    ) -> None:
        opts = job.options
        grace = opts.misfire_grace
        if passed_over is not None:
            first, count = passed_over
            how_many = f"{count} occurrences" if count is not None else "every occurrence"
            until = f" before {_iso(occurrences[0][0])}" if occurrences else ""
            self._record(
                job,
                first,
                Outcome.MISSED,
                f"{how_many} from {_iso(first)}{until} missed (too many to list: catch-up "
                f"looks at the newest {CATCHUP_LIMIT} only)",
                missed=True,
            )
        eligible: list[float] = []
        for ts, lateness in occurrences:
            if grace is not None and lateness > grace:
                self._record(
                    job,
                    ts,
                    Outcome.MISSED,
                    f"late by {format_duration(lateness)}, beyond misfire_grace "
                    f"{format_duration(grace)}",
                    missed=True,
                )
            else:
                eligible.append(ts)
        if not eligible:
            return
        if opts.catchup is Catchup.ALL:
            to_run = eligible
        elif opts.catchup is Catchup.LATEST:
            to_run = eligible[-1:]
        else:
            newest = eligible[-1]
            on_time = wall - newest <= LATE_TOLERANCE
            to_run = [newest] if on_time and len(occurrences) == 1 else []
        skipped_by_catchup = [ts for ts in eligible if ts not in to_run]
        for ts in skipped_by_catchup:
            why = (
                f'catchup="latest" ran only the newest occurrence ({_iso(to_run[-1])})'
                if to_run
                else 'catchup="none" runs no missed occurrence'
            )
            self._record(job, ts, Outcome.MISSED, why, missed=True)
        for index, ts in enumerate(to_run):
            self._fire(job, ts, backlog=index > 0)

    # ------------------------------------------------------------------------------------
    # Firing: overlap policy, jitter, concurrency
    # ------------------------------------------------------------------------------------
    def _fire(self, job: Job, ts: float, *, backlog: bool = False) -> None:
        job.last_fired = ts if job.last_fired is None else max(job.last_fired, ts)
        delay = job._soft_delay
        job._soft_delay = 0.0
        if job.options.jitter > 0:
            delay += self._random.uniform(0, job.options.jitter)
        if backlog:
            if job._backlog is None:
                job._backlog = deque()
            job._backlog.append(ts)
            return
        if delay > 0:
            handle: TimerHandle | None = None

            def later() -> None:
                self._jittered.pop(handle, None)  # type: ignore[arg-type]
                if self._jobs.get(job.id) is not job:
                    self._record(job, ts, Outcome.MISSED, "the job was removed", missed=True)
                elif not self._stopping:
                    self._dispatch(job, ts)

            handle = self.clock.call_later(delay, later)
            self._jittered[handle] = (job, ts)
            return
        self._dispatch(job, ts)

    def _dispatch(self, job: Job, ts: float) -> None:
        if job.paused or job.disabled_reason:
            self._record(job, ts, Outcome.MISSED, f"the job is {job.state.value}", missed=True)
            return
        if job._threads_alive and not job.active:
            self._record(
                job,
                ts,
                Outcome.SKIPPED,
                "an earlier run that timed out or was cancelled is still running in its thread",
            )
            return
        active = job.active
        overlap = job.options.overlap
        if not active or (overlap.policy is OverlapPolicy.PARALLEL and len(active) < overlap.limit):
            self._start_run(job, ts)
            return
        running = active[-1]
        if overlap.policy in (OverlapPolicy.SKIP, OverlapPolicy.PARALLEL):
            limit = (
                f" ({overlap.limit} at once)" if overlap.policy is OverlapPolicy.PARALLEL else ""
            )
            self._record(
                job,
                ts,
                Outcome.SKIPPED,
                f"still running{limit}: run {running.run_id} for {_iso(running._scheduled_ts)}",
            )
            return
        if job._pending is not None:
            self._record(
                job,
                job._pending,
                Outcome.SKIPPED,
                f"coalesced: a newer occurrence ({_iso(ts)}) took its place in the queue",
            )
        job._pending = ts
        if overlap.policy is OverlapPolicy.REPLACE:
            for run in list(active):
                self._interrupt(
                    run, Outcome.CANCELLED, f"replaced by the occurrence for {_iso(ts)}"
                )

    def _start_run(self, job: Job, ts: float, *, manual: bool = False) -> Run:
        run = Run(
            job.id,
            f"{self._run_prefix}{next(self._run_counter):06x}",
            ts,
            manual=manual,
            wall=self.clock.wall,
            output_limits=self._output_limits,
        )
        run._notify = self._on_run_changed
        job.active.append(run)
        if not manual:
            job.run_count += 1
        assert self._loop is not None
        task = self._loop.create_task(self._execute(job, run))
        self._executions[run.run_id] = (run, job, task)
        return run

    async def _acquire_slot(self) -> None:
        if self.max_concurrency is None:
            return
        if self._slots_used < self.max_concurrency and not self._slot_waiters:
            self._slots_used += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._slot_waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()  # it was handed a slot just as it was cancelled
            raise

    def _release_slot(self) -> None:
        if self.max_concurrency is None:
            return
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self._slots_used -= 1

    # ------------------------------------------------------------------------------------
    # Executing a run: attempts, timeouts, retries, outcome
    # ------------------------------------------------------------------------------------
    async def _execute(self, job: Job, run: Run) -> None:
        result_value: Any = None
        outcome = Outcome.CANCELLED
        opts = job.options
        limited = self.max_concurrency is not None
        try:
            if self.claim is not None and not run.manual and not await self.claim(run):
                outcome = Outcome.SKIPPED
                run.reason = "this occurrence already ran: the state store has a record of it"
                return
            while True:
                if limited:
                    await self._acquire_slot()
                try:
                    if run.outcome is not None:  # cancelled while it waited for a slot
                        outcome = run.outcome
                        break
                    run.attempt += 1
                    execution = make_execution(job, run, self.clock, self._thread_exited)
                    self._current_execution[run.run_id] = execution
                    if run.attempt == 1:
                        run._started_ts = self.clock.wall()
                        if self.events.has_subscribers:
                            self._emit(RunStarted(run._started_ts, run))
                    else:
                        run.output.append(
                            "log", f"--- attempt {run.attempt} ---", self.clock.wall()
                        )
                        self._run_changed(run)
                    timer = None
                    if opts.timeout is not None:
                        timer = self.clock.call_later(
                            opts.timeout,
                            lambda e=execution: e.interrupt(
                                Outcome.TIMED_OUT,
                                f"timed out after {format_duration(opts.timeout or 0)}",
                            ),
                        )
                    try:
                        result = await execution.execute()
                    finally:
                        if timer is not None:
                            timer.cancel()
                        self._current_execution.pop(run.run_id, None)
                finally:
                    if limited:
                        self._release_slot()
                outcome, result_value = result.outcome, result.value
                if not self._should_retry(job, run, outcome):
                    break
                if not await self._retry_wait(job, run):
                    break
                run.error = None
        except asyncio.CancelledError:
            outcome = Outcome.CANCELLED
            run.reason = run.reason or "the scheduler was shut down"
        except Exception as exc:  # a bug in the engine itself: keep the record honest
            log.exception("run %s of %s failed inside the scheduler", run.run_id, job.id)
            outcome = Outcome.FAILED
            run.error = RunError.from_exception(exc)
        finally:
            self._finish_run(job, run, run.outcome or outcome, result_value)

    def _should_retry(self, job: Job, run: Run, outcome: Outcome) -> bool:
        opts = job.options
        if outcome not in (Outcome.FAILED, Outcome.TIMED_OUT) or self._stopping:
            return False
        if run.attempt > opts.retries:
            return False
        return _retry_allowed(run, opts)

    async def _retry_wait(self, job: Job, run: Run) -> bool:
        """Wait out the backoff (full jitter, capped). False if the wait was cut short."""
        opts = job.options
        ceiling = min(opts.retry_max, opts.retry_backoff * 2 ** (run.attempt - 1))
        delay = self._random.uniform(0, ceiling)
        error = run.error.first_line if run.error else (run.reason or "failed")
        self._emit(RunRetrying(self.clock.wall(), run, self.clock.wall() + delay, error))
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if job._retry_waits is None:
            job._retry_waits = {}
        job._retry_waits[run.run_id] = waiter
        handle = self.clock.call_later(delay, lambda: waiter.done() or waiter.set_result(None))
        run.status_message = f"retrying in {format_duration(delay)} (attempt {run.attempt + 1})"
        try:
            await waiter
        finally:
            handle.cancel()
            job._retry_waits.pop(run.run_id, None)
        return run.outcome is None and not self._stopping

    def _end_retry_wait(self, job: Job, run_id: str) -> None:
        waiter = (job._retry_waits or {}).get(run_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _interrupt(self, run: Run, outcome: Outcome, reason: str) -> None:
        execution = self._current_execution.get(run.run_id)
        if execution is not None:
            execution.interrupt(outcome, reason)
            return
        entry = self._executions.get(run.run_id)
        if entry is None:
            return
        # Between attempts (waiting for a retry or a concurrency slot): end it right here.
        run.outcome = outcome
        run.reason = reason
        self._end_retry_wait(entry[1], run.run_id)
        if not entry[2].done():
            entry[2].cancel()

    def _finish_run(self, job: Job, run: Run, outcome: Outcome, value: Any) -> None:
        run.outcome = outcome
        run._finished_ts = self.clock.wall()
        run._notify = None
        self._dirty.pop(run, None)
        self._executions.pop(run.run_id, None)
        if run in job.active:
            job.active.remove(run)
        job.last_run = run
        if outcome is Outcome.SUCCEEDED:
            job.consecutive_failures = 0
            if value is not None:
                self._apply_return_value(job, run, value)
        elif outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
            job.consecutive_failures += 1
        if self.events.has_subscribers:
            self._emit(RunFinished(run._finished_ts, run))
        if self._jobs.get(job.id) is not job:
            return
        opts = job.options
        if (
            opts.max_failures is not None
            and job.consecutive_failures >= opts.max_failures
            and not job.disabled_reason
        ):
            what = run.error.first_line if run.error else outcome.value
            job.disabled_reason = f"{job.consecutive_failures} consecutive failures; last: {what}"
            job._heap_version += 1
            self._drop_waiting(job, "the job was disabled")
            self._emit(
                JobStateChanged(self.clock.wall(), job.id, job.state.value, job.disabled_reason)
            )
            return
        if opts.max_runs is not None and job.run_count >= opts.max_runs and not job.finished:
            if not job.active:
                self._drop_waiting(job, f"max_runs ({opts.max_runs}) was reached")
                self._finish(job, f"max_runs ({opts.max_runs}) reached")
            return
        if (
            isinstance(job.trigger, DateTrigger)
            and not job.active
            and job._override is None
            and not job.finished
            and job.next_fire is None
            and job.last_fired is not None
        ):
            self._finish(job, "it ran at its `at` time")
            return
        if self._stopping or job.active:
            return
        if job._backlog:
            self._start_run(job, job._backlog.popleft())
        elif job._pending is not None:
            ts, job._pending = job._pending, None
            self._dispatch(job, ts)
        if job.trigger is None and job._override is not None and job.next_fire is None:
            self._push_wall(job, job._override)

    def _apply_return_value(self, job: Job, run: Run, value: Any) -> None:
        wall = self.clock.wall()
        if isinstance(value, str) and value.strip().lower() == "never":
            job._heap_version += 1
            job._override = None
            self._finish(job, 'the job returned "never"')
            return
        if isinstance(value, datetime):
            ts = value.timestamp() if value.tzinfo else value.replace(tzinfo=job.zone).timestamp()
        elif isinstance(value, timedelta):
            ts = wall + value.total_seconds()
        else:
            run.output.append(
                "log",
                f"the return value {value!r} was ignored: return None, a datetime, a timedelta "
                'or "never" to reschedule',
                wall,
            )
            return
        if self._jobs.get(job.id) is not job or job.paused or job.disabled_reason:
            return
        job._override = max(ts, wall)
        job.finished = False
        self._push_wall(job, job._override)

    def _thread_exited(self, job: Job) -> None:
        """A thread that outlived its run's timeout or cancel has finished at last."""
        if self._jobs.get(job.id) is job:
            self._emit(JobModified(self.clock.wall(), job.id))
            if not job.active and not self._stopping:
                if job._backlog:
                    self._start_run(job, job._backlog.popleft())
                elif job._pending is not None:
                    ts, job._pending = job._pending, None
                    self._dispatch(job, ts)

    # ------------------------------------------------------------------------------------
    # Records and events
    # ------------------------------------------------------------------------------------
    def _record(
        self, job: Job, ts: float, outcome: Outcome, reason: str, *, missed: bool = False
    ) -> Run:
        """Record an occurrence that did not run (skipped or missed): nothing is dropped
        silently."""
        run = Run(
            job.id, f"{self._run_prefix}{next(self._run_counter):06x}", ts, wall=self.clock.wall
        )
        run.outcome = outcome
        run.reason = reason
        run._finished_ts = self.clock.wall()
        if job.last_fired is None or ts > job.last_fired:
            job.last_fired = ts
        event = OccurrenceMissed if missed else OccurrenceSkipped
        self._emit(event(run._finished_ts, run))
        return run

    def _drop_waiting(self, job: Job, reason: str) -> None:
        """Occurrences that were waiting their turn (queue, catch-up backlog) won't run."""
        if job._pending is not None:
            ts, job._pending = job._pending, None
            self._record(job, ts, Outcome.SKIPPED, reason)
        while job._backlog:
            self._record(job, job._backlog.popleft(), Outcome.MISSED, reason, missed=True)

    def _emit(self, event: Event) -> None:
        if self.events.has_subscribers:
            self.events.publish(event)

    def _run_changed(self, run: Run) -> None:
        """Progress, status or output changed: publish once per loop turn, from any thread."""
        loop = self._loop
        if loop is None or not self.events.has_subscribers:
            return
        if threading.get_ident() == self._loop_thread:
            self._dirty[run] = None
            if not self._flush_scheduled:
                self._flush_scheduled = True
                loop.call_soon(self._flush_progress)
            return
        with self._dirty_lock:
            if run in self._dirty:
                return
            self._dirty[run] = None
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            with contextlib.suppress(RuntimeError):  # the loop closed under a late thread
                loop.call_soon_threadsafe(self._flush_progress)

    def _flush_progress(self) -> None:
        with self._dirty_lock:
            runs = list(self._dirty)
            self._dirty.clear()
            self._flush_scheduled = False
        now = self.clock.wall()
        for run in runs:
            if run.outcome is None:
                self._emit(RunProgress(now, run))


def _on_time(job: Job, lateness: float) -> bool:
    """Whether a lone due occurrence runs without any catch-up or misfire decision."""
    grace = job.options.misfire_grace
    return (grace is None or lateness <= grace) and (
        lateness <= LATE_TOLERANCE or job.options.catchup is not Catchup.NONE
    )


def _retry_allowed(run: Run, opts: JobOptions) -> bool:
    """retry_on / no_retry_on: exception types (or names) and command exit codes."""
    error_type = run.error.type if run.error else ""
    code = run.exit_code

    def matches(filters: Iterable[type | str | int]) -> bool:
        for item in filters:
            if isinstance(item, int):
                if code == item:
                    return True
            elif isinstance(item, str):
                if error_type == item or error_type.rsplit(".", 1)[-1] == item:
                    return True
            elif error_type == item.__qualname__:
                return True
        return False

    if opts.no_retry_on and matches(opts.no_retry_on):
        return False
    return not opts.retry_on or matches(opts.retry_on)


def _default_id(target: Any) -> str:
    if isinstance(target, str):
        return target.split()[0] if target.split() else target
    if isinstance(target, list | tuple) and target:
        return os.path.basename(os.fspath(target[0]))
    name = getattr(target, "__name__", None) or type(target).__name__
    return str(name)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
