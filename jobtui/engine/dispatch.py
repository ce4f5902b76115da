"""The dispatcher: what happens to an occurrence once it is due. Catch-up, start delays (soft
start, jitter), the overlap policy, the occurrences waiting their turn (queued, catch-up
backlog), the records of those that never run, and what the runner reports back. When
occurrences fall due is the scheduler's business; it hands them here and is told, through three
narrow callables, to plan again."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from .clock import Clock, TimerHandle
from .durations import format_duration
from .events import (
    EventBroker,
    JobModified,
    JobStateChanged,
    OccurrenceMissed,
    OccurrenceSkipped,
    RunFinished,
)
from .job import Job, OverlapPolicy
from .plans import CATCHUP_LIMIT, Step
from .policies import OverlapAction, decide_catchup, decide_overlap
from .run import Outcome, Run
from .runner import Runner

THREAD_STILL_RUNNING = (
    "an earlier run that timed out or was cancelled is still running in its thread"
)


class Dispatcher:
    # Set by the scheduler right after it builds the runner: the runner is given this
    # dispatcher's callbacks, so neither can be built with the other already in hand.
    runner: Runner

    def __init__(
        self,
        *,
        clock: Clock,
        events: EventBroker,
        rng: random.Random,
        jobs: Mapping[str, Job],
        plan: Callable[[Job, Step], None],
        push_wall: Callable[[Job, float], None],
        finish: Callable[[Job, str], None],
    ) -> None:
        self.clock = clock
        self.events = events
        self._random = rng
        self._jobs = jobs  # the scheduler's own: a job not in it was removed
        self._plan = plan
        self._push_wall = push_wall
        self._finish = finish
        self._jittered: dict[TimerHandle, tuple[Job, float]] = {}  # occurrences waiting to start
        self._finished_wanted = events.interest(RunFinished)  # asked for every run

    # -- due occurrences: catch-up, jitter, overlap ---------------------------------------
    def catch_up(
        self,
        job: Job,
        occurrences: list[tuple[float, float]],
        passed_over: tuple[float, int | None] | None,
        wall: float,
    ) -> None:
        opts = job.options
        if passed_over is not None:
            first, count = passed_over
            how_many = f"{count} occurrences" if count is not None else "every occurrence"
            until = f" before {_iso(occurrences[0][0])}" if occurrences else ""
            self.record(
                job,
                first,
                Outcome.MISSED,
                f"{how_many} from {_iso(first)}{until} missed (too many to list: catch-up "
                f"looks at the newest {CATCHUP_LIMIT} only)",
                missed=True,
            )
        decision = decide_catchup(occurrences, opts.catchup, opts.misfire_grace, wall)
        for ts, lateness in decision.beyond_grace:
            self.record(
                job,
                ts,
                Outcome.MISSED,
                f"late by {format_duration(lateness)}, beyond misfire_grace "
                f"{format_duration(opts.misfire_grace or 0.0)}",
                missed=True,
            )
        to_run = decision.run
        for ts in decision.missed:
            why = (
                f'catchup="latest" ran only the newest occurrence ({_iso(to_run[-1])})'
                if to_run
                else 'catchup="none" runs no missed occurrence'
            )
            self.record(job, ts, Outcome.MISSED, why, missed=True)
        for index, ts in enumerate(to_run):
            self.fire(job, ts, backlog=index > 0)

    def spread_soft_start(self, wall: float, elapsed: float) -> None:
        """At start: jobs already due with a soft_start get start delays spread over it, so
        they do not all start in the same instant."""
        due = []
        for job in self._jobs.values():
            if job.options.soft_start <= 0 or job.next_fire is None:
                continue
            if job.plan.seconds_until(job.next_fire, wall, elapsed) <= 0:
                due.append(job)
        for index, job in enumerate(due):
            job._soft_delay = job.options.soft_start * index / len(due)

    def fire(self, job: Job, ts: float, *, backlog: bool = False) -> None:
        last = job.last_fired
        if last is None or ts > last:  # max() without the call: this runs for every run
            job.last_fired = ts
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
                    self.record(job, ts, Outcome.MISSED, "the job was removed", missed=True)
                elif not self.runner.stopping:
                    self._dispatch(job, ts)

            handle = self.clock.call_later(delay, later)
            self._jittered[handle] = (job, ts)
            return
        if job.active or job.paused or job.disabled_reason or job._threads_alive:
            self._dispatch(job, ts)
        else:  # what _dispatch does with it, one call less: the usual case, for every run
            self.runner.start(job, ts)

    def waiting(self, job: Job) -> bool:
        """Whether a run of the job is going or waiting for its jitter (asked only by plans
        that finish a job, so the scan of the waiting ones stays off the hot path)."""
        return bool(job.active) or any(j is job for j, _ in self._jittered.values())

    def _dispatch(self, job: Job, ts: float) -> None:
        if job.paused or job.disabled_reason:
            self.record(job, ts, Outcome.MISSED, f"the job is {job.state.value}", missed=True)
            return
        active = job.active
        if not active:  # whatever the overlap policy, nothing runs: start (or wait for a thread)
            if job._threads_alive:
                self.record(job, ts, Outcome.SKIPPED, THREAD_STILL_RUNNING)
            else:
                self.runner.start(job, ts)
            return
        overlap = job.options.overlap
        action = decide_overlap(overlap, len(active))
        if action is OverlapAction.START:
            self.runner.start(job, ts)
            return
        running = active[-1]
        if action is OverlapAction.SKIP:
            parallel = overlap.policy is OverlapPolicy.PARALLEL
            limit = f" ({overlap.limit} at once)" if parallel else ""
            # A run that has not started yet is not "running": say what it waits for.
            why = (
                "waiting for the state store to record its claim"
                if self.runner.claiming(running)
                else "still running"
            )
            self.record(
                job,
                ts,
                Outcome.SKIPPED,
                f"{why}{limit}: run {running.run_id} for {_iso(running._scheduled_ts)}",
            )
            return
        if job._pending is not None:
            self.record(
                job,
                job._pending,
                Outcome.SKIPPED,
                f"coalesced: a newer occurrence ({_iso(ts)}) took its place in the queue",
            )
        job._pending = ts
        if action is OverlapAction.REPLACE:
            for run in list(active):
                self.runner.interrupt(run, Outcome.CANCELLED, replaced_reason(ts))

    # -- occurrences waiting their turn ---------------------------------------------------
    def _start_waiting(self, job: Job) -> None:
        """The job has no run going: start the occurrence waiting its turn, if any."""
        if job._backlog:
            self.runner.start(job, job._backlog.popleft())
        elif job._pending is not None:
            ts, job._pending = job._pending, None
            self._dispatch(job, ts)

    def drop_waiting(self, job: Job, reason: str) -> None:
        """Occurrences that were waiting their turn (queue, catch-up backlog) won't run."""
        if job._pending is not None:
            ts, job._pending = job._pending, None
            self.record(job, ts, Outcome.SKIPPED, reason)
        while job._backlog:
            self.record(job, job._backlog.popleft(), Outcome.MISSED, reason, missed=True)

    def drop_all(self, reason: str) -> None:
        """Nothing waiting will start (the scheduler is stopping): record every occurrence
        still waiting for its jitter or its turn as missed or skipped."""
        for timer, (job, ts) in list(self._jittered.items()):
            timer.cancel()
            self.record(job, ts, Outcome.MISSED, reason, missed=True)
        self._jittered.clear()
        for job in self._jobs.values():
            self.drop_waiting(job, reason)

    def record(
        self, job: Job, ts: float, outcome: Outcome, reason: str, *, missed: bool = False
    ) -> Run:
        """Record an occurrence that did not run (skipped or missed): nothing is dropped
        silently."""
        run = Run(job.id, self.runner.new_run_id(), ts, wall=self.clock.wall)
        run.outcome = outcome
        run.reason = reason
        run._finished_ts = self.clock.wall()
        if job.last_fired is None or ts > job.last_fired:
            job.last_fired = ts
        event = OccurrenceMissed if missed else OccurrenceSkipped
        self.events.publish(event(run._finished_ts, run))
        return run

    # -- what the runner reports back -----------------------------------------------------
    def run_returned(self, job: Job, ts: float | None) -> None:
        """The run's return value chose the job's next time (None: "never")."""
        if ts is None:
            job._heap_version += 1
            job.plan.returned = None
            self._finish(job, 'the job returned "never"')
            return
        wall = self.clock.wall()
        if self._jobs.get(job.id) is not job or job.paused or job.disabled_reason:
            return
        job.plan.returned = max(ts, wall)
        job.finished = False
        self._push_wall(job, job.plan.returned)

    def run_finished(self, job: Job, run: Run, outcome: Outcome) -> None:
        if self._finished_wanted.wanted:
            self.events.publish(RunFinished(run._finished_ts or self.clock.wall(), run))
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
            self.drop_waiting(job, "the job was disabled")
            self.events.publish(
                JobStateChanged(self.clock.wall(), job.id, job.state.value, job.disabled_reason)
            )
            return
        if opts.max_runs is not None and job.run_count >= opts.max_runs and not job.finished:
            if not job.active:
                self.drop_waiting(job, f"max_runs ({opts.max_runs}) was reached")
                self._finish(job, f"max_runs ({opts.max_runs}) reached")
            return
        plan = job.plan
        if plan.acts_after_run:
            finished = plan.finished_after_run(job)
            if finished is not None:
                self._finish(job, finished)
                return
        if self.runner.stopping or job.active:
            return
        if job._backlog or job._pending is not None:
            self._start_waiting(job)
        if plan.acts_after_run:
            step = plan.idle_step(job)
            if step is not None:
                self._plan(job, step)

    def thread_exited(self, job: Job) -> None:
        """A thread that outlived its run's timeout or cancel has finished at last."""
        if self._jobs.get(job.id) is job:
            self.events.publish(JobModified(self.clock.wall(), job.id))
            if not job.active and not self.runner.stopping:
                self._start_waiting(job)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def replaced_reason(ts: float) -> str:
    """What a run cancelled by overlap="replace" says (a shared store's hosts say it too)."""
    return f"replaced by the occurrence for {_iso(ts)}"
