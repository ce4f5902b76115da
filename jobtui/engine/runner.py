"""The runner: executes runs. Claims, the concurrency limit (slots), attempts, timeouts, retries
with backoff, return values, and threads that outlive their run. It decides nothing about when
runs happen; the scheduler tells it to start one and hears back when it ended."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import random
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from .clock import Clock
from .datastore import DataStore
from .durations import format_duration
from .events import EventBroker, RunProgress, RunRetrying, RunStarted
from .executors import SUCCEEDED_WITH_NONE, AsyncExecution, Execution, make_execution
from .job import Job, TargetKind
from .middleware import Middleware, run_through
from .policies import retry_allowed, retry_delay
from .processes import ProcessExecution
from .progress import Coalescer
from .run import Outcome, Run, RunError

log = logging.getLogger("jobtui.engine")

# Read for every run: an Enum member read through its class costs as much as a function call
# in Python 3.11 (the class's metaclass keeps the lookup off the attribute cache).
_ASYNC, _SUCCEEDED, _CANCELLED = TargetKind.ASYNC, Outcome.SUCCEEDED, Outcome.CANCELLED

# What the scheduler does with a time a job's return value chose; None means "never".
OnReturned = Callable[[Job, float | None], None]


class Runner:
    def __init__(
        self,
        *,
        clock: Clock,
        events: EventBroker,
        rng: random.Random,
        max_concurrency: int | None,
        output_limits: tuple[int, int],
        store: DataStore | None,
        on_returned: OnReturned,
        on_finished: Callable[[Job, Run, Outcome], None],
        on_thread_exited: Callable[[Job], None],
    ) -> None:
        self.clock = clock
        self.events = events
        self.max_concurrency = max_concurrency
        self.store = store
        self.stopping = False  # set by the scheduler: no retries once it is stopping
        self._random = rng
        self._output_limits = output_limits
        self._on_returned = on_returned
        self._on_finished = on_finished
        self._on_thread_exited = on_thread_exited
        self.middleware: list[Middleware] = []
        # Runs under way (run id -> run, job, task); the attempt each is in is run._execution.
        self.executions: dict[str, tuple[Run, Job, asyncio.Task[None]]] = {}
        self.claiming: set[str] = set()  # runs waiting for the store to record their claim
        self._slots_used = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._run_prefix = os.urandom(4).hex()
        self._run_counter = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.progress: Coalescer[Run] = Coalescer(self._publish_progress)
        self._on_run_changed = self._run_changed  # one bound method, not one per run
        self._wall = clock.wall  # read for every run: bound once
        # No concurrency limit and no middleware: runs may take the plain path.
        self._unwrapped = max_concurrency is None
        # Asked for every run: flags the broker keeps current, not a question each time.
        self._started_wanted = events.interest(RunStarted)
        self._progress_wanted = events.interest(RunProgress)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.progress.bind(loop)

    def new_run_id(self) -> str:
        """Unique across processes sharing a store: a random prefix, then a counter."""
        return f"{self._run_prefix}{next(self._run_counter):06x}"

    def running_runs(self) -> list[Run]:
        return [run for run, _, _ in self.executions.values()]

    def add_middleware(self, middleware: Middleware) -> None:
        self.middleware.append(middleware)
        self._unwrapped = False

    def start(self, job: Job, ts: float, *, manual: bool = False) -> Run:
        run = Run(
            job.id,
            f"{self._run_prefix}{next(self._run_counter):06x}",  # new_run_id(), one call less
            ts,
            manual,  # by position: see Run.__init__
            self._wall,
            self._output_limits,
        )
        run._notify = self._on_run_changed
        job.active.append(run)
        if not manual:
            job.run_count += 1
        assert self._loop is not None
        opts = job.options
        if (  # a run the plain path takes: see _execute_plain
            job.kind is _ASYNC
            and self._unwrapped
            and (self.store is None or manual)
            and opts.timeout is None
            and opts.retries == 0
            and opts.run_mode != "process"
        ):
            execution = AsyncExecution(job, run, self.clock)
            task = self._loop.create_task(self._execute_plain(job, run, execution))
            execution.task = task
        else:
            task = self._loop.create_task(self._execute(job, run))
        self.executions[run.run_id] = (run, job, task)
        return run

    # -- the concurrency limit ------------------------------------------------------------
    async def _acquire_slot(self) -> None:
        assert self.max_concurrency is not None
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
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self._slots_used -= 1

    # -- a run: claim, attempts, timeouts, retries, outcome -------------------------------
    async def _claim(self, run: Run) -> bool:
        assert self.store is not None
        claim = self.store.claim(run)
        # A virtual clock must not move on while the store writes the claim: the run would
        # start late by however far a test advanced meanwhile.
        self.clock.hold(claim)
        self.claiming.add(run.run_id)
        try:
            return await claim
        finally:
            self.claiming.discard(run.run_id)

    async def _execute_plain(self, job: Job, run: Run, execution: AsyncExecution) -> None:
        """The hot path: one attempt of a coroutine on this loop with nothing around it (no
        claim, slot, middleware, timeout or retry). It is what ``_execute`` does for such a
        run, without its loop, its timers and its retry decision, and with the body awaited
        right here: the execution's own steps around it, as its ``execute()`` has them, but
        one coroutine less per run. It sets how many runs a second the engine starts and how
        late the last of a thousand due at once begins (bench/engine.py), so it is kept
        apart; tests/test_hot_path.py pins that both paths report alike."""
        outcome, value = _CANCELLED, None
        run._execution = execution  # from here on, interrupt() finds it
        try:
            run.attempt = 1
            run._started_ts = self._wall()
            if self._started_wanted.wanted:
                self.events.publish(RunStarted(run._started_ts, run))
            token = execution.begin()
            try:
                body_value = await execution.call()
                # execution.returned()'s answer for the usual body, without the call
                result = (
                    SUCCEEDED_WITH_NONE
                    if body_value is None and execution.interrupted is None
                    else execution.returned(body_value)
                )
            except asyncio.CancelledError:
                if execution.interrupted is None:
                    raise  # not the run's own interrupt: the scheduler is shutting down
                result = execution.cancelled()
            except BaseException as exc:  # SystemExit and KeyboardInterrupt too: it failed
                result = execution.raised(exc)
            finally:
                execution.end(token)
            outcome, value = result.outcome, result.value
        except asyncio.CancelledError:
            run.reason = run.reason or "the scheduler was shut down"
        except Exception as exc:  # a bug in the engine itself: keep the record honest
            log.exception("run %s of %s failed inside the scheduler", run.run_id, job.id)
            outcome = Outcome.FAILED
            run.error = RunError.from_exception(exc)
        finally:
            run._execution = None
            self._finish(job, run, run.outcome or outcome, value)

    async def _execute(self, job: Job, run: Run) -> None:
        result_value: Any = None
        outcome = Outcome.CANCELLED
        opts = job.options
        limited = self.max_concurrency is not None
        try:
            if self.store is not None and not run.manual and not await self._claim(run):
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
                    execution = (
                        ProcessExecution(job, run, self.clock)
                        if opts.run_mode == "process"
                        else make_execution(job, run, self.clock, self._on_thread_exited)
                    )
                    run._execution = execution
                    if run.attempt == 1:
                        run._started_ts = self.clock.wall()
                        if self._started_wanted.wanted:
                            self.events.publish(RunStarted(run._started_ts, run))
                    else:
                        run.output.append(
                            "log", f"--- attempt {run.attempt} ---", self.clock.wall()
                        )
                        self._run_changed(run)
                    timer = None
                    if opts.timeout is not None:
                        reason = f"timed out after {format_duration(opts.timeout)}"

                        def time_out(e: Execution = execution, why: str = reason) -> None:
                            e.interrupt(Outcome.TIMED_OUT, why)

                        timer = self.clock.call_later(opts.timeout, time_out)
                    try:
                        result = await (
                            run_through(self.middleware, run, execution)
                            if self.middleware
                            else execution.execute()
                        )
                    finally:
                        if timer is not None:
                            timer.cancel()
                        run._execution = None
                finally:
                    if limited:
                        self._release_slot()
                outcome, result_value = result.outcome, result.value
                error_type = run.error.type if run.error else ""
                if self.stopping or not retry_allowed(
                    opts, outcome, run.attempt, error_type, run.exit_code
                ):
                    break
                if not await self._retry_wait(job, run):
                    break
                run.error = None
                run._exception = None
        except asyncio.CancelledError:
            outcome = Outcome.CANCELLED
            run.reason = run.reason or "the scheduler was shut down"
        except Exception as exc:  # a bug in the engine itself: keep the record honest
            log.exception("run %s of %s failed inside the scheduler", run.run_id, job.id)
            outcome = Outcome.FAILED
            run.error = RunError.from_exception(exc)
        finally:
            self._finish(job, run, run.outcome or outcome, result_value)

    async def _retry_wait(self, job: Job, run: Run) -> bool:
        """Wait out the backoff. False if the wait was cut short."""
        delay = retry_delay(job.options, run.attempt, self._random)
        error = run.error.first_line if run.error else (run.reason or "failed")
        if self.events.wants(RunRetrying):
            self.events.publish(
                RunRetrying(self.clock.wall(), run, self.clock.wall() + delay, error)
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if job._retry_waits is None:
            job._retry_waits = {}
        job._retry_waits[run.run_id] = waiter

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        handle = self.clock.call_later(delay, wake)
        run.status_message = f"retrying in {format_duration(delay)} (attempt {run.attempt + 1})"
        try:
            await waiter
        finally:
            handle.cancel()
            job._retry_waits.pop(run.run_id, None)
        return run.outcome is None and not self.stopping

    def end_retry_waits(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            for run_id in list((job._retry_waits or {}).keys()):
                self.end_retry_wait(job, run_id)

    def end_retry_wait(self, job: Job, run_id: str) -> None:
        waiter = (job._retry_waits or {}).get(run_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drain(self, grace: float) -> None:
        """Give the runs under way ``grace`` seconds to end, then cancel those still going."""
        tasks = [task for _, _, task in self.executions.values()]
        if tasks and grace > 0:
            grace_over: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def over() -> None:
                if not grace_over.done():
                    grace_over.set_result(None)

            handle = self.clock.call_later(grace, over)
            pending: set[asyncio.Future[None]] = set(tasks)
            while pending and not grace_over.done():
                _, pending = await asyncio.wait(
                    [*pending, grace_over], return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(grace_over)
            handle.cancel()
        if tasks:
            reason = f"the scheduler stopped and its grace of {format_duration(grace)} ran out"
            for run in self.running_runs():
                self.interrupt(run, Outcome.CANCELLED, reason)
            await asyncio.gather(*tasks, return_exceptions=True)

    def interrupt(self, run: Run, outcome: Outcome, reason: str) -> None:
        execution = run._execution
        if execution is not None:
            execution.interrupt(outcome, reason)
            return
        entry = self.executions.get(run.run_id)
        if entry is None:
            return
        # Between attempts (waiting for a retry or a concurrency slot): end it right here.
        run.outcome = outcome
        run.reason = reason
        task = entry[2]
        if inspect.getcoroutinestate(task.get_coro()) == inspect.CORO_CREATED:  # type: ignore[arg-type]
            # Interrupted in the turn it was started: a task cancelled before its first step
            # never runs its coroutine, finally clauses included, so nothing else would end it.
            task.cancel()
            self._finish(job=entry[1], run=run, outcome=outcome, value=None)
            return
        self.end_retry_wait(entry[1], run.run_id)
        if not entry[2].done():
            entry[2].cancel()

    def _finish(self, job: Job, run: Run, outcome: Outcome, value: Any) -> None:
        run.outcome = outcome
        run._finished_ts = self._wall()
        run._notify = None
        run._value = value
        # Left among the runs whose progress is due to be told, if it is: that is told only of
        # runs still going (_publish_progress), and a lookup here would be paid by every run.
        self.executions.pop(run.run_id, None)
        if run in job.active:
            job.active.remove(run)
        job.last_run = run
        if outcome is _SUCCEEDED:
            job.consecutive_failures = 0
            if value is not None:
                self._apply_return_value(job, run, value)
        elif outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
            job.consecutive_failures += 1
        try:
            self._on_finished(job, run, outcome)
        finally:  # whoever awaits the run sees the job's state after it
            if run._done is not None or run._cancel_with_waiter is not None:
                run._finished()

    def _apply_return_value(self, job: Job, run: Run, value: Any) -> None:
        wall = self.clock.wall()
        if isinstance(value, str) and value.strip().lower() == "never":
            self._on_returned(job, None)
            return
        if isinstance(value, datetime):
            ts = value.timestamp() if value.tzinfo else value.replace(tzinfo=job.zone).timestamp()
        elif isinstance(value, timedelta):
            ts = wall + value.total_seconds()
        elif run.manual:
            return  # whoever started it by hand may read run.result: no note needed
        else:
            run.output.append(
                "log",
                f"the return value {value!r} is kept in run.result but does not reschedule the "
                'job: return None, a datetime, a timedelta or "never" to reschedule',
                wall,
            )
            return
        self._on_returned(job, ts)

    # -- progress -------------------------------------------------------------------------
    def _run_changed(self, run: Run) -> None:
        """Progress, status or output changed: published once per loop turn, from any thread."""
        if self._loop is None or not self._progress_wanted.wanted:
            return
        self.progress.mark(run)

    def _publish_progress(self, runs: list[Run]) -> None:
        now = self.clock.wall()
        for run in runs:
            if run.outcome is None:  # one that finished meanwhile says so in RunFinished
                self.events.publish(RunProgress(now, run))
