"""The policies as pure functions: no loop, no clock, just the decision for the given facts."""

from __future__ import annotations

import random

from jobtui import Catchup, Event, JobOptions, Outcome, Overlap, RunFinished, RunStarted, Scheduler
from jobtui.engine.events import EventBroker, JobAdded
from jobtui.engine.policies import (
    OverlapAction,
    decide_catchup,
    decide_overlap,
    on_time,
    retry_allowed,
    retry_delay,
)

DUE = [(100.0, 20.0), (110.0, 10.0), (120.0, 0.0)]  # (scheduled_for, lateness), oldest first


def test_catchup_latest_runs_the_newest_and_misses_the_rest():
    decision = decide_catchup(DUE, Catchup.LATEST, None, wall=120.0)
    assert decision.run == [120.0]
    assert decision.missed == [100.0, 110.0]
    assert decision.beyond_grace == []


def test_catchup_all_runs_every_occurrence_in_order():
    decision = decide_catchup(DUE, Catchup.ALL, None, wall=120.0)
    assert decision.run == [100.0, 110.0, 120.0] and decision.missed == []


def test_catchup_none_runs_nothing_missed_but_a_lone_one_on_time():
    assert decide_catchup(DUE, Catchup.NONE, None, wall=120.0).run == []
    assert decide_catchup([(120.0, 0.5)], Catchup.NONE, None, wall=120.5).run == [120.0]
    assert decide_catchup([(100.0, 20.0)], Catchup.NONE, None, wall=120.0).missed == [100.0]


def test_misfire_grace_misses_what_is_too_late_whatever_catchup_says():
    decision = decide_catchup(DUE, Catchup.ALL, 15.0, wall=120.0)
    assert decision.beyond_grace == [(100.0, 20.0)]
    assert decision.run == [110.0, 120.0]
    assert decide_catchup(DUE, Catchup.ALL, 5.0, wall=120.0).run == [120.0]


def test_on_time_needs_grace_and_a_small_lateness_for_catchup_none():
    assert on_time(JobOptions(), 30.0)
    assert not on_time(JobOptions(misfire_grace=10.0), 30.0)
    assert not on_time(JobOptions(catchup=Catchup.NONE), 30.0)
    assert on_time(JobOptions(catchup=Catchup.NONE), 0.5)


def test_overlap_decisions():
    skip, queue = Overlap.parse("skip"), Overlap.parse("queue")
    replace, parallel = Overlap.parse("replace"), Overlap.parse("parallel:2")
    assert decide_overlap(skip, 0) is OverlapAction.START
    assert decide_overlap(skip, 1) is OverlapAction.SKIP
    assert decide_overlap(queue, 1) is OverlapAction.QUEUE
    assert decide_overlap(replace, 1) is OverlapAction.REPLACE
    assert decide_overlap(parallel, 1) is OverlapAction.START
    assert decide_overlap(parallel, 2) is OverlapAction.SKIP


def test_retry_allowed_counts_attempts_and_outcomes():
    opts = JobOptions(retries=2)
    assert retry_allowed(opts, Outcome.FAILED, 1, "ValueError", None)
    assert retry_allowed(opts, Outcome.TIMED_OUT, 2, "", None)
    assert not retry_allowed(opts, Outcome.FAILED, 3, "ValueError", None)
    assert not retry_allowed(opts, Outcome.SUCCEEDED, 1, "", None)
    assert not retry_allowed(opts, Outcome.CANCELLED, 1, "", None)


def test_retry_on_and_no_retry_on_match_types_names_and_exit_codes():
    on = JobOptions(retries=5, retry_on=(ConnectionError, "TimeoutError", 75))
    assert retry_allowed(on, Outcome.FAILED, 1, "ConnectionError", None)
    assert retry_allowed(on, Outcome.FAILED, 1, "asyncio.TimeoutError", None)
    assert retry_allowed(on, Outcome.FAILED, 1, "", 75)
    assert not retry_allowed(on, Outcome.FAILED, 1, "ValueError", 1)
    off = JobOptions(retries=5, no_retry_on=("ValueError", 2))
    assert not retry_allowed(off, Outcome.FAILED, 1, "ValueError", None)
    assert not retry_allowed(off, Outcome.FAILED, 1, "", 2)
    assert retry_allowed(off, Outcome.FAILED, 1, "KeyError", None)


def test_retry_delay_is_full_jitter_under_a_capped_exponential_ceiling():
    opts = JobOptions(retries=10, retry_backoff=2.0, retry_max=10.0)
    rng = random.Random(3)
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (9, 10.0)]:
        delays = [retry_delay(opts, attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range, not a fixed step
    assert retry_delay(opts, 3, random.Random(5)) == retry_delay(opts, 3, random.Random(5))


def test_typed_subscriptions_get_only_their_types_in_order():
    broker = EventBroker()
    typed: list[Event] = []
    every: list[Event] = []
    broker.subscribe(every.append)
    unsubscribe = broker.subscribe(typed.append, RunStarted, RunFinished)
    broker.publish(JobAdded(1.0, "a"))
    assert every == [JobAdded(1.0, "a")] and typed == []
    unsubscribe()
    broker.publish(JobAdded(2.0, "b"))
    assert len(every) == 2


def test_a_type_nobody_asked_for_is_not_wanted():
    broker = EventBroker()
    broker.subscribe(lambda event: None, RunFinished)
    assert broker.wants(RunFinished) and not broker.wants(JobAdded)


def test_scheduler_subscribe_with_types():
    scheduler = Scheduler(timezone="UTC")
    added: list[Event] = []
    unsubscribe = scheduler.subscribe(added.append, JobAdded)
    scheduler.add_job(lambda: None, id="x")
    assert [type(e) for e in added] == [JobAdded]
    unsubscribe()
    scheduler.add_job(lambda: None, id="y")
    assert len(added) == 1
