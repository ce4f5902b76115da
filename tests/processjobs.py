"""Job functions for process-mode tests: a child process imports them by module and name."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # not imported in the child: a job module need not import jobtui
    from jobtui import Run


class Unrebuildable(Exception):
    """Pickles, but cannot be rebuilt: its constructor wants two arguments."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"code {code}: {detail}")


def spin_forever(run: Run) -> None:
    run.progress = 0.25
    run.status_message = "spinning"
    while True:  # CPU-bound, and never gives the GIL a reason to stop it
        pass


def spin_with_grandchild(run: Run, pidfile: str) -> None:
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\n{pid}\n")
    while True:
        pass


def reports_then_waits(run: Run, flag: str) -> str:
    run.progress = 0.5
    run.status_message = "halfway"
    run.log("a line from run.log")
    print("a line from print", flush=True)
    while not os.path.exists(flag):
        time.sleep(0.01)
    return "finished"


def returns(value: Any) -> Any:
    return value


def in_ten_minutes() -> timedelta:
    return timedelta(minutes=10)


def raises_value_error() -> None:
    raise ValueError("bad input 42")


def raises_unrebuildable() -> None:
    raise Unrebuildable(7, "nope")


def segfaults() -> None:
    ctypes.string_at(0)


def exits_hard() -> None:
    os._exit(3)


async def async_double(value: int) -> int:
    return value * 2


def returns_a_lock() -> object:
    import threading

    return threading.Lock()
