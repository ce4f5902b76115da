"""The child side of a process-mode run (see processes.py). Started as a fresh interpreter, it
reads what to call from stdin, calls it, and sends progress, status, log lines and then the
return value or the exception back over an inherited pipe.

It imports nothing of jobtui (importing the package costs a fresh interpreter about 0.2 s) and
is executed from its path with ``-P``, so neither this folder nor the current one lands on the
import path: a job module named ``events`` or ``json`` is never shadowed.
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import pickle
import signal
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any

# asyncio, ctypes, datetime, runpy and traceback are imported where needed: together they
# would add about 40 ms to every run's start.

STATE_INTERVAL = 0.05  # progress and status are sent at most this often (seconds)


class Channel:
    """Length-prefixed pickles to the parent; one writer at a time (the body may use threads)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()

    def send(self, *message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        frame = struct.pack(">I", len(data)) + data
        with self.lock:
            view = memoryview(frame)
            while view:
                view = view[os.write(self.fd, view) :]


class ChildRun:
    """What a job body sees as its ``run`` in the child: the same attributes and ``log()`` as
    jobtui's Run; progress and status reach the parent at most every ``STATE_INTERVAL``."""

    def __init__(self, channel: Channel, info: dict[str, Any]) -> None:
        self._channel = channel
        self.job_id: str = info["job_id"]
        self.run_id: str = info["run_id"]
        self.attempt: int = info["attempt"]
        self.manual: bool = info["manual"]
        self.scheduled_ts: float = info["scheduled_ts"]
        self._progress: float | None = info.get("progress")
        self._status_message: str = info.get("status_message", "")
        self._dirty = False

    @property
    def scheduled_for(self) -> Any:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(self.scheduled_ts, UTC)

    @property
    def progress(self) -> float | None:
        return self._progress

    @progress.setter
    def progress(self, value: float | None) -> None:
        if value is not None:
            value = min(1.0, max(0.0, float(value)))
        if value != self._progress:
            self._progress = value
            self._dirty = True

    @property
    def status_message(self) -> str:
        return self._status_message

    @status_message.setter
    def status_message(self, value: object) -> None:
        text = "" if value is None else str(value)
        if text != self._status_message:
            self._status_message = text
            self._dirty = True

    def log(self, message: object) -> None:
        self.send_state()  # a status set just before a log line arrives before it
        self._channel.send("log", str(message))

    def send_state(self) -> None:
        if self._dirty:
            self._dirty = False
            self._channel.send("state", self._progress, self._status_message)

    def keep_sending(self) -> None:
        stop = threading.Event()
        while not stop.wait(STATE_INTERVAL):
            self.send_state()


def _die_with_parent(parent: int) -> None:
    """A child is in its own session, out of reach of a terminal's hang-up: if the scheduler's
    process is killed outright, the kernel kills the child too."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _resolve(spec: dict[str, Any]) -> Callable[..., Any]:
    module_name: str = spec["module"]
    if spec.get("main_path"):
        import runpy

        # The scheduler's own script: run as __mp_main__ (as multiprocessing does), so its
        # `if __name__ == "__main__":` block does not start a second scheduler here.
        namespace = runpy.run_path(spec["main_path"], run_name="__mp_main__")
        obj: Any = type(sys)("__mp_main__")
        obj.__dict__.update(namespace)
        sys.modules["__mp_main__"] = sys.modules["__main__"] = obj
    else:
        obj = importlib.import_module(module_name)
    for part in spec["qualname"].split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def _error_message(exc: BaseException) -> tuple[Any, ...]:
    import traceback

    text = "".join(traceback.format_exception(exc))
    try:
        blob = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)  # some pickle but cannot be rebuilt (required arguments)
        data: bytes | None = blob
    except Exception:
        data = None
    return ("error", data, type(exc).__qualname__, str(exc), text)


def main() -> None:
    parent, fd = int(sys.argv[1]), int(sys.argv[2])
    _die_with_parent(parent)
    faulthandler.enable()  # a crash in C code leaves a Python traceback in the run's output
    channel = Channel(fd)
    spec = pickle.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # like a command's: a job that reads stdin gets end-of-file, not a hang
    os.close(null)
    sys.path[:] = spec["sys_path"]
    run = ChildRun(channel, spec["run"])
    threading.Thread(target=run.keep_sending, name="jobtui:state", daemon=True).start()
    try:
        target = _resolve(spec)
        # A body that asks jobtui for its run gets this one (only when it imported jobtui).
        run_module = sys.modules.get("jobtui.engine.run")
        if run_module is not None:
            run_module._current_run.set(run)
        args = (run, *spec["args"]) if spec["takes_run"] else tuple(spec["args"])
        value = target(*args, **spec["kwargs"])
        if hasattr(value, "__await__"):  # an async function, or one that returned a coroutine
            import asyncio

            value = asyncio.run(_awaited(value))
        run.send_state()
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"the return value {value!r:.200} cannot be sent back from the child process: {exc}"
            ) from exc
        message: tuple[Any, ...] = ("ok", data)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the job failed
        run.send_state()
        message = _error_message(exc)
    sys.stdout.flush()
    sys.stderr.flush()
    channel.send(*message)
    # Not a normal exit: threads the body left running must not keep the run going.
    os._exit(0)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


if __name__ == "__main__":
    main()
