"""The runner: executes runs. Claims, the concurrency limit (slots), attempts, timeouts, retries
with backoff, return values, and threads that outlive their run. It decides nothing about when
runs happen; the scheduler tells it to start one and hears back when it ended."""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
import os
import random
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from .clock import Clock
from .datastore import ClaimAnswer, DataStore
from .durations import format_duration
from .events import EventBroker, RunProgress, RunRetrying, RunStarted
from .executors import (
    _SUCCEEDED,
    SUCCEEDED_WITH_NONE,
    AsyncExecution,
    Execution,
    make_execution,
)
from .job import Job, TargetKind
from .middleware import Middleware, run_through
from .policies import retry_allowed, retry_delay
from .processes import ProcessExecution
from .progress import Coalescer
from .pyoutput import python_run_ended, python_run_started
from .run import Outcome, Run, RunError, _current_run
from .slots import Slots

log = logging.getLogger("jobtui.engine")

# Read for every run: an Enum member read through its class costs as much as a function call
# in Python 3.11 (the class's metaclass keeps the lookup off the attribute cache).
_ASYNC, _CANCELLED = TargetKind.ASYNC, Outcome.CANCELLED

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
        self.store = store
        self.stopping = False  # set by the scheduler: no retries once it is stopping
        self._random = rng
        self._output_limits = output_limits
        self._on_returned = on_returned
        self._on_finished = on_finished
        self._on_thread_exited = on_thread_exited
        self.middleware: list[Middleware] = []
        # Runs under way (run id -> run, job, task); the attempt each is in is run._execution.
        # A run waiting for the store to record its claim has no task yet.
        self.executions: dict[str, tuple[Run, Job, asyncio.Task[None] | None]] = {}
        # Claims: the runs started in this loop turn, sent to the store together after it; the
        # work the store has not answered yet; and, for a store that claims a run at a time,
        # each claim's future (cancelled when its run is).
        self._unclaimed: list[Run] = []
        self._claims_out: set[asyncio.Future[Any]] = set()
        self._claim_futures: dict[str, asyncio.Future[bool]] = {}
        self._claim_many: Callable[[Sequence[Run], ClaimAnswer], asyncio.Future[None]] | None = (
            getattr(store, "claim_many", None)
        )
        self._slots = None if max_concurrency is None else Slots(max_concurrency)
        self._run_prefix = os.urandom(4).hex()
        self._run_counter = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.progress: Coalescer[Run] = Coalescer(self._publish_progress)
        self._on_run_changed = self._run_changed  # one bound method, not one per run
        self._wall = clock.wall  # read for every run: bound once
        # Asked for every run: flags the broker keeps current, not a question each time.
        self._started_wanted = events.interest(RunStarted)
        self._progress_wanted = events.interest(RunProgress)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.progress.bind(loop)

    def new_run_id(self) -> str:
        """Unique across processes sharing a store: a random prefix, then a counter (start()
        writes this out for every run: change both)."""
        return f"{self._run_prefix}{next(self._run_counter):06x}"

    def running_runs(self) -> list[Run]:
        return [run for run, _, _ in self.executions.values()]

    def add_middleware(self, middleware: Middleware) -> None:
        self.middleware.append(middleware)

    def claiming(self, run: Run) -> bool:
        """Whether ``run`` waits for the store to record its claim (it has not started)."""
        entry = self.executions.get(run.run_id)
        return entry is not None and entry[2] is None

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
        if self.store is not None and not manual:
            # Claimed first: with the other runs started in this turn (one scheduling pass),
            # once the pass is over. The run's task is made when the claim is answered.
            self.executions[run.run_id] = (run, job, None)
            self._unclaimed.append(run)
            if len(self._unclaimed) == 1:
                self._loop.call_soon(self._send_claims)
            return run
        self._launch(job, run)
        return run

    def _launch(self, job: Job, run: Run) -> None:
        """Start the run's task: on the plain path if nothing wraps it (see _execute_plain)."""
        assert self._loop is not None
        opts = job.options
        if (
            job.kind is _ASYNC
            and self._slots is None  # no concurrency limit and no middleware around it
            and not self.middleware
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

    # -- claims ---------------------------------------------------------------------------
    def _send_claims(self) -> None:
        """Ask the store to claim the runs started since the last time (the runs of one
        scheduling pass, usually), in the order they were started."""
        runs, self._unclaimed = self._unclaimed, []
        if not runs:
            return
        # A store that raises here has a bug: its runs fail with its error, as they did when
        # the claim was awaited in each run's task; left waiting, each would hold its job (its
        # next occurrences skipped as "waiting for the state store") and stop's grace.
        if self._claim_many is not None:
            try:
                work = self._claim_many(runs, self._claimed)
            except Exception as exc:
                for run in runs:
                    self._claim_failed(run, exc)
                return
            self._hold(work)
            return
        assert self.store is not None
        for run in runs:
            try:
                claim = self.store.claim(run)
            except Exception as exc:
                self._claim_failed(run, exc)
                continue
            self._claim_futures[run.run_id] = claim
            claim.add_done_callback(functools.partial(self._claim_settled, run))
            self._hold(claim)

    def _hold(self, work: asyncio.Future[Any]) -> None:
        # A virtual clock must not move on while the store writes the claims: the runs would
        # start late by however far a test advanced meanwhile.
        self.clock.hold(work)
        self._claims_out.add(work)
        work.add_done_callback(self._claims_out.discard)

    def _claim_settled(self, run: Run, claim: asyncio.Future[bool]) -> None:
        self._claim_futures.pop(run.run_id, None)
        if claim.cancelled():  # by interrupt(): the run has ended already
            return
        error = claim.exception()
        if error is None:
            self._claimed(run, claim.result())
        else:
            self._claim_failed(run, error)

    def _claim_failed(self, run: Run, error: BaseException) -> None:
        """A bug in the store: say so, run nothing."""
        entry = self.executions.get(run.run_id)
        if entry is not None and entry[2] is None and run.outcome is None:
            log.error("the store failed to claim run %s of %s: %r", run.run_id, run.job_id, error)
            run.error = RunError.from_exception(error)
            self._finish(entry[1], run, Outcome.FAILED, None)

    def _claimed(self, run: Run, claimed: bool) -> None:
        """The store's answer to a run's claim: True, this process runs it now."""
        entry = self.executions.get(run.run_id)
        if entry is None or run.outcome is not None:  # it was cancelled meanwhile
            return
        if claimed:
            self._launch(entry[1], run)
        else:
            run.reason = "this occurrence already ran: the state store has a record of it"
            self._finish(entry[1], run, Outcome.SKIPPED, None)

    # -- a run: attempts, timeouts, retries, outcome ----------------------------------------
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
            # execution.begin() without the call (its task is set: _launch made it)
            python_run_started(run)
            token = _current_run.set(run)
            try:
                # execution.call() written out: one call less a run
                opts = job.options
                args = (run, *opts.args) if job.takes_run else opts.args
                kwargs = opts.kwargs
                body_value = await (job.target(*args, **kwargs) if kwargs else job.target(*args))
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
            finally:  # execution.end(token), without the call
                _current_run.reset(token)
                python_run_ended(run)
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
        slots = self._slots
        try:
            while True:
                if slots is not None:
                    await slots.acquire()
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
                    if slots is not None:
                        slots.release()
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
        """Give the runs under way ``grace`` seconds to end, then cancel those still going.
        A run whose claim the store answers within the grace starts and has the rest of it."""
        if self._unclaimed:
            self._send_claims()  # not after this turn: the loop is about to stop
        if self.executions and grace > 0:
            grace_over: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def over() -> None:
                if not grace_over.done():
                    grace_over.set_result(None)

            handle = self.clock.call_later(grace, over)
            while self.executions and not grace_over.done():
                going = {task for _, _, task in self.executions.values() if task is not None}
                await asyncio.wait(
                    [*going, *self._claims_out, grace_over], return_when=asyncio.FIRST_COMPLETED
                )
            handle.cancel()
        if self.executions:
            reason = f"the scheduler stopped and its grace of {format_duration(grace)} ran out"
            for run in self.running_runs():
                self.interrupt(run, Outcome.CANCELLED, reason)
            going = {task for _, _, task in self.executions.values() if task is not None}
            await asyncio.gather(*going, return_exceptions=True)

    def interrupt(self, run: Run, outcome: Outcome, reason: str) -> None:
        execution = run._execution
        if execution is not None:
            execution.interrupt(outcome, reason)
            return
        entry = self.executions.get(run.run_id)
        if entry is None:
            return
        # Between attempts (waiting for a retry, a concurrency slot or its claim): end it here.
        run.outcome = outcome
        run.reason = reason
        task = entry[2]
        if task is None:
            # Waiting for its claim: nothing of it runs yet, so it ends here; the claim's
            # answer, when it comes, is ignored (a store asked a run at a time is told). A
            # claim not sent yet goes first, so the store has the row its end is written to.
            if self._unclaimed:
                self._send_claims()
            claim = self._claim_futures.pop(run.run_id, None)
            if claim is not None:
                claim.cancel()
            self._finish(job=entry[1], run=run, outcome=outcome, value=None)
            return
        if inspect.getcoroutinestate(task.get_coro()) == inspect.CORO_CREATED:  # type: ignore[arg-type]
            # Interrupted in the turn it was started: a task cancelled before its first step
            # never runs its coroutine, finally clauses included, so nothing else would end it.
            task.cancel()
            self._finish(job=entry[1], run=run, outcome=outcome, value=None)
            return
        self.end_retry_wait(entry[1], run.run_id)
        if not task.done():
            task.cancel()

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
