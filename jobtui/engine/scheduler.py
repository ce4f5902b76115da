"""The scheduler: keeps jobs and decides when each occurrence is due.

Occurrences are planned on two heaps, one per clock: ``every`` jobs on elapsed time (a steady
count that includes suspend, so their grid never drifts and ignores wall-clock steps), cron and
``at`` jobs on the wall clock (heaps.py). Where each job's next occurrence falls is its plan's
business (plans.py); what becomes of the due ones is the dispatcher's (dispatch.py, applying
policies.py); running them is the runner's (runner.py). The loop sleeps until the earliest
deadline, never more than ``MAX_SLEEP`` seconds, and on each wake compares the two clocks to
notice a stepped clock or a suspended machine. An occurrence is identified by its job and
``scheduled_for``; a job never handles an occurrence at or before the last one it handled, so
no clock step or restart can make one run twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, tzinfo
from functools import partial
from typing import Any, Self, TypeVar

from .clock import Clock, ClockSteps, RealClock
from .collector import PassCollector
from .datastore import DataStore, JobSaver
from .definitions import new_job, reconfigure, restore_state
from .dispatch import Dispatcher
from .errors import JobNotFound, JobtuiError, RunNotFound, SchedulerNotRunning
from .events import (
    AnyEvent,
    ClockJumped,
    Event,
    EventBroker,
    JobAdded,
    JobModified,
    JobRemoved,
    JobStateChanged,
    SchedulerStarted,
    SchedulerStopped,
)
from .heaps import DueHeaps
from .job import Job, JobSnapshot, check_max_concurrency
from .middleware import Middleware, check_middleware
from .plans import Returned, Step
from .policies import on_time
from .run import Outcome, Run
from .runner import Runner
from .timezones import local_zone, resolve_timezone
from .triggers import to_timestamp

log = logging.getLogger("jobtui.engine")

MAX_SLEEP = 30.0  # never sleep longer: a suspend or a clock step is noticed within this

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
        store: DataStore | None = None,
        middleware: Iterable[Middleware] = (),
    ) -> None:
        self.max_concurrency = check_max_concurrency(max_concurrency)
        self.clock: Clock = clock or RealClock()
        self.timezone: tzinfo = (
            local_zone() if timezone is None else resolve_timezone(timezone, key="timezone")
        )
        self.stop_grace = stop_grace
        # Where an `every` grid without a `start` is anchored when its job is first planned
        # while the scheduler runs (added or redefined): None anchors it at that moment. Several
        # processes running the same jobs set one moment, so their grids are the same one.
        self.grid_anchor: float | None = None
        self.events = EventBroker()
        self._random = random.Random(seed)
        self._jobs: dict[str, Job] = {}
        self._heaps = DueHeaps(self._wake_up)
        self._push = self._heaps.push
        self._push_wall = self._heaps.push_wall
        self._dispatch = Dispatcher(
            clock=self.clock,
            events=self.events,
            rng=self._random,
            jobs=self._jobs,
            plan=self._apply,
            push_wall=self._push_wall,
            finish=self._finish,
        )
        # Bound once: both are called for every due occurrence.
        self._fire = self._dispatch.fire
        self._waiting = self._dispatch.waiting
        self._collector = PassCollector()
        self._runner = self._dispatch.runner = Runner(
            clock=self.clock,
            events=self.events,
            rng=self._random,
            max_concurrency=self.max_concurrency,
            output_limits=(output_head_bytes, output_tail_bytes),
            store=store,
            on_returned=self._dispatch.run_returned,
            on_finished=self._dispatch.run_finished,
            on_thread_exited=self._dispatch.thread_exited,
        )
        for wrapper in middleware:
            self.add_middleware(wrapper)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._stopped: asyncio.Event | None = None
        self._running = False
        self._stopping = False
        self._clock_steps = ClockSteps(self.clock)
        self.store = store
        self._saver = None if store is None else JobSaver(store, self.events, self._jobs)

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
        self._runner.bind(self._loop)
        self._running = True
        self._stopping = self._runner.stopping = False
        self._stopped = asyncio.Event()
        wall, elapsed = self.clock.wall(), self.clock.elapsed()
        self._clock_steps.reset(wall, elapsed)
        for job in self._jobs.values():
            if job.next_fire is None and not job.finished:
                self._plan_first(job, wall, elapsed)
        self._dispatch.spread_soft_start(wall, elapsed)
        if self._saver is not None:
            self._saver.bind(self._loop)
        self.events.publish(SchedulerStarted(wall))
        self._main_task = self._loop.create_task(self._main(), name="jobtui-scheduler")

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully: no new runs; running ones get ``grace`` seconds (default
        ``stop_grace``), then are cancelled (commands: SIGTERM, then SIGKILL after kill_grace)."""
        if not self._running or self._stopping:
            if self._stopped is not None and self._stopping:
                await self._stopped.wait()
            return
        self._stopping = self._runner.stopping = True
        grace = self.stop_grace if grace is None else grace
        try:
            if self._main_task is not None:
                self._main_task.cancel()
                await asyncio.gather(self._main_task, return_exceptions=True)
            self._dispatch.drop_all("the scheduler stopped before it could run")
            self._runner.end_retry_waits(self._jobs.values())
            await self._runner.drain(grace)
        finally:  # a stop that is itself cancelled still leaves the store the final state
            self._running = False
            self.events.publish(SchedulerStopped(self.clock.wall()))
            self.save_state()
            assert self._stopped is not None
            self._stopped.set()

    def save_state(self) -> None:
        """Hand the store every job state changed since the last loop turn, now (at stop, and
        after a crash, before the store is closed)."""
        if self._saver is not None:
            self._saver.flush()

    async def wait_stopped(self) -> None:
        """Wait until the scheduler has been stopped (by stop() from elsewhere)."""
        if self._stopped is None:
            raise SchedulerNotRunning("wait for it to stop")
        await self._stopped.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
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
        job = new_job(
            target,
            id,
            taken=self._jobs,
            default_zone=self.timezone,
            timezone=timezone,
            paused=paused,
            every=every,
            cron=cron,
            at=at,
            options=options,
        )
        job_id = job.id
        self._jobs[job_id] = job
        if self._running:
            self._plan_first(job, self.clock.wall(), self.clock.elapsed())
        if self.events.wants(JobAdded):
            self.events.publish(JobAdded(self.clock.wall(), job_id))
        return job

    def add_middleware(self, middleware: Middleware) -> None:
        """Wrap ``async def middleware(run, call_next)`` around every run from now on, inside
        the ones added before (see jobtui.engine.middleware)."""
        self._runner.add_middleware(check_middleware(middleware))

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
        self._dispatch.drop_waiting(job, "the job was removed")
        if cancel_running:
            for run in list(job.active):
                self._runner.interrupt(run, Outcome.CANCELLED, "the job was removed")
        self.events.publish(JobRemoved(self.clock.wall(), job_id))
        return job

    def pause(self, job_id: str, reason: str = "") -> Job:
        """Stop planning occurrences; a running run goes on. Nothing is missed while paused."""
        job = self.get(job_id)
        if job.paused:
            return job
        job.paused = True
        job.pause_reason = reason or "paused by the user"
        job._heap_version += 1
        self._dispatch.drop_waiting(job, "the job was paused")
        self.events.publish(
            JobStateChanged(self.clock.wall(), job_id, job.state.value, job.pause_reason)
        )
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
        self.events.publish(JobStateChanged(self.clock.wall(), job_id, job.state.value, "resumed"))
        return job

    def modify(self, job_id: str, **changes: Any) -> Job:
        """Change a job's trigger, target or options; its history and counters are kept and
        its next time is recomputed from now."""
        job = self.get(job_id)
        paused = reconfigure(job, changes, self.timezone)
        if paused is not None and bool(paused) != job.paused:
            (self.pause if paused else self.resume)(job_id)
        if self._running and not job.finished:
            self._plan_from_now(job)
        self.events.publish(JobModified(self.clock.wall(), job_id))
        return job

    def restore(self, job_id: str, snapshot: JobSnapshot) -> Job:
        """Give a job the state a store kept for it across a restart. With
        ``snapshot.catch_up``, occurrences since ``last_fired`` go through the catch-up policy
        when the scheduler starts (jobs whose definition changed pass False: they start
        afresh from now)."""
        job = self.get(job_id)
        if self._running:
            raise JobtuiError("restore job state before the scheduler starts")
        restore_state(job, snapshot)
        return job

    def run_now(self, job_id: str, *, wait: bool = True) -> Run:
        """Start a manual run now (the schedule does not move) and return it. ``await`` it for
        the finished run; with ``wait=True`` cancelling that await cancels the run, a
        ``wait=False`` handle can be given up on and the run goes on."""
        if not self._running or self._stopping:
            raise SchedulerNotRunning("run a job")
        job = self.get(job_id)
        run = self._runner.start(job, self.clock.wall(), manual=True)
        if wait:
            run._cancel_with_waiter = partial(
                self._runner.interrupt, run, Outcome.CANCELLED, "whoever awaited the run gave up"
            )
        return run

    def cancel(self, target: str, reason: str = "cancelled by the user") -> list[Run]:
        """Cancel the running run(s) of a job (by job id) or one run (by run id); ``reason``
        is what their records say."""
        runs: list[Run]
        if target in self._jobs:
            runs = list(self._jobs[target].active)
        elif target in self._runner.executions:
            runs = [self._runner.executions[target][0]]
        else:
            runs = []
        if not runs:
            raise RunNotFound(f'"{target}"')
        for run in runs:
            self._runner.interrupt(run, Outcome.CANCELLED, reason)
        return runs

    def running_runs(self) -> list[Run]:
        return self._runner.running_runs()

    def next_times(self, job_id: str, n: int = 5, after: datetime | None = None) -> list[datetime]:
        """The job's next ``n`` occurrences after ``after`` (default now), in its timezone."""
        job = self.get(job_id)
        after_ts = (
            self.clock.wall() if after is None else to_timestamp(after, job.zone, key="after")
        )
        times = job.plan.preview(job, after_ts, n, self.clock.wall())
        return [datetime.fromtimestamp(ts, UTC).astimezone(job.zone) for ts in times]

    def subscribe(
        self, callback: Callable[[AnyEvent], object], *types: type[AnyEvent]
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for events of ``types`` (none given: every event);
        returns a function that unsubscribes. See ``EventBroker.subscribe``."""
        return self.events.subscribe(callback, *types)

    def stream(self) -> AsyncIterator[Event]:
        return self.events.stream()

    # ------------------------------------------------------------------------------------
    # Planning: the job's plan says when; the scheduler puts it on the heap of its clock
    # ------------------------------------------------------------------------------------
    def _plan_first(self, job: Job, wall: float, elapsed: float) -> None:
        if job.paused or job.disabled_reason or job.finished:
            return
        if self.grid_anchor is not None:
            job.plan.anchor_on(job, self.grid_anchor)
        self._apply(job, job.plan.first(job, wall, elapsed))

    def _plan_from_now(self, job: Job) -> None:
        """Re-plan from the present (after resume or modify): nothing in the past is due."""
        job._heap_version += 1
        job.next_fire = None
        if job.paused or job.disabled_reason or job.finished:
            return
        if self.grid_anchor is not None:
            job.plan.anchor_on(job, self.grid_anchor)
        self._apply(job, job.plan.from_now(job, self.clock.wall(), self.clock.elapsed()))

    def _apply(self, job: Job, step: Step) -> None:
        if isinstance(step, float):  # first: the hot path's answer
            self._push(job, step)
        elif step is None:
            return
        elif isinstance(step, Returned):
            self._push_wall(job, step.at)
        else:
            self._finish(job, step.reason)

    def _finish(self, job: Job, reason: str) -> None:
        job.finished = True
        job.finish_reason = reason
        job.next_fire = None
        job._heap_version += 1
        if self.events.wants(JobStateChanged):  # a one-shot's every run: _value_ is .value's str
            state = job.state._value_
            self.events.publish(JobStateChanged(self.clock.wall(), job.id, state, reason))

    # ------------------------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------------------------
    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wall, elapsed = self.clock.wall(), self.clock.elapsed()
            self._notice_clock_changes(wall, elapsed)
            try:
                with self._collector:  # paused, then what the pass made uncounted (collector.py)
                    self._process_due(wall, elapsed)
                if self._collector.uncounted:
                    await asyncio.sleep(0)  # until the runs it started took their first step
            except Exception:  # a bug in one job's planning must not stop every job
                log.exception("scheduling pass failed")
            finally:
                self._collector.count_again()
            # Read the clocks again: the pass above may have taken a while.
            wall, elapsed = self.clock.wall(), self.clock.elapsed()
            delay = self._heaps.delay(wall, elapsed, MAX_SLEEP)
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
        # Cron deadlines are wall times, so they stay right after a step; an occurrence at or
        # before a job's last handled one is never handled again, so a step back repeats none.
        for kind, seconds in self._clock_steps.since_last(wall, elapsed):
            self.events.publish(ClockJumped(wall, kind, seconds))

    def _process_due(self, wall: float, elapsed: float) -> None:
        # The hot path is written out in the loop rather than in a method called per due job:
        # one call less for every run (bench/engine.py's thousand due at once).
        fire, push, waiting = self._fire, self._push, self._waiting
        for job in self._heaps.pop_due(wall, elapsed, self._jobs):
            plan = job.plan
            ts = plan.fast_due(job, wall, elapsed)
            if ts is None:
                self._handle_due(job, wall, elapsed)
                continue
            # One occurrence, on time (see the plans' fast_due).
            job.next_fire = None
            if job.last_fired is None or ts > job.last_fired:
                fire(job, ts)
            if not job.finished and not job.paused and not job.disabled_reason:
                step = plan.after_due(job, wall, waiting)
                if type(step) is float:  # what _apply would do first, one call less per run
                    push(job, step)
                else:
                    self._apply(job, step)

    def _handle_due(self, job: Job, wall: float, elapsed: float) -> None:
        """A due job its plan's fast_due could not decide: the general path."""
        plan = job.plan
        due_ts = job.next_fire
        job.next_fire = None
        occurrences, passed_over = plan.collect_due(job, due_ts, wall, elapsed)
        if (
            len(occurrences) == 1
            and passed_over is None
            and on_time(job.options, occurrences[0][1])
        ):
            self._fire(job, occurrences[0][0])  # the common case: one occurrence, on time
        else:
            self._dispatch.catch_up(job, occurrences, passed_over, wall)
        if not job.finished and not job.paused and not job.disabled_reason:
            self._apply(job, plan.after_due(job, wall, self._waiting))
            if plan.returned is not None and job.next_fire is None:
                self._push_wall(job, plan.returned)
