"""Turning what a command writes to a pipe into a run's output, progress and status.

The work per chunk is a handful of byte scans in C (find, count, a regular expression); only
lines that need a decision of their own (``::progress``/``::status`` lines, lines longer than
the cap, a line split across two reads) are looked at one by one. So a job printing millions of
short lines costs the loop a few microseconds per 64 KiB, not a Python call per line.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .run import Run

# A line that may set progress or status: only these need a look of their own.
_CONTROL = re.compile(rb"^::[^\n]*", re.MULTILINE)
# Carriage returns before a newline (CRLF output, progress bars redrawing a line).
_TRAILING_CR = re.compile(rb"\r+(?=\n)|\r+\Z")


class LineSplitter:
    """One stream of one run: fed chunks as they are read, it adds whole lines to the run."""

    __slots__ = ("_cut", "_pending", "_wall", "last_error", "run", "stream")

    def __init__(self, run: Run, stream: str, wall: Callable[[], float]) -> None:
        self.run = run
        self.stream = stream
        self._wall = wall
        self._pending = bytearray()  # the start of a line whose newline has not come yet
        self._cut = 0  # bytes of that line beyond max_line, not kept
        self.last_error = ""  # stderr: the last line with text, for the run's error message

    def feed(self, data: bytes) -> None:
        last = data.rfind(b"\n")
        if last < 0:
            self._hold(data)
            return
        start = 0
        if self._pending or self._cut:
            first = data.find(b"\n")
            self._hold(data[:first])
            self._flush_pending()
            start = first + 1
        if start <= last:
            self._complete(data[start:last])
        if last + 1 < len(data):
            self._hold(data[last + 1 :])

    def finish(self) -> None:
        """The stream ended: a last line without a newline still counts."""
        if self._pending or self._cut:
            self._flush_pending()

    def _hold(self, data: bytes) -> None:
        room = self.run.output.max_line - len(self._pending)
        if len(data) > room:
            self._cut += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._pending += data

    def _flush_pending(self) -> None:
        line, cut = bytes(self._pending), self._cut
        self._pending.clear()
        self._cut = 0
        self._line(line, cut)

    def _complete(self, block: bytes) -> None:
        """``block``: whole lines joined by newlines."""
        if not (block.startswith(b"::") or b"\n::" in block):
            self._plain(block)
            return
        position = 0
        for match in _CONTROL.finditer(block):
            begin, end = match.span()
            if begin > position:
                self._plain(block[position : begin - 1])
            self._line(match.group(), 0)
            position = end + 1
        if position <= len(block):
            self._plain(block[position:])

    def _plain(self, block: bytes) -> None:
        """Whole lines without control lines: kept as one block unless one is too long."""
        max_line = self.run.output.max_line
        if len(block) > max_line and _has_long_line(block, max_line):
            for line in block.split(b"\n"):
                self._line(line[:max_line], max(0, len(line) - max_line))
            return
        if b"\r" in block:
            block = _TRAILING_CR.sub(b"", block)
        if self.stream == "stderr":
            text = block.rstrip()
            if text:
                self.last_error = _last_error(text[text.rfind(b"\n") + 1 :])
        self.run.output.append_lines(self.stream, block, block.count(b"\n") + 1, self._wall())

    def _line(self, data: bytes, cut: int) -> None:
        text = data.decode("utf-8", "replace").rstrip("\r")
        run = self.run
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
        if self.stream == "stderr" and text.strip():
            self.last_error = text.strip()[:300]
        # Already cut to max_line: append() would cut the note off again.
        run.output.append_lines(self.stream, text.encode("utf-8", "replace"), 1, self._wall())


def _has_long_line(block: bytes, max_line: int) -> bool:
    """Whether a line in ``block`` is longer than ``max_line``. A line that long covers a
    whole window of half that length, so a window without a newline is the only suspect:
    a few ``find`` calls per block instead of a look at every line."""
    window = max(1, max_line // 2)
    for start in range(0, len(block), window):
        if block.find(b"\n", start, start + window) < 0:
            end = block.find(b"\n", start)
            begin = block.rfind(b"\n", 0, start) + 1
            if (len(block) if end < 0 else end) - begin > max_line:
                return True
    return False


def _last_error(line: bytes) -> str:
    return line.decode("utf-8", "replace").strip()[:300]
