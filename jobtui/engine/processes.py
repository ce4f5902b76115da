"""Process mode: a Python function run in a child process of its own, so that a timeout or a
cancel can stop it (a thread cannot be stopped) and a function that holds the GIL does not slow
the scheduler.

Each attempt starts a fresh interpreter (``sys.executable``; nothing of the scheduler's threads
or state is inherited, as with multiprocessing's "spawn") in its own process group. What to call
goes in on its stdin; its stdout and stderr are read like a command's; progress, status, log
lines and then the return value or the exception come back as pickles over a separate pipe
(child.py). A timeout or cancel signals the whole group, as for a command.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import struct
import sys
from typing import Any

from .errors import InvalidJobOption, RemoteError
from .executors import (
    DRAIN_SECONDS,
    GROUP_POLL_SECONDS,
    AttemptResult,
    CommandExecution,
    signal_name,
    spawn_group,
)
from .job import Job, TargetKind
from .run import Outcome, Run, RunError

CHILD_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "child.py")
# -P: neither the current folder nor child.py's own is put on the import path (see child.py).
_BOOT = "import sys; exec(compile(open(sys.argv[3], 'rb').read(), sys.argv[3], 'exec'))"
RUN_MODES = ("thread", "async", "process")


def check_run_mode(kind: TargetKind, target: Any, run_mode: str | None, job_id: str) -> None:
    """Whether ``run_mode`` fits the job's target; raises InvalidJobOption saying why not."""
    if run_mode is None:
        return
    problem = _mode_mismatch(kind, run_mode)
    if problem:
        raise InvalidJobOption(problem, key="run_mode", job_id=job_id)
    if run_mode == "process":
        problem = _not_importable(target)
        if problem:
            raise InvalidJobOption(
                f"{problem}: a process-mode run imports its function anew in a child process, "
                "so it must be a module-level function (def at the top of a module)",
                key="run_mode",
                job_id=job_id,
            )


def _mode_mismatch(kind: TargetKind, run_mode: str) -> str:
    if kind is TargetKind.COMMAND:
        return (
            f'"{run_mode}" is for Python functions (run = "module:function"); a command always '
            "runs in a process of its own: remove run_mode"
        )
    if run_mode == "thread" and kind is TargetKind.ASYNC:
        return (
            '"thread" is for plain functions; this is a coroutine function: use "async" '
            '(on the event loop) or "process"'
        )
    if run_mode == "async" and kind is TargetKind.SYNC:
        return (
            '"async" is for coroutine functions (async def); this is a plain function: use '
            '"thread" or "process"'
        )
    return ""


def _not_importable(target: Any) -> str:
    module_name = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if not isinstance(module_name, str) or not isinstance(qualname, str):
        return f"{target!r} has no module and name to import it by"
    if "<lambda>" in qualname:
        return "a lambda cannot be imported"
    if "<locals>" in qualname:
        return f"{qualname} is defined inside a function"
    module = sys.modules.get(module_name)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if obj is not target:
        return f"{module_name}:{qualname} is not the function given"
    if module_name == "__main__" and not getattr(module, "__file__", None):
        return "a function typed into the interactive interpreter cannot be imported"
    return ""


def _target_spec(job: Job, run: Run) -> dict[str, Any]:
    target = job.target
    module_name: str = target.__module__
    main_path = None
    if module_name == "__main__":
        main_path = os.path.abspath(sys.modules["__main__"].__file__ or "")
    return {
        "sys_path": [os.path.abspath(p) if p else os.getcwd() for p in sys.path],
        "module": module_name,
        "main_path": main_path,
        "qualname": target.__qualname__,
        "args": tuple(job.options.args),
        "kwargs": dict(job.options.kwargs or {}),
        "takes_run": job.takes_run,
        "run": {
            "job_id": run.job_id,
            "run_id": run.run_id,
            "attempt": run.attempt,
            "manual": run.manual,
            "scheduled_ts": run.scheduled_ts,
            "progress": run.progress,
            "status_message": run.status_message,
        },
    }


class _Messages(asyncio.Protocol):
    """The child's reports, applied to the run as they arrive."""

    def __init__(self, run: Run) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.final: tuple[Any, ...] | None = None
        self._buffer = bytearray()
        self._run = run

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            (size,) = struct.unpack_from(">I", buffer)
            if len(buffer) < 4 + size:
                break
            frame = bytes(buffer[4 : 4 + size])
            del buffer[: 4 + size]
            try:
                message = pickle.loads(frame)
            except Exception as exc:  # a class the parent cannot import: say so, go on
                self._run.log(f"a message from the child process could not be read: {exc}")
                continue
            self._apply(message)

    def _apply(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "state":
            self._run.progress, self._run.status_message = message[1], message[2]
        elif kind == "log":
            self._run.log(message[1])
        else:
            self.final = message

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class ProcessExecution(CommandExecution):
    """A function run in a child process; stopped like a command (its group gets SIGTERM,
    then SIGKILL after ``kill_grace``)."""

    async def execute(self) -> AttemptResult:
        job, run = self.job, self.run
        try:
            spec = pickle.dumps(_target_spec(job, run), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            run.error = RunError(
                type(exc).__qualname__,
                f"the job's args or kwargs cannot be sent to a child process: {exc}",
            )
            return AttemptResult(Outcome.FAILED)
        env = {**os.environ, **(job.options.env or {}), "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-P", "-c", _BOOT]
        loop = asyncio.get_running_loop()
        self._killed = loop.create_future()
        read_fd, write_fd = os.pipe()
        try:
            transport, pipes = await spawn_group(
                run,
                self.clock,
                [*argv, str(os.getpid()), str(write_fd), CHILD_PATH],
                stdin=asyncio.subprocess.PIPE,
                cwd=job.options.cwd,
                env=env,
                pass_fds=(write_fd,),
            )
        except OSError as exc:
            os.close(read_fd)
            run.error = RunError.from_exception(exc)
            return AttemptResult(Outcome.FAILED)
        except BaseException:  # cancelled while starting: asyncio kills what it started
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        pid = transport.get_pid()
        self._pgid = pid
        messages = _Messages(run)
        try:
            reader, _ = await loop.connect_read_pipe(lambda: messages, open(read_fd, "rb", 0))  # noqa: SIM115
        except BaseException:  # cancelled: the child, waiting on stdin for its call, would stay
            self._signal(signal.SIGKILL)
            transport.close()
            raise
        run.pid = pid
        run._changed()
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        stdin.write(spec)
        stdin.close()
        if self.interrupted is not None:
            self._stop()
        try:
            await pipes.exited
            while self.interrupted is not None and self._group_alive():
                await asyncio.wait([self._killed], timeout=GROUP_POLL_SECONDS)
                if self._killed.done():
                    break
            # The last report may still be in the pipe when the process has exited.
            ends = [f for f in (pipes.closed, messages.closed) if not f.done()]
            if ends:
                await asyncio.wait(ends, timeout=DRAIN_SECONDS)
        except asyncio.CancelledError:
            self._signal(signal.SIGKILL)
            raise
        finally:
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            transport.close()
            reader.close()
        returncode = transport.get_returncode()
        assert returncode is not None
        if self.interrupted is not None:
            if returncode < 0:  # as for a command: which signal ended it
                run.signal = signal_name(-returncode)
            return self._interrupted_result()
        return self._outcome(messages.final, returncode, pipes.streams[2].last_error)

    def _outcome(
        self, final: tuple[Any, ...] | None, returncode: int, last_error: str
    ) -> AttemptResult:
        run = self.run
        if final is not None and final[0] == "ok":
            try:
                return AttemptResult(Outcome.SUCCEEDED, pickle.loads(final[1]))
            except Exception as exc:
                final = ("error", None, type(exc).__qualname__, str(exc), "")
        if final is not None:
            _, data, type_name, message, text = final
            run.error = RunError(type_name, message, text)
            run._exception = _rebuild(data) or RemoteError(type_name, message, text)
            return AttemptResult(Outcome.FAILED)
        detail = f": {last_error}" if last_error else ""
        if returncode < 0:
            run.signal = signal_name(-returncode)
            # Its last stderr line is the bottom of faulthandler's dump, not the cause.
            text = f"the child process was killed by {run.signal} (its output may show where)"
            run.error = RunError("Signal", text)
        else:
            run.exit_code = returncode
            text = (
                f"the child process exited with status {returncode} before the function "
                f"returned{detail}"
            )
            run.error = RunError("ExitStatus", text)
        run._exception = RemoteError(run.error.type, text, "")
        return AttemptResult(Outcome.FAILED)


def _rebuild(data: bytes | None) -> BaseException | None:
    if data is None:
        return None
    try:
        exc = pickle.loads(data)
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None
