"""Middleware: async callables wrapped around every attempt of every run, for metrics, tracing,
locks or context the job body should see.

    async def timing(run: Run, call_next: Callable[[], Awaitable[Any]]) -> Any:
        started = time.monotonic()
        try:
            return await call_next()
        finally:
            metrics.observe(run.job_id, time.monotonic() - started)

``call_next()`` runs the rest of the chain and then the job; it returns what the job returned
and raises what the job raised (a timeout or cancel raises RunNotSucceeded). What the outermost
middleware returns is the run's return value; what it raises fails the run (never the
scheduler). A middleware that swallows the job's exception makes the run succeed; a timeout or
cancel stays one whatever the middleware does. Context variables a middleware sets before
``call_next()`` are seen by the job body (async and thread jobs; a process-mode child has
its own interpreter). The job's timeout counts from before the first middleware.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .errors import InvalidJobOption, RunNotSucceeded
from .executors import AttemptResult, Execution
from .job import is_async_callable
from .run import Outcome, Run, RunError

CallNext = Callable[[], Awaitable[Any]]
Middleware = Callable[[Run, CallNext], Awaitable[Any]]


def check_middleware(middleware: object) -> Middleware:
    if not callable(middleware) or not is_async_callable(middleware):
        raise InvalidJobOption(
            f"expected an async function taking (run, call_next), got {middleware!r}",
            key="middleware",
        )
    return middleware  # type: ignore[return-value]


async def run_through(
    middleware: Sequence[Middleware], run: Run, execution: Execution
) -> AttemptResult:
    """One attempt of ``execution`` with ``middleware`` around it, outermost first."""
    reached: list[AttemptResult] = []  # what the job itself came to, once called
    task = asyncio.current_task()

    async def innermost() -> Any:
        if reached:
            raise RuntimeError("call_next() was called twice: a run's job runs once per attempt")
        if execution.interrupted is not None:
            result = execution._interrupted_result()
        else:
            execution.before_start = None
            result = await execution.execute()
        reached.append(result)
        if result.outcome is Outcome.SUCCEEDED:
            return result.value
        if result.outcome is Outcome.FAILED and run._exception is not None:
            raise run._exception
        raise RunNotSucceeded(run.run_id, result.outcome.value, run.reason)

    def interrupt_before_start() -> None:
        # A middleware still waiting (for a lock, say) when the timeout or cancel comes.
        if task is not None:
            task.cancel()

    execution.before_start = interrupt_before_start
    call: CallNext = innermost
    for wrapper in reversed(middleware):
        call = _bind(wrapper, run, call)
    try:
        value = await call()
    except asyncio.CancelledError:
        if execution.interrupted is None or task is None:
            raise
        task.uncancel()
        return reached[-1] if reached else execution._interrupted_result()
    except BaseException as exc:  # SystemExit too: the run failed, the scheduler goes on
        if reached and reached[-1].outcome is not Outcome.SUCCEEDED:
            job_raised = run._exception is exc or isinstance(exc, RunNotSucceeded)
            if job_raised or reached[-1].outcome is not Outcome.FAILED:
                return reached[-1]  # passed on as it was: the job's own record stands
        run.error = RunError.from_exception(exc)
        run._exception = exc
        return AttemptResult(Outcome.FAILED)
    finally:
        execution.before_start = None
    if reached and reached[-1].outcome in (Outcome.TIMED_OUT, Outcome.CANCELLED):
        return reached[-1]
    if execution.interrupted is not None:
        return execution._interrupted_result()
    run.error = None
    run._exception = None
    return AttemptResult(Outcome.SUCCEEDED, value)


def _bind(wrapper: Middleware, run: Run, call_next: CallNext) -> CallNext:
    async def call() -> Any:
        return await wrapper(run, call_next)

    return call
