"""Running one attempt of a job: a coroutine on the loop, a function in a thread, or a command in
its own process group. Each execution can be interrupted (timeout, cancel, replace, shutdown) and
reports an outcome; nothing a job body raises, not even SystemExit, escapes into the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .clock import Clock, TimerHandle
from .job import Job, TargetKind
from .procfs import group_has_live_member
from .run import Outcome, Run, RunError, _current_run

# After a command's main process exits, how long to keep reading output a grandchild may still
# be writing. Real time on purpose: it bounds I/O, it is not part of any schedule.
DRAIN_SECONDS = 1.0
CHUNK = 64 * 1024


@dataclass(slots=True)
class AttemptResult:
    outcome: Outcome
    value: Any = None


class Execution:
    """One attempt of one run."""

    def __init__(self, job: Job, run: Run, clock: Clock) -> None:
        self.job = job
        self.run = run
        self.clock = clock
        self.interrupted: tuple[Outcome, str] | None = None

    async def execute(self) -> AttemptResult:
        raise NotImplementedError

    def interrupt(self, outcome: Outcome, reason: str) -> None:
        """Stop the attempt; it ends with ``outcome`` (timed_out or cancelled)."""
        if self.interrupted is None:
            self.interrupted = (outcome, reason)
            self._stop()

    def _stop(self) -> None:
        raise NotImplementedError

    def _call(self) -> Any:
        job, run = self.job, self.run
        args = (run, *job.options.args) if job.takes_run else job.options.args
        return job.target(*args, **(job.options.kwargs or {}))

    def _interrupted_result(self) -> AttemptResult:
        assert self.interrupted is not None
        outcome, reason = self.interrupted
        self.run.reason = reason
        if outcome is Outcome.TIMED_OUT:
            self.run.error = RunError("Timeout", reason)
        return AttemptResult(outcome)

    def _from_body(self, status: str, payload: Any) -> AttemptResult:
        if self.interrupted is not None:
            return self._interrupted_result()
        if status == "ok":
            return AttemptResult(Outcome.SUCCEEDED, payload)
        self.run.error = RunError.from_exception(payload)
        return AttemptResult(Outcome.FAILED)


class AsyncExecution(Execution):
    """A coroutine function, awaited inside the run's own task on the scheduler's loop.

    No task of its own: a second task per run would halve how many runs a second the
    scheduler can start. Interrupting cancels the run's task, and the cancellation is taken
    back (``uncancel``) once it has been turned into the run's outcome."""

    _task: asyncio.Task[Any] | None = None

    async def execute(self) -> AttemptResult:
        self._task = asyncio.current_task()
        token = _current_run.set(self.run)
        try:
            status, payload = "ok", await self._call()
        except asyncio.CancelledError:
            if self.interrupted is None:
                raise
            if self._task is not None:
                self._task.uncancel()
            return self._interrupted_result()
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the job failed
            status, payload = "error", exc
        finally:
            _current_run.reset(token)
        return self._from_body(status, payload)

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class ThreadExecution(Execution):
    """A plain function, run in its own daemon thread so it never blocks the loop.

    Python cannot stop a thread: on timeout or cancel the run ends at once, and the thread is
    left to finish; the job gets no new run while it lives (see ``Job._threads_alive``).
    """

    def __init__(
        self, job: Job, run: Run, clock: Clock, on_thread_exit: Callable[[Job], None]
    ) -> None:
        super().__init__(job, run, clock)
        self._on_thread_exit = on_thread_exit
        self._future: asyncio.Future[tuple[str, Any]] | None = None

    async def execute(self) -> AttemptResult:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[str, Any]] = loop.create_future()
        self._future = future
        context = contextvars.copy_context()
        context.run(_current_run.set, self.run)
        job = self.job

        def finished(result: tuple[str, Any]) -> None:
            job._threads_alive -= 1
            if not future.done():
                future.set_result(result)
            else:
                self._on_thread_exit(job)

        def body() -> None:
            try:
                result: tuple[str, Any] = ("ok", context.run(self._call))
            except BaseException as exc:
                result = ("error", exc)
            # RuntimeError: the loop is closed, nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(finished, result)

        job._threads_alive += 1
        threading.Thread(target=body, name=f"jobtui:{job.id}", daemon=True).start()
        status, payload = await future
        return self._from_body(status, payload)

    def _stop(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(("interrupted", None))


class CommandExecution(Execution):
    """A shell command (``/bin/sh -c``) or an argv list, in its own process group.

    Output is read in chunks and split into lines here, so a 1 MB line cannot break the reader;
    ``::progress 0.42`` / ``::progress 42%`` and ``::status text`` lines set the run's progress and
    status instead of being logged. Interrupting sends SIGTERM to the whole group, then SIGKILL
    after ``kill_grace``, so no grandchild survives.
    """

    def __init__(self, job: Job, run: Run, clock: Clock) -> None:
        super().__init__(job, run, clock)
        self._pgid: int | None = None
        self._kill_timer: TimerHandle | None = None
        self._killed: asyncio.Future[None] | None = None
        self._last_stderr = ""

    async def execute(self) -> AttemptResult:
        job, run = self.job, self.run
        target = job.target
        argv = (
            ["/bin/sh", "-c", target] if isinstance(target, str) else [os.fspath(p) for p in target]
        )
        env = None if not job.options.env else {**os.environ, **job.options.env}
        loop = asyncio.get_running_loop()
        self._killed = loop.create_future()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=job.options.cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            run.error = RunError.from_exception(exc)
            return AttemptResult(Outcome.FAILED)
        self._pgid = proc.pid
        run.pid = proc.pid
        run._changed()  # subscribers (the store) learn the pid while it runs
        if self.interrupted is not None:  # interrupted while it was being started
            self._stop()
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            loop.create_task(self._pump(proc.stdout, "stdout")),
            loop.create_task(self._pump(proc.stderr, "stderr")),
        ]
        try:
            returncode = await proc.wait()
            if self.interrupted is not None and self._group_alive():
                await self._killed  # wait out kill_grace: the SIGKILL reaches the stragglers
            _, pending = await asyncio.wait(readers, timeout=DRAIN_SECONDS)
            for reader in pending:
                reader.cancel()
        except asyncio.CancelledError:
            self._signal(signal.SIGKILL)
            for reader in readers:
                reader.cancel()
            raise
        finally:
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()  # a grandchild may hold the pipes; stop reading them
        if returncode < 0:
            run.signal = signal.Signals(-returncode).name
        else:
            run.exit_code = returncode
        if self.interrupted is not None:
            return self._interrupted_result()
        if returncode == 0:
            return AttemptResult(Outcome.SUCCEEDED)
        detail = f": {self._last_stderr}" if self._last_stderr else ""
        if returncode < 0:
            run.error = RunError("Signal", f"killed by {run.signal}{detail}")
        else:
            run.error = RunError("ExitStatus", f"exited with status {returncode}{detail}")
        return AttemptResult(Outcome.FAILED)

    def _stop(self) -> None:
        if self._pgid is None:
            return
        self._signal(signal.SIGTERM)
        self._kill_timer = self.clock.call_later(self.job.options.kill_grace, self._kill_group)

    def _kill_group(self) -> None:
        self._signal(signal.SIGKILL)
        if self._killed is not None and not self._killed.done():
            self._killed.set_result(None)

    def _signal(self, sig: signal.Signals) -> None:
        if self._pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pgid, sig)

    def _group_alive(self) -> bool:
        """Whether any process of the group still runs (zombies don't: they wait to be reaped,
        and in a container nobody may ever reap them)."""
        if self._pgid is None:
            return False
        try:
            os.killpg(self._pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return group_has_live_member(self._pgid)

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        max_line = self.run.output.max_line
        pending = bytearray()
        cut = 0
        try:
            while chunk := await stream.read(CHUNK):
                start = 0
                while True:
                    newline = chunk.find(b"\n", start)
                    end = len(chunk) if newline < 0 else newline
                    room = max_line - len(pending)
                    piece = chunk[start:end]
                    if len(piece) > room:
                        cut += len(piece) - max(room, 0)
                        piece = piece[: max(room, 0)]
                    pending += piece
                    if newline < 0:
                        break
                    self._line(name, bytes(pending), cut)
                    pending.clear()
                    cut = 0
                    start = newline + 1
        finally:
            if pending or cut:
                self._line(name, bytes(pending), cut)

    def _line(self, stream: str, data: bytes, cut: int) -> None:
        text = data.decode("utf-8", "replace").rstrip("\r")
        run = self.run
        if text.startswith("::"):
            if text.startswith("::progress "):
                value = text[len("::progress ") :].strip()
                try:
                    number = float(value[:-1]) / 100 if value.endswith("%") else float(value)
                except ValueError:
                    pass
                else:
                    run.progress = number
                    return
            elif text.startswith("::status"):
                run.status_message = text[len("::status") :].strip()
                return
        if cut:
            text += f" [... {cut} bytes cut from this line]"
            run.output.dropped_bytes += cut
        if stream == "stderr" and text.strip():
            self._last_stderr = text.strip()[:300]
        run.output.append(stream, text, self.clock.wall())
        run._changed()


def make_execution(
    job: Job, run: Run, clock: Clock, on_thread_exit: Callable[[Job], None]
) -> Execution:
    if job.kind is TargetKind.ASYNC:
        return AsyncExecution(job, run, clock)
    if job.kind is TargetKind.SYNC:
        return ThreadExecution(job, run, clock, on_thread_exit)
    return CommandExecution(job, run, clock)
