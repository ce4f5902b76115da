"""Policies: timeouts, retries, failures, max_runs, overlap, catch-up, concurrency."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from datetime import timedelta

import pytest

from jobtui import JobState, Outcome, Run, RunRetrying, Scheduler

from .conftest import START, stop_within


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes: it runs nothing. It can also be reaped between the
    # kill above and this read, which then fails with ENOENT or ESRCH.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


# -- timeouts -----------------------------------------------------------------------------


async def test_async_timeout_cancels_the_job(scheduler, clock, recorder):
    cleaned = []

    async def hangs() -> None:
        try:
            await clock.sleep(3600)
        finally:
            cleaned.append(True)

    scheduler.add_job(hangs, every="1h", id="hangs", timeout="2m")
    async with scheduler:
        await clock.advance(3600 + 119)
        assert scheduler.get("hangs").state is JobState.RUNNING
        await clock.advance(1)
    (run,) = recorder.finished("hangs")
    assert run.outcome is Outcome.TIMED_OUT
    assert run.error.first_line == "Timeout: timed out after 2m"
    assert cleaned == [True]


async def test_hung_command_with_grandchild_leaves_no_process_behind(
    scheduler, clock, recorder, tmp_path
):
    pidfile = tmp_path / "pids"
    # The grandchild ignores SIGTERM, so only the SIGKILL after kill_grace can end it.
    script = (
        f"sh -c 'trap \"\" TERM; echo $$ >> {pidfile}; while :; do sleep 1; done' & "
        f"echo $$ >> {pidfile}; wait"
    )
    scheduler.add_job(script, every="1h", id="hung", timeout="10s", kill_grace="5s")
    async with scheduler:
        await clock.advance(3600)
        await recorder.wait_for(lambda: pidfile.exists() and len(pidfile.read_text().split()) == 2)
        pids = [int(p) for p in pidfile.read_text().split()]
        await clock.advance(10)  # timeout: SIGTERM to the group; the grandchild survives it
        assert not recorder.finished("hung")
        await clock.advance(5)  # kill_grace: SIGKILL to the group
        await recorder.wait_for(lambda: recorder.finished("hung"))
    (run,) = recorder.finished("hung")
    assert run.outcome is Outcome.TIMED_OUT
    for _ in range(100):
        if not any(pid_alive(p) for p in pids):
            break
        await asyncio.sleep(0.05)  # the kernel reaps asynchronously; this only polls
    assert not any(pid_alive(p) for p in pids)


async def test_thread_timeout_marks_the_run_and_blocks_new_runs_while_it_lives(
    scheduler, clock, recorder
):
    release = threading.Event()

    def stuck() -> None:
        release.wait(30)

    scheduler.add_job(stuck, every="1m", id="stuck", timeout="30s")
    async with scheduler:
        await clock.advance(60 + 30)
        (run,) = recorder.finished("stuck")
        assert run.outcome is Outcome.TIMED_OUT
        await clock.advance(30)  # next occurrence while the thread still lives
        (skipped,) = recorder.skipped("stuck")
        assert "still running in its thread" in skipped.reason
        release.set()
        await recorder.wait_for(lambda: scheduler.get("stuck")._threads_alive == 0)
        await clock.advance(60)
        await recorder.wait_for(lambda: len(recorder.finished("stuck")) == 2)
    assert recorder.outcomes("stuck") == [Outcome.TIMED_OUT, Outcome.SUCCEEDED]


# -- retries ------------------------------------------------------------------------------


async def test_retries_with_capped_exponential_backoff_belong_to_the_occurrence(
    scheduler, clock, recorder
):
    attempts = []

    async def flaky(run: Run) -> None:
        attempts.append(run.attempt)
        if run.attempt < 4:
            raise ConnectionError(f"attempt {run.attempt} failed")

    scheduler.add_job(
        flaky, every="1h", id="flaky", retries=5, retry_backoff="10s", retry_max="25s"
    )
    async with scheduler:
        await clock.advance(3600 + 100)
    (run,) = recorder.finished("flaky")
    assert run.outcome is Outcome.SUCCEEDED and run.attempt == 4
    assert run.scheduled_for == START + timedelta(hours=1)
    assert attempts == [1, 2, 3, 4]
    waits = [e.retry_at - e.time for e in recorder.of(RunRetrying)]
    ceilings = [10, 20, 25]  # 10 * 2**n, capped at retry_max
    assert all(0 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert recorder.of(RunRetrying)[0].error == "ConnectionError: attempt 1 failed"


async def test_retrying_state_and_exhausted_retries_fail(scheduler, clock, recorder):
    async def always_fails() -> None:
        raise RuntimeError("nope")

    scheduler.add_job(
        always_fails, every="1h", id="f", retries=2, retry_backoff="1m", retry_max="1m"
    )
    async with scheduler:
        await clock.advance(3600)
        assert scheduler.get("f").state is JobState.RETRYING
        await clock.advance(120)
    (run,) = recorder.finished("f")
    assert run.outcome is Outcome.FAILED and run.attempt == 3


async def test_retry_on_and_no_retry_on(scheduler, clock, recorder):
    async def raises_value_error() -> None:
        raise ValueError("permanent")

    scheduler.add_job(raises_value_error, every="1h", id="v", retries=3, no_retry_on=[ValueError])
    scheduler.add_job("exit 2", every="1h", id="exit2", retries=3, retry_on=[75])
    scheduler.add_job(
        "exit 75", every="1h", id="exit75", retries=1, retry_on=[75], retry_backoff="1s"
    )
    async with scheduler:
        await clock.advance(3600)
        await recorder.wait_for(lambda: len(recorder.finished()) == 2 and recorder.of(RunRetrying))
        await clock.advance(2)
        await recorder.wait_for(lambda: len(recorder.finished()) == 3)
    assert recorder.finished("v")[0].attempt == 1
    assert recorder.finished("exit2")[0].attempt == 1
    assert recorder.finished("exit75")[0].attempt == 2


# -- failures and limits ------------------------------------------------------------------


async def test_max_failures_disables_the_job_visibly_until_resumed(scheduler, clock, recorder):
    async def broken() -> None:
        raise OSError("backup target unreachable")

    scheduler.add_job(broken, every="1m", id="backup", max_failures=3)
    async with scheduler:
        await clock.advance(10 * 60)
        job = scheduler.get("backup")
        assert len(recorder.finished("backup")) == 3
        assert job.state is JobState.DISABLED
        assert job.disabled_reason == (
            "3 consecutive failures; last: OSError: backup target unreachable"
        )
        assert job.next_run_time is None
        scheduler.resume("backup")
        assert job.state is JobState.SCHEDULED and job.consecutive_failures == 0
        await clock.advance(60)
    assert len(recorder.finished("backup")) == 4


async def test_max_runs_finishes_the_job(scheduler, clock, recorder):
    scheduler.add_job(lambda: None, every="1m", id="thrice", max_runs=3)
    async with scheduler:
        await clock.advance(3 * 60)
        await recorder.wait_for(lambda: len(recorder.finished("thrice")) == 3)
        await clock.advance(10 * 60)
    assert len(recorder.finished("thrice")) == 3
    assert scheduler.get("thrice").state is JobState.FINISHED


# -- overlap: a run longer than its period ------------------------------------------------


def slow_job(clock, seconds: float):
    async def body() -> None:
        await clock.sleep(seconds)

    return body


async def test_overlap_skip_keeps_the_grid_and_records_skips(scheduler, clock, recorder):
    scheduler.add_job(slow_job(clock, 2.5), every="1s", id="slow")
    async with scheduler:
        await clock.advance(7.2)
        await stop_within(scheduler, clock, 5)
    starts = [(r.started_at - START).total_seconds() for r in recorder.finished("slow")]
    assert starts == [1, 4, 7]
    skipped = [(r.scheduled_for - START).total_seconds() for r in recorder.skipped("slow")]
    assert skipped == [2, 3, 5, 6]
    assert "still running" in recorder.skipped("slow")[0].reason


async def test_overlap_queue_holds_at_most_one_coalesced_occurrence(scheduler, clock, recorder):
    scheduler.add_job(slow_job(clock, 2.5), every="1s", id="slow", overlap="queue")
    async with scheduler:
        await clock.advance(7.2)
        await stop_within(scheduler, clock, 5)
    runs = recorder.finished("slow")
    starts = [(r.started_at - START).total_seconds() for r in runs]
    served = [(r.scheduled_for - START).total_seconds() for r in runs]
    assert starts[:3] == [1, 3.5, 6]  # back to back, never a growing queue
    assert served[:3] == [1, 3, 5]  # the newest waiting occurrence runs
    coalesced = [(r.scheduled_for - START).total_seconds() for r in recorder.skipped("slow")]
    assert coalesced[:2] == [2, 4]
    assert "coalesced" in recorder.skipped("slow")[0].reason


async def test_overlap_replace_cancels_the_running_one(scheduler, clock, recorder):
    scheduler.add_job(slow_job(clock, 2.5), every="1s", id="slow", overlap="replace")
    async with scheduler:
        await clock.advance(4.5)
        await stop_within(scheduler, clock, 5)
    runs = recorder.finished("slow")
    assert [(r.scheduled_for - START).total_seconds() for r in runs[:3]] == [1, 2, 3]
    assert runs[0].outcome is Outcome.CANCELLED
    assert runs[0].reason.startswith("replaced by the occurrence for")


async def test_overlap_parallel_caps_runs_at_once(scheduler, clock, recorder):
    scheduler.add_job(slow_job(clock, 2.5), every="1s", id="slow", overlap="parallel:2")
    async with scheduler:
        await clock.advance(2)
        assert len(scheduler.get("slow").active) == 2
        await clock.advance(1)
        assert len(scheduler.get("slow").active) == 2
        await stop_within(scheduler, clock, 5)
    first_skipped = recorder.skipped("slow")[0]
    assert (first_skipped.scheduled_for - START).total_seconds() == 3


async def test_max_concurrency_is_a_global_limit(clock, recorder_factory):
    scheduler = Scheduler(timezone="UTC", clock=clock, max_concurrency=2)
    recorder = recorder_factory(scheduler)
    for n in range(5):
        scheduler.add_job(slow_job(clock, 10), every="1h", id=f"j{n}")
    async with scheduler:
        await clock.advance(3600)
        assert len(recorder.started()) == 2
        await clock.advance(10)
        assert len(recorder.started()) == 4
        await clock.advance(10)
        assert len(recorder.started()) == 5
        await clock.advance(10)
    assert len(recorder.finished()) == 5


# -- catch-up and misfire grace -----------------------------------------------------------


def block_loop_for(clock, seconds: float):
    """The loop was blocked (or the process was stopped): time passed, nothing ran."""
    return clock.suspend(seconds)


@pytest.mark.parametrize(
    ("catchup", "ran", "missed"),
    [
        ("latest", [6], [4, 5]),
        ("all", [4, 5, 6], []),
        ("none", [], [4, 5, 6]),
    ],
)
async def test_catchup_after_three_hours_down(scheduler, clock, recorder, catchup, ran, missed):
    """Hourly cron, down from 15:05 to 18:08 (UTC hours 16, 17 and 18 missed)."""
    scheduler.add_job(slow_job(clock, 1), cron="0 * * * *", id="hourly", catchup=catchup)
    async with scheduler:
        await clock.advance(3 * 3600 + 5 * 60)  # runs at 13:00, 14:00, 15:00
        await block_loop_for(clock, 3 * 3600 + 3 * 60)
        await clock.advance(30)
        await clock.advance(60)
    after = [r for r in recorder.finished("hourly") if r.scheduled_for.hour > 15]
    assert [r.scheduled_for.hour - 12 for r in after] == ran
    assert [r.scheduled_for.hour - 12 for r in recorder.missed("hourly")] == missed
    assert scheduler.get("hourly").next_run_time.hour == 19


async def test_misfire_grace_turns_late_occurrences_into_misses(scheduler, clock, recorder):
    scheduler.add_job(slow_job(clock, 1), cron="0 * * * *", id="hourly", misfire_grace="10m")
    async with scheduler:
        await clock.advance(3600 - 60)
        await block_loop_for(clock, 3600 + 15 * 60 + 60)  # back at 14:15
        await clock.advance(30)
    assert [r.scheduled_for.hour for r in recorder.missed("hourly")] == [13, 14]
    assert "beyond misfire_grace 10m" in recorder.missed("hourly")[0].reason
    assert recorder.finished("hourly") == []
    assert scheduler.get("hourly").next_run_time.hour == 15


async def test_catchup_enumerates_a_bounded_number_of_occurrences(scheduler, clock, recorder):
    scheduler.add_job(lambda: None, every="1s", id="fast", catchup="none")
    async with scheduler:
        await clock.advance(0.5)
        await clock.suspend(10 * 365 * 86400)  # ten years asleep
        await clock.advance(30)
    missed = recorder.missed("fast")
    assert len(missed) == 1001  # a summary of the passed-over ones, then the newest 1000
    assert "too many to list" in missed[0].reason
    assert len({r.scheduled_for for r in missed}) == len(missed)


async def test_an_at_time_already_past_runs_once_unless_beyond_misfire_grace(
    scheduler, clock, recorder
):
    scheduler.add_job(lambda: None, at=START - timedelta(minutes=5), id="late")
    scheduler.add_job(
        lambda: None, at=START - timedelta(minutes=5), id="too_late", misfire_grace="1m"
    )
    async with scheduler:
        await clock.advance(1)
        await recorder.wait_for(lambda: recorder.finished("late"))
    assert recorder.outcomes("late") == [Outcome.SUCCEEDED]
    (missed,) = recorder.missed("too_late")
    assert missed.reason == "late by 5m, beyond misfire_grace 1m"
    assert scheduler.get("too_late").state is JobState.FINISHED


async def test_cancelling_a_command_kills_its_process_group(scheduler, clock, recorder, tmp_path):
    pidfile = tmp_path / "pid"
    scheduler.add_job(f"sleep 300 & echo $! > {pidfile}; wait", every="1h", id="long")
    async with scheduler:
        await clock.advance(3600)
        await recorder.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
        grandchild = int(pidfile.read_text())
        scheduler.cancel("long")
        await recorder.wait_for(lambda: recorder.finished("long"))
    (run,) = recorder.finished("long")
    assert run.outcome is Outcome.CANCELLED
    assert run.signal == "SIGTERM"
    for _ in range(100):
        if not pid_alive(grandchild):
            break
        await asyncio.sleep(0.05)  # the kernel reaps asynchronously; this only polls
    assert not pid_alive(grandchild)


async def test_a_command_killed_by_a_realtime_signal_says_which(scheduler, clock, recorder):
    number = signal.SIGRTMIN + 3  # not in signal.Signals
    scheduler.add_job(f"kill -{int(number)} $$", every="1h", id="rt")
    async with scheduler:
        await clock.advance(3600)
        await recorder.wait_for(lambda: recorder.finished("rt"))
    (run,) = recorder.finished("rt")
    assert run.outcome is Outcome.FAILED and run.signal == "SIGRTMIN+3"
    assert run.error is not None and run.error.message == "killed by SIGRTMIN+3"
