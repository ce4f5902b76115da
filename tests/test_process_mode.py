"""Process mode: a Python function in a child process that a timeout can kill, whose progress,
output, return value and exception come back to the scheduler."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobtui import InvalidJobOption, Outcome, RemoteError, Run, Scheduler, VirtualClock
from jobtui.config import ConfigError, load
from jobtui.control.controller import LocalController
from jobtui.host import Host

from . import processjobs as jobs
from .conftest import START, Recorder
from .test_cli import Headless, _running, finished
from .test_console import write
from .test_policies import pid_alive


async def gone(pids: list[int]) -> bool:
    for _ in range(200):
        if not any(pid_alive(p) for p in pids):
            return True
        await asyncio.sleep(0.05)  # the kernel reaps asynchronously; this only polls
    return False


async def test_a_cpu_bound_job_is_killed_at_its_timeout_and_the_next_occurrence_runs(
    scheduler, clock, recorder
):
    job = scheduler.add_job(
        jobs.spin_forever, every="1m", id="spin", timeout="30s", run_mode="process"
    )
    await scheduler.start()
    await clock.advance(60)
    await recorder.wait_for(lambda: bool(job.active) and job.active[0].progress == 0.25)
    first = job.active[0]
    assert first.status_message == "spinning" and first.pid is not None
    await clock.advance(30)
    await recorder.wait_for(lambda: recorder.finished("spin"))
    assert first.outcome is Outcome.TIMED_OUT and first.signal == "SIGTERM"
    assert first.error is not None and first.error.first_line == "Timeout: timed out after 30s"
    assert await gone([first.pid])
    # Unlike a thread, nothing of the killed run lives on: the next occurrence runs.
    await clock.advance(30)
    await recorder.wait_for(lambda: bool(job.active) and job.active[0].progress == 0.25)
    second = job.active[0]
    assert second is not first and not recorder.skipped("spin")
    await scheduler.stop(0)
    assert second.outcome is Outcome.CANCELLED
    assert await gone([second.pid])  # type: ignore[list-item]


async def test_a_grandchild_that_ignores_sigterm_is_killed_after_kill_grace(
    scheduler, clock, recorder, tmp_path
):
    pidfile = tmp_path / "pids"
    scheduler.add_job(
        jobs.spin_with_grandchild,
        id="family",
        args=[str(pidfile)],
        timeout="10s",
        kill_grace="5s",
        run_mode="process",
    )
    await scheduler.start()
    run = scheduler.run_now("family", wait=False)
    await recorder.wait_for(lambda: pidfile.exists() and len(pidfile.read_text().split()) == 2)
    pids = [int(p) for p in pidfile.read_text().split()]
    await clock.advance(10)
    await clock.advance(5)
    await run
    assert run.outcome is Outcome.TIMED_OUT
    assert await gone(pids)
    await scheduler.stop(0)


async def test_the_return_value_comes_back_and_reschedules(scheduler, clock):
    scheduler.add_job(jobs.returns, id="value", args=[{"rows": 3}], run_mode="process")
    scheduler.add_job(jobs.async_double, id="async", args=[21], run_mode="process")
    later = scheduler.add_job(jobs.in_ten_minutes, every="24h", id="later", run_mode="process")
    async with scheduler:
        assert (await scheduler.run_now("value")).result == {"rows": 3}
        assert (await scheduler.run_now("async")).result == 42
        assert (await scheduler.run_now("later")).result == timedelta(minutes=10)
        assert later.next_fire == clock.wall() + 600
        scheduler.add_job(jobs.returns_a_lock, id="lock", run_mode="process")
        run = await scheduler.run_now("lock")
    assert run.outcome is Outcome.FAILED and run.error is not None
    assert "cannot be sent back from the child process" in run.error.message


async def test_the_exception_comes_back_with_its_type_and_traceback(scheduler):
    scheduler.add_job(jobs.raises_value_error, id="value_error", run_mode="process")
    scheduler.add_job(jobs.raises_unrebuildable, id="unrebuildable", run_mode="process")
    async with scheduler:
        run = await scheduler.run_now("value_error")
        assert run.outcome is Outcome.FAILED
        with pytest.raises(ValueError, match="bad input 42"):
            _ = run.result
        assert run.error is not None and run.error.first_line == "ValueError: bad input 42"
        assert "in raises_value_error" in run.error.traceback
        run = await scheduler.run_now("unrebuildable")
        with pytest.raises(RemoteError) as raised:
            _ = run.result
        assert raised.value.type_name == "Unrebuildable"
        assert "in raises_unrebuildable" in raised.value.remote_traceback
        assert run.error is not None and run.error.type == "Unrebuildable"


async def test_a_child_that_crashes_or_exits_is_a_failed_run_with_the_reason(scheduler):
    scheduler.add_job(jobs.segfaults, id="segfault", run_mode="process")
    scheduler.add_job(jobs.exits_hard, id="exit", run_mode="process")
    async with scheduler:
        crashed = await scheduler.run_now("segfault")
        exited = await scheduler.run_now("exit")
    assert crashed.outcome is Outcome.FAILED and crashed.signal == "SIGSEGV"
    assert crashed.error is not None and "killed by SIGSEGV" in crashed.error.message
    # faulthandler's Python traceback of the crash is in the run's output.
    assert any("in segfaults" in line.text for line in crashed.output.lines())
    assert exited.outcome is Outcome.FAILED and exited.exit_code == 3
    assert exited.error is not None
    assert "exited with status 3 before the function returned" in exited.error.message


def test_functions_a_child_cannot_import_are_refused_when_added():
    scheduler = Scheduler(timezone="UTC")

    def local() -> None: ...

    for target, words in [
        (lambda: None, "a lambda cannot be imported"),
        (local, "is defined inside a function"),
        ("echo hi", "a command always runs in a process of its own"),
    ]:
        with pytest.raises(InvalidJobOption, match=words) as raised:
            scheduler.add_job(target, run_mode="process")
        assert raised.value.key == "run_mode"
    with pytest.raises(InvalidJobOption, match='"thread" is for plain functions'):
        scheduler.add_job(jobs.async_double, run_mode="thread")
    with pytest.raises(InvalidJobOption, match='expected "thread", "async" or "process"'):
        scheduler.add_job(jobs.returns, run_mode="fork")
    assert scheduler.jobs() == []


MODULE = """
import os, time

def report(run, flag):
    run.progress = 0.5
    run.status_message = "halfway"
    run.log("a line from run.log")
    print("a line from print", flush=True)
    while not os.path.exists(flag):
        time.sleep(0.01)
"""


async def test_progress_and_output_show_in_the_console_model(tmp_path: Path):
    flag = tmp_path / "flag"
    write(tmp_path / "reporting.py", MODULE)
    config = write(
        tmp_path / "jobs.toml",
        f"""
        [jobs.report]
        run = "reporting:report"
        run_mode = "process"
        args = ["{flag}"]
        """,
    )
    clock = VirtualClock(START)
    host = Host(load(config), clock=clock)
    controller = LocalController(host)
    recorder = Recorder(host.scheduler)
    await host.start(watch=False)
    try:
        controller.run_now("report")

        def reported() -> bool:
            view = controller.job("report")
            running = view.running if view is not None else ()
            return bool(running) and running[0].progress == 0.5

        await recorder.wait_for(reported)
        view = controller.job("report")
        assert view is not None and view.running[0].status_message == "halfway"
        run_id = view.running[0].run_id
        await recorder.wait_for(lambda: len(controller.log("report", run_id)[0]) == 2)
        assert set(controller.log("report", run_id)[0]) == {
            "a line from run.log",
            "a line from print",
        }
        flag.touch()
        await recorder.wait_for(lambda: recorder.finished("report"))
        assert recorder.outcomes("report") == [Outcome.SUCCEEDED]
    finally:
        await host.stop(0)


def test_process_mode_for_a_command_in_jobs_toml_names_the_line(tmp_path: Path):
    config = write(
        tmp_path / "jobs.toml",
        """
        [jobs.backup]
        command = "echo backing up"
        run_mode = "process"
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load(config)
    text = str(raised.value)
    assert f"{config}:3" in text and "run_mode" in text
    assert "a command always runs in a process of its own" in text


def test_a_lambda_in_process_mode_in_jobs_toml_names_the_line(tmp_path: Path):
    write(tmp_path / "quick.py", "double = lambda x: 2 * x\n")
    config = write(
        tmp_path / "jobs.toml",
        """
        [defaults]
        run_mode = "process"

        [jobs.backup]
        command = "echo backing up"

        [jobs.double]
        run = "quick:double"
        args = [2]
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load(config)
    text = str(raised.value)
    # The default does not apply to the command; the lambda cannot be imported by a child.
    assert "backup" not in text
    assert f"{config}:2" in text and "a lambda cannot be imported" in text


SCRIPT = """
import asyncio

from jobtui import Run, Scheduler

scheduler = Scheduler(timezone="UTC")
print("script top level ran as", __name__, flush=True)


def crunch(run: Run, n: int) -> int:
    run.status_message = "crunching"
    return sum(range(n))


scheduler.add_job(crunch, id="crunch", args=[10], run_mode="process")


async def main() -> None:
    async with scheduler:
        run = await scheduler.run_now("crunch")
        print("result", run.result, "output", [line.text for line in run.output.lines()])


if __name__ == "__main__":
    asyncio.run(main())
"""


def test_a_function_in_the_script_that_starts_the_scheduler_runs_in_process_mode(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # The child ran the script's top level (as __mp_main__, so not its main block) and
    # printed into the run's output; the parent printed the result.
    assert done.stdout.splitlines() == [
        "script top level ran as __main__",
        "result 45 output ['script top level ran as __mp_main__']",
    ]


async def test_middleware_and_retries_see_a_process_runs_value_and_exception(scheduler, clock):
    seen: list[object] = []

    async def records(run: Run, call_next: Any) -> Any:
        try:
            value = await call_next()
        except ValueError as exc:
            seen.append(type(exc))
            raise
        seen.append(value)
        return value

    scheduler.add_middleware(records)
    scheduler.add_job(jobs.returns, id="value", args=[7], run_mode="process")
    scheduler.add_job(
        jobs.raises_value_error, id="flaky", run_mode="process", retries=1, retry_on=[ValueError]
    )
    async with scheduler:
        assert (await scheduler.run_now("value")).result == 7
        failing = scheduler.run_now("flaky")
        await asyncio.wait_for(_first_attempt_done(failing), 30)
        await clock.advance(1)  # the retry's backoff (at most retry_backoff, 1 s)
        await failing
    assert failing.attempt == 2 and failing.outcome is Outcome.FAILED
    assert seen == [7, ValueError, ValueError]


async def _first_attempt_done(run: Run) -> None:
    while not run.status_message.startswith("retrying"):
        await asyncio.sleep(0.01)  # polls a real child process, bounded by the caller


SPINNER = """
import os

def spin(run, pidfile):
    with open(pidfile, "w") as f:
        f.write(str(os.getpid()))
    while True:
        pass
"""


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_no_child_is_left_when_jobtui_stops_or_is_killed(tmp_path: Path, how: signal.Signals):
    pidfile = tmp_path / "child.pid"
    write(tmp_path / "spinner.py", SPINNER)
    config = write(
        tmp_path / "jobs.toml",
        f"""
        [jobs.spin]
        run = "spinner:spin"
        run_mode = "process"
        args = ["{pidfile}"]
        every = "1h"
        run_immediately = true
        """,
    )
    headless = Headless(config)
    try:
        headless.wait_for(lambda ev: pidfile.exists() and pidfile.read_text() != "")
        child = int(pidfile.read_text())
        headless.proc.send_signal(how)
        headless.proc.wait(timeout=30)
        if how is signal.SIGTERM:  # a stop: the run is cancelled and its process group killed
            assert headless.proc.returncode == 0
            (run,) = finished(headless.events(), "spin")
            assert run["outcome"] == "cancelled"
        # Killed outright, jobtui cannot clean up: the kernel kills the child (PDEATHSIG).
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.05)  # polls the kernel's process table, bounded by the deadline
        assert not _running(child)
    finally:
        if headless.proc.poll() is None:
            headless.proc.kill()


async def test_a_run_cancelled_while_its_child_starts_leaves_no_child_behind(
    scheduler, recorder, monkeypatch
):
    """Cancelled between starting the child and hearing from it (an outer stop cancelling the
    scheduler's tasks): the child, still waiting for what to call, is killed, not left."""
    loop = asyncio.get_running_loop()
    started: list[int] = []
    reached = asyncio.Event()
    subprocess_exec, connect_read_pipe = loop.subprocess_exec, loop.connect_read_pipe

    async def recording_exec(*args: Any, **kwargs: Any) -> Any:
        transport, protocol = await subprocess_exec(*args, **kwargs)
        started.append(transport.get_pid())
        return transport, protocol

    async def never_connects(*args: Any, **kwargs: Any) -> Any:
        if not started:  # asyncio's own, for the child's stdout and stderr
            return await connect_read_pipe(*args, **kwargs)
        reached.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(loop, "subprocess_exec", recording_exec)
    monkeypatch.setattr(loop, "connect_read_pipe", never_connects)
    scheduler.add_job(jobs.returns, id="r", args=[1], run_mode="process")
    await scheduler.start()
    run = scheduler.run_now("r", wait=False)
    await asyncio.wait_for(reached.wait(), 30)
    [task] = [task for got, _, task in scheduler._runner.executions.values() if got is run]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    monkeypatch.undo()
    await scheduler.stop(0)
    assert await gone(started)
