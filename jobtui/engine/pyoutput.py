"""What a Python job prints goes into its run's output, as a command's does.

Two levels:

- ``sys.stdout`` / ``sys.stderr`` writes (``print``, ``logging`` to a stream) are routed by the
  ``current_run`` context variable: a write from inside a job body (its task, its thread, and
  what they start with a copied context) lands in that run's output; any other write passes
  through. Exact, however many Python jobs run at once.
- Writes to file descriptors 1 and 2 (``os.system``, a subprocess that inherits them, C code)
  carry no context. ``DescriptorCapture`` (headless mode) points the two descriptors at pipes
  that a thread reads: while exactly one Python run is going, what arrives goes into it;
  otherwise nobody can tell whose it is, and it is handed to ``on_stray`` (headless logs it as
  an ``output`` line), never written raw beside jobtui's own log.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from .run import Run, _current_run

# Of output that no single run can be credited with, the bytes logged per read (a read is up to
# 64 KiB): a chatty os.system must not flood the headless log.
STRAY_BYTES = 4096
# The Python runs going now, by run id: only while descriptors are captured (the capture is
# the only one that asks), so a run costs nothing here otherwise.
_active: dict[str, Run] = {}
# Runs that wrote a line without its end to sys.stdout or sys.stderr: only these need a look
# when they end (most runs print nothing, or whole lines).
_open_lines: set[str] = set()
_capture: DescriptorCapture | None = None


# Both run for every Python run, on the engine's hot path (bench/engine.py): the stream's class
# is compared rather than isinstance'd, and a run that printed nothing and started with no
# capture going costs a set lookup and a dict's truth value. No lock: one dict or set store is
# atomic, and the capture thread copies the dict at one go.
def python_run_started(run: Run) -> None:
    if type(sys.stdout) is not _RoutedStream or type(sys.stderr) is not _RoutedStream:
        _install()
    if _capture is not None:
        _active[run.run_id] = run


def python_run_ended(run: Run) -> None:
    """Before the run is reported finished: what it wrote is in its output by then."""
    if run.run_id in _open_lines:
        _open_lines.discard(run.run_id)
        for stream in (sys.stdout, sys.stderr):
            if type(stream) is _RoutedStream and run.run_id in stream._partial:
                stream.flush_run(run)
    if _active:  # a capture is going, or was when the run started
        capture = _capture
        if capture is not None:
            # What the run wrote is at most a pipe's worth; a few reads take it. Reading on
            # until the pipe is empty could hold the loop for as long as another job keeps
            # writing.
            capture.drain(reads=4)
        _active.pop(run.run_id, None)


def _only_run() -> Run | None:
    runs = tuple(_active.values())  # one C call: no run can come or go halfway through it
    return runs[0] if len(runs) == 1 else None


def _append(run: Run, stream: str, texts: list[str]) -> None:
    """Lines written at one go: one notice to the run's subscribers for all of them, not one
    per line, as for a command's output."""
    output, when = run.output, run._wall() if run._wall else 0.0
    for text in texts:
        output.append(stream, text.rstrip("\r"), when)
    run._changed()


class _RoutedStream(io.TextIOBase):
    """Stands in for ``sys.stdout`` or ``sys.stderr``: a job's writes go to its run."""

    def __init__(self, name: str, fallback: TextIO) -> None:
        super().__init__()
        self.name_ = name
        self.fallback = fallback
        self._partial: dict[str, str] = {}  # run id -> the start of a line not yet ended
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        run = _current_run.get()
        if run is None or run.is_finished:
            return self.fallback.write(text)
        with self._lock:
            pending = self._partial.pop(run.run_id, "") + text
            *lines, rest = pending.split("\n")
            if rest:
                self._partial[run.run_id] = rest
                _open_lines.add(run.run_id)
        if lines:
            _append(run, self.name_, lines)
        return len(text)

    def flush_run(self, run: Run) -> None:
        with self._lock:
            rest = self._partial.pop(run.run_id, "")
        if rest:
            _append(run, self.name_, [rest])

    def flush(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.fallback.flush()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fallback.fileno()

    def isatty(self) -> bool:
        return self.fallback.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.fallback, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


def _install() -> None:
    """Route sys.stdout and sys.stderr, again if someone (a test runner, Textual) swapped
    them meanwhile; writes outside a run still reach whatever was there."""
    if not isinstance(sys.stdout, _RoutedStream):
        sys.stdout = _RoutedStream("stdout", sys.stdout)
    if not isinstance(sys.stderr, _RoutedStream):
        sys.stderr = _RoutedStream("stderr", sys.stderr)


class DescriptorCapture:
    """File descriptors 1 and 2 into pipes, read by a thread (so a job that writes a lot while
    it blocks the loop cannot dead-lock on a full pipe). ``stdout`` and ``stderr`` are streams
    on the real ones, for jobtui's own log and messages."""

    def __init__(self, on_stray: Callable[[str, str], None]) -> None:
        self._on_stray = on_stray
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._pipes: dict[int, str] = {}  # read end -> stream name
        self._pending: dict[str, bytes] = {}
        self._saved: dict[int, int] = {}  # 1 and 2 -> a copy of what they were
        self._stopping = False
        self._old_streams = (sys.stdout, sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, name in ((1, "stdout"), (2, "stderr")):
            self._saved[fd] = os.dup(fd)
            read, write = os.pipe()
            os.dup2(write, fd)
            os.close(write)
            os.set_blocking(read, False)
            self._pipes[read] = name
        self.stdout = open(os.dup(self._saved[1]), "w", buffering=1, encoding="utf-8")  # noqa: SIM115
        self.stderr = open(os.dup(self._saved[2]), "w", buffering=1, encoding="utf-8")  # noqa: SIM115
        # jobtui's own messages and tracebacks are not a job's output. sys.stdout stays on
        # descriptor 1: a stray print there is wrapped into the log, not written beside it.
        sys.stderr = self.stderr
        self._thread = threading.Thread(target=self._read, name="jobtui:fd-output", daemon=True)
        self._thread.start()
        global _capture
        _capture = self

    def _read(self) -> None:
        poller = select.poll()
        for fd in self._pipes:
            poller.register(fd, select.POLLIN)
        while not self._stopping:
            if poller.poll(200):
                self.drain()

    def drain(self, reads: int | None = None) -> None:
        """Read whatever the pipes hold now (at most ``reads`` reads of each) and hand it out."""
        with self._lock:
            for fd, name in self._pipes.items():
                for _ in itertools.repeat(None) if reads is None else range(reads):
                    try:
                        data = os.read(fd, 65536)
                    except (BlockingIOError, OSError):
                        break
                    if not data:
                        break
                    self._lines(name, data)

    def _lines(self, name: str, data: bytes) -> None:
        *lines, rest = (self._pending.pop(name, b"") + data).split(b"\n")
        if rest:
            self._pending[name] = rest
        run = _only_run()
        if run is not None:
            if lines:
                _append(run, name, [line.decode("utf-8", "replace") for line in lines])
        elif lines:
            # One hand-over per read, and a bounded one: a line each would queue millions of
            # callbacks on the loop (and log lines) for a chatty os.system, and SIGTERM would
            # wait behind them.
            block = b"\n".join(lines)
            text = block[:STRAY_BYTES].decode("utf-8", "replace")
            if len(block) > STRAY_BYTES:
                text += f"\n[... {len(block) - STRAY_BYTES} bytes not logged]"
            with contextlib.suppress(RuntimeError):  # the loop is closed
                self._loop.call_soon_threadsafe(self._on_stray, name, text)

    def stop(self) -> None:
        """Descriptors 1 and 2 back as they were; what is left in the pipes is handed out."""
        global _capture
        _capture = None
        self._stopping = True
        self._thread.join(timeout=2)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(ValueError, OSError):
                stream.flush()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        self.drain()
        with self._lock:
            for name, rest in self._pending.items():
                if rest:
                    self._on_stray(name, rest.decode("utf-8", "replace"))
            self._pending.clear()
            for fd in self._pipes:
                os.close(fd)
            self._pipes.clear()
        sys.stdout, sys.stderr = self._old_streams
        self.stdout.close()
        self.stderr.close()
