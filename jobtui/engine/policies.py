"""The policies as pure functions: given the facts, what happens. No loop, no clock, no state,
so each is tested directly (tests/test_policy_functions.py) and the scheduler only acts."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from .job import Catchup, JobOptions, Overlap, OverlapPolicy
from .plans import LATE_TOLERANCE
from .run import Outcome


def on_time(options: JobOptions, lateness: float) -> bool:
    """Whether a lone due occurrence runs without any catch-up or misfire decision."""
    grace = options.misfire_grace
    return (grace is None or lateness <= grace) and (
        lateness <= LATE_TOLERANCE or options.catchup is not Catchup.NONE
    )


@dataclass(slots=True)
class CatchupDecision:
    beyond_grace: list[tuple[float, float]] = field(default_factory=list)  # (ts, lateness)
    run: list[float] = field(default_factory=list)  # oldest first
    missed: list[float] = field(default_factory=list)  # eligible, but the policy runs fewer


def decide_catchup(
    occurrences: list[tuple[float, float]],
    catchup: Catchup,
    misfire_grace: float | None,
    wall: float,
) -> CatchupDecision:
    """Which due occurrences (scheduled_for, lateness; oldest first) run and which are missed:
    too late for ``misfire_grace``, or left out by ``catchup``."""
    decision = CatchupDecision()
    eligible: list[float] = []
    for ts, lateness in occurrences:
        if misfire_grace is not None and lateness > misfire_grace:
            decision.beyond_grace.append((ts, lateness))
        else:
            eligible.append(ts)
    if not eligible:
        return decision
    if catchup is Catchup.ALL:
        decision.run = eligible
    elif catchup is Catchup.LATEST:
        decision.run = eligible[-1:]
    else:
        newest = eligible[-1]
        newest_on_time = wall - newest <= LATE_TOLERANCE
        decision.run = [newest] if newest_on_time and len(occurrences) == 1 else []
    decision.missed = [ts for ts in eligible if ts not in decision.run]
    return decision


class OverlapAction(Enum):
    START = "start"  # run it now, beside whatever runs
    SKIP = "skip"  # record it as skipped
    QUEUE = "queue"  # it waits for the running one (a waiting one is coalesced into it)
    REPLACE = "replace"  # it waits while the running ones are cancelled


def decide_overlap(overlap: Overlap, running: int) -> OverlapAction:
    """What an occurrence that is due does, given how many runs of its job are going."""
    policy = overlap.policy
    if not running or (policy is OverlapPolicy.PARALLEL and running < overlap.limit):
        return OverlapAction.START
    if policy in (OverlapPolicy.SKIP, OverlapPolicy.PARALLEL):
        return OverlapAction.SKIP
    return OverlapAction.QUEUE if policy is OverlapPolicy.QUEUE else OverlapAction.REPLACE


def retry_allowed(
    options: JobOptions, outcome: Outcome, attempt: int, error_type: str, exit_code: int | None
) -> bool:
    """Whether attempt number ``attempt``, which ended in ``outcome``, is tried again:
    retries left, and retry_on / no_retry_on (exception types or names, exit codes) agree."""
    if outcome not in (Outcome.FAILED, Outcome.TIMED_OUT) or attempt > options.retries:
        return False

    def matches(filters: Iterable[type | str | int]) -> bool:
        for item in filters:
            if isinstance(item, int):
                if exit_code == item:
                    return True
            elif isinstance(item, str):
                if error_type == item or error_type.rsplit(".", 1)[-1] == item:
                    return True
            elif error_type == item.__qualname__:
                return True
        return False

    if options.no_retry_on and matches(options.no_retry_on):
        return False
    return not options.retry_on or matches(options.retry_on)


def retry_delay(options: JobOptions, attempt: int, rng: random.Random) -> float:
    """Seconds before the next attempt: exponential backoff capped at retry_max, with full
    jitter (uniform from 0) so failing jobs do not retry in lockstep."""
    ceiling = min(options.retry_max, options.retry_backoff * 2 ** (attempt - 1))
    return rng.uniform(0, ceiling)
