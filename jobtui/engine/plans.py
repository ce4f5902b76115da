"""Plans: where each job's occurrences fall, one class per kind of trigger.

A trigger is plain configuration; its plan is the job's live schedule state (an ``every`` job's
grid anchor and position, a time the job's return value chose). The scheduler's loop and
`Scheduler.next_times` both ask the plan, so what `jobtui list` shows is what runs.

A plan answers with a `Step`: a wall-clock label to plan next on the plan's own clock (the
elapsed clock for a grid, the wall clock otherwise), a `Returned` time (always on the wall
clock), a `Finish` with the reason the job has no more occurrences, or None (nothing to plan).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .job import Job, JobSnapshot
    from .triggers import CronTrigger

CATCHUP_LIMIT = 1000  # at most this many missed occurrences are enumerated per wake-up
LATE_TOLERANCE = 1.0  # an occurrence this late still counts as on time for catchup="none"

# Occurrences now due, oldest first, as (scheduled_for, lateness in seconds); and the ones
# passed over beyond CATCHUP_LIMIT as (first of them, how many if known).
Due = tuple[list[tuple[float, float]], tuple[float, int | None] | None]


@dataclass(frozen=True, slots=True)
class Finish:
    reason: str


@dataclass(frozen=True, slots=True)
class Returned:
    at: float


Step = float | Returned | Finish | None
END_PASSED = Finish("its end time has passed")


class Plan:
    """A job's schedule. The base class handles the time the job's return value chose;
    each trigger's plan adds its own occurrences."""

    steady: ClassVar[bool] = False  # deadlines on the elapsed clock, not the wall clock
    # Whether finished_after_run or idle_step can say anything: set for each plan class from
    # whether it overrides them, so the end of every run skips two calls that answer None
    # for the grid and cron plans (the dispatcher reads it for every run).
    acts_after_run: ClassVar[bool] = False
    __slots__ = ("catch_up_from_last", "returned")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.acts_after_run = (
            cls.finished_after_run is not Plan.finished_after_run
            or cls.idle_step is not Plan.idle_step
        )

    def __init__(self) -> None:
        # The next time chosen outside the trigger: by the job's return value, or "now" for
        # run_immediately; the plan goes back to its trigger after it.
        self.returned: float | None = None
        self.catch_up_from_last = False  # restored: occurrences since last_fired are due

    def carry_from(self, previous: Plan) -> None:
        """The trigger changed before the job was planned: keep what a restore gave it."""
        self.catch_up_from_last = previous.catch_up_from_last

    @property
    def grid_anchor(self) -> float | None:
        return None

    def deadline(self, label: float) -> float:
        """The heap key for the occurrence labelled ``label`` (on this plan's clock)."""
        return label

    def seconds_until(self, label: float, wall: float, elapsed: float) -> float:
        return label - wall

    def restore(self, snapshot: JobSnapshot) -> str | None:
        """Take the state a store kept; the reason the job is finished, if it is."""
        self.catch_up_from_last = snapshot.catch_up and snapshot.last_fired is not None
        return None

    def anchor_on(self, job: Job, anchor: float) -> None:
        """Plan a grid not yet planned from ``anchor`` (or the job's `start`), not from the
        moment it is planned (see Scheduler.grid_anchor); only grids have one."""

    def first(self, job: Job, wall: float, elapsed: float) -> Step:
        """The first occurrence once the scheduler runs (or the job is added to it)."""
        catch_up = self.catch_up_from_last and job.last_fired is not None
        self.catch_up_from_last = False
        return self._first(job, wall, elapsed, catch_up)

    def _first(self, job: Job, wall: float, elapsed: float, catch_up: bool) -> Step:
        return Returned(self.returned) if self.returned is not None else None

    def from_now(self, job: Job, wall: float, elapsed: float) -> Step:
        """Re-plan from the present (after resume or modify): nothing in the past is due."""
        if self.returned is not None:
            return Returned(max(self.returned, wall))
        return self.first(job, wall, elapsed)

    def fast_due(self, job: Job, wall: float, elapsed: float) -> float | None:
        """The one occurrence due on time, when the plan can tell cheaply; else None."""
        return None

    def collect_due(self, job: Job, due_ts: float | None, wall: float, elapsed: float) -> Due:
        last = job.last_fired if job.last_fired is not None else -math.inf
        if self.returned is not None:
            ts, self.returned = self.returned, None
            return ([(ts, wall - ts)] if ts > last else []), None
        return self._collect_due(job, due_ts, wall, elapsed, last)

    def _collect_due(
        self, job: Job, due_ts: float | None, wall: float, elapsed: float, last: float
    ) -> Due:
        return [], None

    def after_due(self, job: Job, wall: float, waiting: Callable[[Job], bool]) -> Step:
        """The next occurrence after the due ones were handled; ``waiting(job)``: whether
        a run of the job is going or about to start."""
        return None

    def finished_after_run(self, job: Job) -> str | None:
        """Why the job is finished now that its last run ended, if it is."""
        return None

    def idle_step(self, job: Job) -> Step:
        """What to plan once the job has no run going."""
        return None

    def preview(self, job: Job, after_ts: float, n: int, now: float) -> list[float]:
        """Up to ``n`` occurrences after ``after_ts``, as the loop will plan them."""
        return []


class ReturnedTimePlan(Plan):
    """A job without a trigger: it runs on demand, and when its return value chose a time."""

    __slots__ = ()

    def idle_step(self, job: Job) -> Step:
        # A returned time is planned once the run that returned it is over.
        if self.returned is not None and job.next_fire is None:
            return Returned(self.returned)
        return None


class IntervalPlan(Plan):
    """A grid of ``period`` seconds. Its position is counted on the elapsed clock from an
    anchor, so it never drifts and ignores wall-clock steps; labels are wall-clock times."""

    steady = True
    __slots__ = ("anchor_elapsed", "anchor_restored", "anchor_wall", "k", "period")

    def __init__(self, period: float) -> None:
        # Plan's fields set here rather than through super(): one job made per add_job, and
        # the call was a measurable part of adding 100,000 jobs.
        self.returned = None
        self.catch_up_from_last = False
        self.period = period
        self.anchor_wall = 0.0
        self.anchor_elapsed: float | None = None  # None until the grid is planned
        self.anchor_restored = False
        self.k = 0  # index of the next grid point

    def carry_from(self, previous: Plan) -> None:
        super().carry_from(previous)
        if isinstance(previous, IntervalPlan):
            self.anchor_wall = previous.anchor_wall
            self.anchor_restored = previous.anchor_restored

    @property
    def grid_anchor(self) -> float | None:
        return self.anchor_wall if self.anchor_elapsed is not None else None

    def label(self, k: int) -> float:
        return self.anchor_wall + k * self.period

    def deadline(self, label: float) -> float:
        # The label is the wall time shown to users; the heap key is the grid point k on the
        # steady clock, which the plan holds (the label cannot give it back after a step).
        assert self.anchor_elapsed is not None
        return self.anchor_elapsed + self.k * self.period

    def seconds_until(self, label: float, wall: float, elapsed: float) -> float:
        if self.anchor_elapsed is None:
            return label - wall
        return self.anchor_elapsed + self.k * self.period - elapsed

    def restore(self, snapshot: JobSnapshot) -> str | None:
        super().restore(snapshot)
        if snapshot.catch_up and snapshot.grid_anchor is not None:
            self.anchor_wall = snapshot.grid_anchor
            self.anchor_restored = True
        return None

    def anchor_on(self, job: Job, anchor: float) -> None:
        if self.anchor_elapsed is None and not self.anchor_restored:
            start = job.options.start
            self.anchor_wall = start if start is not None else anchor
            self.anchor_restored = True

    def next_step(self, job: Job) -> float | Finish:
        label = self.anchor_wall + self.k * self.period
        end = job.options.end
        return END_PASSED if end is not None and label > end else label

    def _first(self, job: Job, wall: float, elapsed: float, catch_up: bool) -> Step:
        opts = job.options
        if not self.anchor_restored:
            self.anchor_wall = opts.start if opts.start is not None else wall
        self.anchor_restored = False
        anchor = self.anchor_wall
        self.anchor_elapsed = elapsed + (anchor - wall)
        since = (wall - anchor) / self.period
        if catch_up:  # restarted: the first occurrence after the last one handled
            assert job.last_fired is not None
            self.k = max(math.floor((job.last_fired - anchor) / self.period + 1e-9) + 1, 0)
        elif since < 0:  # the grid starts in the future
            self.k = 0 if opts.run_immediately else 1
        elif opts.run_immediately:  # fire now, on the latest grid point (identity stays stable)
            self.k = math.floor(since)
        else:  # a start in the past keeps its phase; what fell before now is not a miss
            self.k = math.floor(since) + 1
        return self.next_step(job)

    def from_now(self, job: Job, wall: float, elapsed: float) -> Step:
        if self.returned is not None:
            return Returned(max(self.returned, wall))
        if self.anchor_elapsed is None:
            return self.first(job, wall, elapsed)
        k_now = math.floor((elapsed - self.anchor_elapsed) / self.period)
        self.k = max(self.k, k_now + 1)
        return self.next_step(job)

    def fast_due(self, job: Job, wall: float, elapsed: float) -> float | None:
        # The hot path: one grid point due, on time, decided without building lists; it sets
        # how many runs a second the loop can start. The general path (collect_due and the
        # catch-up policy) reaches the same outcome for this case.
        if self.returned is not None:
            return None
        k, period = self.k, self.period
        lateness = elapsed - (self.anchor_elapsed or 0.0) - k * period
        ts = self.anchor_wall + k * period
        opts = job.options
        end, grace = opts.end, opts.misfire_grace
        if (
            -1e-9 <= lateness < period
            and (end is None or ts <= end)
            and (grace is None or lateness <= grace)
            # Catchup is a StrEnum; compared by value because job.py imports this module.
            and (lateness <= LATE_TOLERANCE or opts.catchup != "none")
        ):
            self.k = k + 1
            return ts
        return None

    def _collect_due(
        self, job: Job, due_ts: float | None, wall: float, elapsed: float, last: float
    ) -> Due:
        assert self.anchor_elapsed is not None
        period, anchor, end = self.period, self.anchor_elapsed, job.options.end
        k_now = math.floor((elapsed - anchor) / period + 1e-9)
        if end is not None:
            k_now = min(k_now, math.floor((end - self.anchor_wall) / period))
        if k_now < self.k:
            return [], None
        first = max(self.k, k_now - CATCHUP_LIMIT + 1)
        passed_over = (self.label(self.k), first - self.k) if first > self.k else None
        occurrences = [
            (self.label(k), elapsed - (anchor + k * period)) for k in range(first, k_now + 1)
        ]
        self.k = k_now + 1
        return [o for o in occurrences if o[0] > last], passed_over

    def after_due(self, job: Job, wall: float, waiting: Callable[[Job], bool]) -> Step:
        # next_step's body, not a call to it: this runs once for every due occurrence.
        label = self.anchor_wall + self.k * self.period
        end = job.options.end
        return END_PASSED if end is not None and label > end else label

    def preview(self, job: Job, after_ts: float, n: int, now: float) -> list[float]:
        opts = job.options
        planned = self.anchor_elapsed is not None
        anchor = self.anchor_wall if planned else (opts.start if opts.start is not None else now)
        k = max(math.floor((after_ts - anchor) / self.period) + 1, 0)
        if not planned and not opts.run_immediately:
            k = max(k, 1)
        times: list[float] = []
        while len(times) < n:
            ts = anchor + k * self.period
            if opts.end is not None and ts > opts.end:
                break
            times.append(ts)
            k += 1
        return times


class CronPlan(Plan):
    """A cron expression's instants in the job's timezone, on the wall clock."""

    __slots__ = ("trigger",)

    def __init__(self, trigger: CronTrigger) -> None:
        super().__init__()
        self.trigger = trigger

    def _after(self, job: Job, after: float) -> float | Finish:
        opts = job.options
        after = max(after, job.last_fired or after)
        if opts.start is not None:
            after = max(after, opts.start - 1e-6)
        ts = self.trigger.next_after(after, job.zone)
        return END_PASSED if opts.end is not None and ts > opts.end else ts

    def _first(self, job: Job, wall: float, elapsed: float, catch_up: bool) -> Step:
        if catch_up:
            assert job.last_fired is not None
            return self._after(job, job.last_fired)  # may be due at once: catch-up decides
        if job.options.run_immediately:
            self.returned = wall
            return Returned(wall)
        return self._after(job, wall)

    def from_now(self, job: Job, wall: float, elapsed: float) -> Step:
        if self.returned is not None:
            return Returned(max(self.returned, wall))
        return self._after(job, wall)

    def _collect_due(
        self, job: Job, due_ts: float | None, wall: float, elapsed: float, last: float
    ) -> Due:
        if due_ts is None:
            return [], None
        trigger, zone, end = self.trigger, job.zone, job.options.end
        found: list[float] = []
        ts = due_ts
        while ts <= wall and (end is None or ts <= end) and len(found) < CATCHUP_LIMIT:
            if ts > last:
                found.append(ts)
            ts = trigger.next_after(ts, zone)
        passed_over: tuple[float, int | None] | None = None
        if ts <= wall and (end is None or ts <= end):
            # More than the limit: skip ahead to roughly the newest CATCHUP_LIMIT before now.
            gap = max((found[-1] - found[0]) / max(len(found) - 1, 1), 1.0) if found else 60.0
            passed_over = (ts, None)
            ts = trigger.next_after(max(ts, wall - gap * (CATCHUP_LIMIT - 1)), zone)
            found = []
            while ts <= wall and (end is None or ts <= end) and len(found) < CATCHUP_LIMIT:
                found.append(ts)
                ts = trigger.next_after(ts, zone)
        return [(t, wall - t) for t in found], passed_over

    def after_due(self, job: Job, wall: float, waiting: Callable[[Job], bool]) -> Step:
        return self._after(job, wall)

    def preview(self, job: Job, after_ts: float, n: int, now: float) -> list[float]:
        opts = job.options
        ts = max(after_ts, (opts.start - 1e-6) if opts.start is not None else after_ts)
        times: list[float] = []
        while len(times) < n:
            ts = self.trigger.next_after(ts, job.zone)
            if opts.end is not None and ts > opts.end:
                break
            times.append(ts)
        return times


class DatePlan(Plan):
    """One moment; the job is finished once it ran (unless its return value chose another)."""

    __slots__ = ("at",)
    RAN = "it ran at its `at` time"

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at = at

    def restore(self, snapshot: JobSnapshot) -> str | None:
        super().restore(snapshot)
        return self.RAN if snapshot.finished else None

    def _first(self, job: Job, wall: float, elapsed: float, catch_up: bool) -> Step:
        if job.last_fired is not None and job.last_fired >= self.at:
            return Finish("its `at` time has passed and it ran")
        return self.at

    def fast_due(self, job: Job, wall: float, elapsed: float) -> float | None:
        # Many one-shot jobs due at once (a burst of `at` jobs, bench case (b)) each take this
        # path: the lone occurrence, on time, without the lists of collect_due and catch-up.
        # The general path reaches the same outcome for this case; late ones take it.
        if self.returned is not None:
            return None
        at, last = self.at, job.last_fired
        lateness = wall - at
        opts = job.options
        grace = opts.misfire_grace
        if (
            (last is None or at > last)
            and (grace is None or lateness <= grace)
            # Catchup is a StrEnum; compared by value because job.py imports this module.
            and (lateness <= LATE_TOLERANCE or opts.catchup != "none")
        ):
            return at
        return None

    def _collect_due(
        self, job: Job, due_ts: float | None, wall: float, elapsed: float, last: float
    ) -> Due:
        return ([(self.at, wall - self.at)] if self.at > last else []), None

    def after_due(self, job: Job, wall: float, waiting: Callable[[Job], bool]) -> Step:
        if self.returned is None and not waiting(job):
            return Finish(self.RAN)  # else its run's end finishes it (it may return a new time)
        return None

    def finished_after_run(self, job: Job) -> str | None:
        if (
            not job.active
            and self.returned is None
            and not job.finished
            and job.next_fire is None
            and job.last_fired is not None
        ):
            return self.RAN
        return None

    def preview(self, job: Job, after_ts: float, n: int, now: float) -> list[float]:
        return [self.at] if self.at > after_ts and job.last_fired is None else []
