"""What a run does and reports: the three kinds of job, Run, output, errors, return values."""

from __future__ import annotations

import sys
import threading
from datetime import timedelta

from jobtui import JobState, Outcome, Run, RunProgress, current_run

from .conftest import START


async def test_async_job_reports_progress_and_status(scheduler, clock, recorder):
    async def copy(run: Run) -> None:
        for i in range(4):
            run.progress = i / 4
            run.status_message = f"copying item {i}"
            await clock.sleep(1)
        run.progress = 1.0

    scheduler.add_job(copy, every="1m", id="copy")
    reported = []
    scheduler.subscribe(
        lambda e: reported.append(e.run.progress) if isinstance(e, RunProgress) else None
    )
    async with scheduler:
        await clock.advance(60)
        (running,) = scheduler.running_runs()
        assert running.progress == 0 and running.status_message == "copying item 0"
        await clock.advance(2)
        assert running.progress == 0.5 and running.status_message == "copying item 2"
        await clock.advance(2)
    (run,) = recorder.finished("copy")
    assert run.outcome is Outcome.SUCCEEDED
    assert run.progress == 1.0
    assert run.duration == 4
    # The last change comes with RunFinished, which carries the final progress.
    assert reported == [0.0, 0.25, 0.5, 0.75]


async def test_sync_job_runs_in_a_thread_not_on_the_loop(scheduler, clock, recorder):
    seen = {}

    def work(run: Run, factor: int, *, offset: int = 0) -> None:
        seen["thread"] = threading.current_thread().name
        seen["current"] = current_run() is run
        run.progress = 0.5
        run.log(f"result {factor * 21 + offset}")

    scheduler.add_job(work, every="1m", id="work", args=[2], kwargs={"offset": 0})
    async with scheduler:
        await clock.advance(60)
        await recorder.wait_for(lambda: recorder.finished("work"))
    (run,) = recorder.finished("work")
    assert run.outcome is Outcome.SUCCEEDED
    assert seen == {"thread": "jobtui:work", "current": True}
    assert "result 42" in run.output.text()


async def test_function_without_run_parameter_is_called_without_it(scheduler, clock, recorder):
    calls = []

    async def plain(a: int, b: int = 0) -> None:
        calls.append((a, b))

    scheduler.add_job(plain, every="1m", id="plain", args=[1], kwargs={"b": 2})
    async with scheduler:
        await clock.advance(60)
    assert calls == [(1, 2)]


async def test_command_output_is_streamed_line_by_line(scheduler, clock, recorder):
    scheduler.add_job(
        "echo one; echo two >&2; echo ::progress 42%; echo '::status halfway there'; echo three",
        every="1m",
        id="cmd",
    )
    async with scheduler:
        await clock.advance(60)
        await recorder.wait_for(lambda: recorder.finished("cmd"))
    (run,) = recorder.finished("cmd")
    assert run.outcome is Outcome.SUCCEEDED and run.exit_code == 0
    lines = run.output.lines()
    # Two pipes: order within each stream is kept, not across them.
    assert [line.text for line in lines if line.stream == "stdout"] == ["one", "three"]
    assert [line.text for line in lines if line.stream == "stderr"] == ["two"]
    assert run.progress == 0.42
    assert run.status_message == "halfway there"


async def test_command_list_with_env_and_cwd(scheduler, clock, recorder, tmp_path):
    scheduler.add_job(
        [sys.executable, "-c", "import os; print(os.environ['GREETING'], os.getcwd())"],
        every="1m",
        id="argv",
        env={"GREETING": "hello"},
        cwd=str(tmp_path),
    )
    async with scheduler:
        await clock.advance(60)
        await recorder.wait_for(lambda: recorder.finished("argv"))
    (run,) = recorder.finished("argv")
    assert run.output.text() == f"hello {tmp_path}"


async def test_failing_command_records_exit_status_and_last_error_line(scheduler, clock, recorder):
    scheduler.add_job("echo 'disk full' >&2; exit 3", every="1m", id="bad")
    async with scheduler:
        await clock.advance(60)
        await recorder.wait_for(lambda: recorder.finished("bad"))
    (run,) = recorder.finished("bad")
    assert run.outcome is Outcome.FAILED
    assert run.exit_code == 3
    assert run.error.first_line == "ExitStatus: exited with status 3: disk full"


async def test_missing_program_fails_the_run_not_the_scheduler(scheduler, clock, recorder):
    scheduler.add_job(["/nonexistent/program"], every="1m", id="ghost")
    async with scheduler:
        await clock.advance(60)
        await recorder.wait_for(lambda: recorder.finished("ghost"))
        await clock.advance(60)
        await recorder.wait_for(lambda: len(recorder.finished("ghost")) == 2)
    assert recorder.outcomes("ghost") == [Outcome.FAILED, Outcome.FAILED]
    assert recorder.finished("ghost")[0].error.type == "FileNotFoundError"


async def test_exception_is_recorded_with_type_message_and_traceback(scheduler, clock, recorder):
    async def broken() -> None:
        raise ValueError("bad input in row 7")

    scheduler.add_job(broken, every="1m", id="broken")
    async with scheduler:
        await clock.advance(120)
    runs = recorder.finished("broken")
    assert [r.outcome for r in runs] == [Outcome.FAILED, Outcome.FAILED]
    assert runs[0].error.type == "ValueError"
    assert runs[0].error.message == "bad input in row 7"
    assert "in broken" in runs[0].error.traceback


async def test_sys_exit_and_keyboard_interrupt_fail_the_job_not_the_scheduler(
    scheduler, clock, recorder
):
    async def exits() -> None:
        sys.exit(3)

    async def interrupts() -> None:
        raise KeyboardInterrupt

    def exits_in_thread() -> None:
        sys.exit("bye")

    scheduler.add_job(exits, every="1m", id="exits")
    scheduler.add_job(interrupts, every="1m", id="interrupts")
    scheduler.add_job(exits_in_thread, every="1m", id="thread")
    scheduler.add_job(lambda: None, every="1m", id="healthy")
    async with scheduler:
        await clock.advance(60)
        await recorder.wait_for(lambda: len(recorder.finished()) == 4)
        await clock.advance(60)
        await recorder.wait_for(lambda: len(recorder.finished()) == 8)
    assert recorder.outcomes("exits") == [Outcome.FAILED] * 2
    assert recorder.finished("exits")[0].error.type == "SystemExit"
    assert recorder.finished("interrupts")[0].error.type == "KeyboardInterrupt"
    assert recorder.finished("thread")[0].error.first_line == "SystemExit: bye"
    assert recorder.outcomes("healthy") == [Outcome.SUCCEEDED] * 2


async def test_a_one_megabyte_line_is_kept_bounded(scheduler, clock, recorder):
    scheduler.add_job(
        [sys.executable, "-c", "print('x' * 1_000_000); print('after')"], every="1m", id="big"
    )
    async with scheduler:
        await clock.advance(60)
        await recorder.wait_for(lambda: recorder.finished("big"))
    (run,) = recorder.finished("big")
    assert run.outcome is Outcome.SUCCEEDED
    lines = run.output.lines()
    assert [line.text[-40:] for line in lines][-1] == "after"
    assert len(lines[0].text) < 20_000
    assert lines[0].text.endswith("bytes cut from this line]")
    assert run.output.dropped_bytes >= 1_000_000 - 16 * 1024


async def test_output_keeps_head_and_tail_and_says_what_was_dropped(clock, recorder_factory):
    from jobtui import Scheduler

    scheduler = Scheduler(
        timezone="UTC", clock=clock, output_head_bytes=1000, output_tail_bytes=1000
    )
    recorder = recorder_factory(scheduler)
    scheduler.add_job(
        [sys.executable, "-c", "for i in range(5000): print(f'line {i:05}')"],
        every="1m",
        id="chatty",
    )
    async with scheduler:
        await clock.advance(60)
        await recorder.wait_for(lambda: recorder.finished("chatty"))
    (run,) = recorder.finished("chatty")
    text = run.output.text().splitlines()
    assert text[0] == "line 00000"
    assert text[-1] == "line 04999"
    assert run.output.total_lines == 5000
    assert run.output.dropped_lines > 4700
    assert any(line.startswith("[... ") and "dropped" in line for line in text)


async def test_returned_timedelta_and_datetime_reschedule_and_never_finishes(
    scheduler, clock, recorder
):
    answers = iter([timedelta(minutes=30), START + timedelta(hours=3), None, "never"])

    async def decides() -> object:
        return next(answers)

    scheduler.add_job(decides, every="1h", id="decides")
    async with scheduler:
        await clock.advance(6 * 3600)
    fired = [(r.scheduled_for - START) for r in recorder.finished("decides")]
    assert fired == [
        timedelta(hours=1),  # returns 30 minutes
        timedelta(hours=1, minutes=30),  # returns START + 3h
        timedelta(hours=3),  # returns None: back on the hourly grid
        timedelta(hours=4),  # returns "never"
    ]
    assert scheduler.get("decides").state is JobState.FINISHED


async def test_unusable_return_value_is_noted_in_the_log(scheduler, clock, recorder):
    async def answers() -> int:
        return 42

    scheduler.add_job(answers, every="1m", id="answers")
    async with scheduler:
        await clock.advance(60)
    (run,) = recorder.finished("answers")
    assert run.outcome is Outcome.SUCCEEDED
    assert "the return value 42 is kept in run.result" in run.output.text()
