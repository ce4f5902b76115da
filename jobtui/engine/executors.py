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

from .capture import LineSplitter
from .clock import Clock, TimerHandle
from .job import Job, TargetKind
from .procfs import group_has_live_member, holds_any, pipe_holders
from .pyoutput import python_run_ended, python_run_started
from .run import Outcome, Run, RunError, _current_run

# After a command's main process exits, how long to keep reading output a grandchild may still
# be writing. Real time on purpose: it bounds I/O, it is not part of any schedule.
DRAIN_SECONDS = 1.0
# How often an interrupted command's group is looked for while it winds down (real time too).
GROUP_POLL_SECONDS = 0.05


def signal_name(number: int) -> str:
    """ "SIGTERM" for 15; realtime signals, which Signals does not list, as "SIGRTMIN+3"."""
    try:
        return signal.Signals(number).name
    except ValueError:
        if signal.SIGRTMIN < number < signal.SIGRTMAX:
            return f"SIGRTMIN+{number - signal.SIGRTMIN}"
        return f"signal {number}"


# Read for every run: an Enum member read through its class costs as much as a function call
# in Python 3.11 (the class's metaclass keeps the lookup off the attribute cache).
_SUCCEEDED = Outcome.SUCCEEDED


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: Outcome
    value: Any = None


# Most bodies return None: one result serves them all (frozen, so it can be shared).
SUCCEEDED_WITH_NONE = AttemptResult(Outcome.SUCCEEDED)


class Execution:
    """One attempt of one run."""

    # Slots: one is made per attempt, on the hot path of every run.
    __slots__ = ("before_start", "clock", "interrupted", "job", "run", "task")

    def __init__(self, job: Job, run: Run, clock: Clock) -> None:
        self.job = job
        self.run = run
        self.clock = clock
        # A coroutine's run task: set by the runner when it made the task for this attempt,
        # else looked up when the attempt starts (kept here: a subclass __init__ per attempt
        # would be one more call on the hot path).
        self.task: asyncio.Task[Any] | None = None
        self.interrupted: tuple[Outcome, str] | None = None
        # Set while middleware runs before the job starts (see middleware.py).
        self.before_start: Callable[[], None] | None = None

    async def execute(self) -> AttemptResult:
        raise NotImplementedError

    def interrupt(self, outcome: Outcome, reason: str) -> None:
        """Stop the attempt; it ends with ``outcome`` (timed_out or cancelled)."""
        if self.interrupted is None:
            self.interrupted = (outcome, reason)
            if self.before_start is not None:
                self.before_start()
            self._stop()

    def _stop(self) -> None:
        raise NotImplementedError

    def call(self) -> Any:
        """Call the job's function (for a coroutine function: the coroutine to await)."""
        job, run = self.job, self.run
        opts = job.options
        args = (run, *opts.args) if job.takes_run else opts.args
        kwargs = opts.kwargs
        # Most jobs take no keywords: a call without ** is cheaper than one with an empty dict.
        return job.target(*args, **kwargs) if kwargs else job.target(*args)

    def _interrupted_result(self) -> AttemptResult:
        assert self.interrupted is not None
        outcome, reason = self.interrupted
        self.run.reason = reason
        if outcome is Outcome.TIMED_OUT:
            self.run.error = RunError("Timeout", reason)
        return AttemptResult(outcome)

    def returned(self, value: Any) -> AttemptResult:
        """The body returned ``value`` (an interrupt that came meanwhile still wins)."""
        if self.interrupted is not None:
            return self._interrupted_result()
        return SUCCEEDED_WITH_NONE if value is None else AttemptResult(_SUCCEEDED, value)

    def raised(self, exc: BaseException) -> AttemptResult:
        """The body raised ``exc``: the attempt failed (unless it was interrupted)."""
        if self.interrupted is not None:
            return self._interrupted_result()
        self.run.error = RunError.from_exception(exc)
        self.run._exception = exc
        return AttemptResult(Outcome.FAILED)

    def _from_body(self, status: str, payload: Any) -> AttemptResult:
        return self.returned(payload) if status == "ok" else self.raised(payload)


class AsyncExecution(Execution):
    """A coroutine function, awaited inside the run's own task on the scheduler's loop.

    No task of its own: a second task per run would halve how many runs a second the
    scheduler can start. Interrupting cancels the run's task, and the cancellation is taken
    back (``uncancel``) once it has been turned into the run's outcome.

    An attempt is ``begin()``, the body (``call()``), what came of it (``returned``,
    ``raised`` or ``cancelled``) and ``end()``. ``execute`` puts them together; so does the
    runner's plain path, around its own await of the body (one coroutine less per run: see
    ``Runner._execute_plain``)."""

    __slots__ = ()

    async def execute(self) -> AttemptResult:
        token = self.begin()
        try:
            return self.returned(await self.call())
        except asyncio.CancelledError:
            if self.interrupted is None:
                raise  # not this attempt's interrupt: the scheduler is shutting down
            return self.cancelled()
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the job failed
            return self.raised(exc)
        finally:
            self.end(token)

    def begin(self) -> contextvars.Token[Run | None]:
        """The body is about to be called in this task: what it prints goes to its run."""
        if self.task is None:
            self.task = asyncio.current_task()
        python_run_started(self.run)
        return _current_run.set(self.run)

    def cancelled(self) -> AttemptResult:
        """The task was cancelled by ``interrupt()``: the cancellation is taken back (the task
        goes on to report the run) and becomes the attempt's outcome."""
        if self.task is not None:
            self.task.uncancel()
        return self._interrupted_result()

    def end(self, token: contextvars.Token[Run | None]) -> None:
        _current_run.reset(token)
        python_run_ended(self.run)

    def _stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


class ThreadExecution(Execution):
    """A plain function, run in its own daemon thread so it never blocks the loop.

    Python cannot stop a thread: on timeout or cancel the run ends at once, and the thread is
    left to finish; the job gets no new run while it lives (see ``Job._threads_alive``).
    """

    __slots__ = ("_future", "_on_thread_exit")

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
                result: tuple[str, Any] = ("ok", context.run(self.call))
            except BaseException as exc:
                result = ("error", exc)
            # RuntimeError: the loop is closed, nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(finished, result)

        job._threads_alive += 1
        python_run_started(self.run)
        threading.Thread(target=body, name=f"jobtui:{job.id}", daemon=True).start()
        try:
            status, payload = await future
        finally:
            python_run_ended(self.run)
        return self._from_body(status, payload)

    def _stop(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(("interrupted", None))


class _Pipes(asyncio.SubprocessProtocol):
    """A command's stdout and stderr, handed to the run chunk by chunk as the loop reads them
    (no stream buffer in between), and the moments its process exits and its pipes close."""

    def __init__(self, run: Run, wall: Callable[[], float]) -> None:
        loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.streams = {1: LineSplitter(run, "stdout", wall), 2: LineSplitter(run, "stderr", wall)}
        self._open = 2
        self._run = run

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        assert isinstance(data, bytes)
        self.streams[fd].feed(data)
        self._run._changed()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in self.streams:
            self.streams[fd].finish()
            self._run._changed()
            self._open -= 1
            if self._open == 0 and not self.closed.done():
                self.closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def spawn_group(
    run: Run,
    clock: Clock,
    argv: list[str],
    *,
    stdin: int,
    cwd: str | None,
    env: dict[str, str] | None,
    pass_fds: tuple[int, ...] = (),
) -> tuple[asyncio.SubprocessTransport, _Pipes]:
    """Start ``argv`` as the leader of a new process group (a timeout or cancel signals the
    whole group), its stdout and stderr read into ``run``'s output."""
    return await asyncio.get_running_loop().subprocess_exec(
        lambda: _Pipes(run, clock.wall),
        *argv,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
        pass_fds=pass_fds,
    )


class CommandExecution(Execution):
    """A shell command (``/bin/sh -c``) or an argv list, in its own process group.

    Output is read in chunks and split into lines (see ``capture``), so neither a 1 MB line nor
    a million short ones can stall the reader; ``::progress 0.42`` / ``::progress 42%`` and
    ``::status text`` lines set the run's progress and status instead of being logged.
    Interrupting sends SIGTERM to the whole group, then SIGKILL after ``kill_grace``, so no
    grandchild survives.

    A process that left the group (``setsid``, a daemon) is out of reach of the group's signals
    and may hold the output pipes for as long as it lives. The run never waits for it: once the
    command's own process has exited (and, when interrupted, the group is gone), output is read
    for ``DRAIN_SECONDS`` more and then no longer. Whoever still holds the pipes is named in the
    run's output, and in its reason and error when the run was interrupted. Those processes are
    killed only when the run was interrupted (a timeout, cancel or stop must stop the work), and
    only while they hold this run's own pipe (checked through a pidfd, so a reused pid is never
    hit); after a normal exit they are left alone, since a command may start a daemon on
    purpose. A process that escaped and closed the pipes is not seen at all: run such commands
    in a cgroup (``systemd-run --scope``) to keep them contained.
    """

    __slots__ = ("_kill_timer", "_killed", "_pgid")

    def __init__(self, job: Job, run: Run, clock: Clock) -> None:
        super().__init__(job, run, clock)
        self._pgid: int | None = None
        self._kill_timer: TimerHandle | None = None
        self._killed: asyncio.Future[None] | None = None

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
            transport, pipes = await spawn_group(
                run,
                self.clock,
                argv,
                stdin=asyncio.subprocess.DEVNULL,
                cwd=job.options.cwd,
                env=env,
            )
        except OSError as exc:
            run.error = RunError.from_exception(exc)
            return AttemptResult(Outcome.FAILED)
        pid = transport.get_pid()
        self._pgid = pid
        run.pid = pid
        run._changed()  # subscribers (the store) learn the pid while it runs
        if self.interrupted is not None:  # interrupted while it was being started
            self._stop()
        inodes = _pipe_inodes(transport)
        escaped = ""
        try:
            await pipes.exited
            # Interrupted: the rest of the group had the same SIGTERM and may still be on its
            # way out. Wait until it is gone, or out kill_grace (then SIGKILL reaches it).
            while self.interrupted is not None and self._group_alive():
                waiters = [self._killed] if pipes.closed.done() else [self._killed, pipes.closed]
                await asyncio.wait(waiters, timeout=GROUP_POLL_SECONDS)
                if self._killed.done():
                    break
            if not pipes.closed.done():
                await asyncio.wait([pipes.closed], timeout=DRAIN_SECONDS)
            if not pipes.closed.done():
                escaped = await self._escaped(inodes)
        except asyncio.CancelledError:
            self._signal(signal.SIGKILL)
            raise
        finally:
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            transport.close()  # stop reading: whoever still holds the pipes gets EPIPE
        returncode = transport.get_returncode()
        assert returncode is not None
        if returncode < 0:
            run.signal = signal_name(-returncode)
        else:
            run.exit_code = returncode
        if self.interrupted is not None:
            if escaped:
                outcome, reason = self.interrupted
                self.interrupted = (outcome, f"{reason}; {escaped}")
            return self._interrupted_result()
        if returncode == 0:
            return AttemptResult(Outcome.SUCCEEDED)
        last_error = pipes.streams[2].last_error
        detail = f": {last_error}" if last_error else ""
        if returncode < 0:
            run.error = RunError("Signal", f"killed by {run.signal}{detail}")
        else:
            run.error = RunError("ExitStatus", f"exited with status {returncode}{detail}")
        return AttemptResult(Outcome.FAILED)

    async def _escaped(self, inodes: set[int]) -> str:
        """Name (and, for an interrupted run, kill) the processes outside the group that keep
        the output pipes open; the text goes into the run's record. Looking through /proc
        takes a while on a busy machine: off the loop."""
        holders = await asyncio.to_thread(pipe_holders, inodes, os.getpid())
        outside = {pid: name for pid, name in holders.items() if _pgid_of(pid) != self._pgid}
        if not outside:
            return ""
        names = ", ".join(f"pid {pid} ({name})" for pid, name in sorted(outside.items()))
        verb = "escapes" if len(outside) == 1 else "escape"
        text = f"{names} left the command's process group and kept its output open"
        if self.interrupted is not None:
            killed = [pid for pid in outside if kill_pipe_holder(pid, inodes)]
            text += "; killed" if killed else "; not killed (it had exited, or no pidfd)"
        else:
            text += f": its output after this is not captured, and it {verb} timeouts"
        self.run.output.append("log", text, self.clock.wall())
        self.run._changed()
        return text

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


def _pipe_inodes(transport: asyncio.SubprocessTransport) -> set[int]:
    inodes = set()
    for fd in (1, 2):
        pipe = transport.get_pipe_transport(fd)
        handle = pipe.get_extra_info("pipe") if pipe is not None else None
        if handle is not None:
            with contextlib.suppress(OSError, ValueError):
                inodes.add(os.fstat(handle.fileno()).st_ino)
    return inodes


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def kill_pipe_holder(pid: int, inodes: set[int]) -> bool:
    """SIGKILL ``pid`` if it (still) holds one of these pipes. The pidfd pins the process: if
    it is still alive when signalled, the pid was not reused, and it was the holder."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if not holds_any(pid, {f"pipe:[{inode}]" for inode in inodes}):
            return False
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)


def make_execution(
    job: Job, run: Run, clock: Clock, on_thread_exit: Callable[[Job], None]
) -> Execution:
    if job.kind is TargetKind.ASYNC:
        return AsyncExecution(job, run, clock)
    if job.kind is TargetKind.SYNC:
        return ThreadExecution(job, run, clock, on_thread_exit)
    return CommandExecution(job, run, clock)
