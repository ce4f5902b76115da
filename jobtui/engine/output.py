"""A run's captured output: bytes kept in blocks of whole lines, numbered from the run's first
line, capped to a head and a tail.

A chatty command writes hundreds of thousands of lines a second; making a Python object per
line would cost the loop more than the command costs the machine. A block is what one read from
the pipe held (or one ``Run.log`` line): its lines are only made into ``LogLine`` objects when
somebody reads them, and only the lines asked for.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogLine:
    time: float  # wall clock, seconds since the epoch
    stream: str  # "stdout", "stderr" or "log" (Run.log and notes from the scheduler)
    text: str


class _Block:
    """Consecutive lines of one stream read at one time: ``data`` is the lines joined by
    newlines (UTF-8, undecoded), ``first`` the number of the first line in the whole run."""

    __slots__ = ("count", "data", "first", "stream", "time")

    def __init__(self, first: int, time: float, stream: str, data: bytes, count: int) -> None:
        self.first = first
        self.time = time
        self.stream = stream
        self.data = data
        self.count = count

    @property
    def size(self) -> int:  # what the lines cost as printed: each with its newline
        return len(self.data) + 1

    def texts(self) -> list[str]:
        return self.data.decode("utf-8", "replace").split("\n")

    def drop_front(self, lines: int, end: int) -> None:
        """Forget the first ``lines`` lines, which end at byte ``end`` (a newline)."""
        self.data = self.data[end + 1 :]
        self.first += lines
        self.count -= lines


class RunOutput:
    """Captured output, capped: the first ``head_bytes`` and the last ``tail_bytes`` are kept.

    What falls between is counted in ``dropped_bytes`` and ``dropped_lines``, so a job that
    prints gigabytes costs a bounded amount of memory and the record still says how much it
    printed. A single line longer than ``max_line`` is cut to that length. Lines are numbered
    from the run's first line: ``since`` reads on from a number, whatever was dropped meanwhile.
    """

    __slots__ = (
        "_head",
        "_head_closed",
        "_head_size",
        "_kept_lines",
        "_lock",
        "_tail",
        "_tail_from",
        "_tail_size",
        "dropped_bytes",
        "dropped_lines",
        "head_bytes",
        "max_line",
        "tail_bytes",
        "total_lines",
    )

    def __init__(
        self, head_bytes: int = 64 * 1024, tail_bytes: int = 256 * 1024, max_line: int = 16 * 1024
    ) -> None:
        self.head_bytes = head_bytes
        self.tail_bytes = tail_bytes
        self.max_line = max_line
        self._head: list[_Block] = []
        self._head_size = 0
        self._head_closed = False  # once a line went to the tail, the head is complete
        # Blocks from index _tail_from on are kept; the list is compacted now and then, so a
        # reader can bisect it and dropping a block from the front costs nothing.
        self._tail: list[_Block] = []
        self._tail_from = 0
        self._tail_size = 0
        self._kept_lines = 0
        self.dropped_bytes = 0
        self.dropped_lines = 0
        self.total_lines = 0
        self._lock = threading.Lock()  # a thread job and the loop may both write

    # -- writing ---------------------------------------------------------------------------
    def append(self, stream: str, text: str, when: float) -> None:
        """Add one line (a ``Run.log`` message or a note from the scheduler)."""
        cut = 0
        if len(text) > self.max_line:
            cut = len(text.encode("utf-8", "replace")) - self.max_line
            text = text[: self.max_line] + f" [... {cut} bytes cut from this line]"
        data = text.encode("utf-8", "replace")
        with self._lock:
            self.dropped_bytes += max(cut, 0)
            self._add(stream, data, data.count(b"\n") + 1, when)

    def append_lines(self, stream: str, data: bytes, count: int, when: float) -> None:
        """Add ``count`` whole lines, ``data`` being them joined by newlines; the caller has
        made sure none is longer than ``max_line``."""
        with self._lock:
            self._add(stream, data, count, when)

    def _add(self, stream: str, data: bytes, count: int, when: float) -> None:
        first = self.total_lines
        self.total_lines += count
        self._kept_lines += count
        size = len(data) + 1
        if not self._head_closed:
            room = self.head_bytes - self._head_size
            if size > room:
                # Fill the head with the lines that fit; the rest opens the tail.
                end = data.rfind(b"\n", 0, room)
                if end >= 0:
                    lines = data.count(b"\n", 0, end) + 1
                    self._head.append(_Block(first, when, stream, data[:end], lines))
                    self._head_size += end + 1
                    data, count, first = data[end + 1 :], count - lines, first + lines
                    size = len(data) + 1
                self._head_closed = True
            else:
                self._head.append(_Block(first, when, stream, data, count))
                self._head_size += size
                return
        self._tail.append(_Block(first, when, stream, data, count))
        self._tail_size += size
        if self._tail_size > self.tail_bytes:
            self._trim()

    def _trim(self) -> None:
        tail = self._tail
        while self._tail_size > self.tail_bytes:
            block = tail[self._tail_from]
            excess = self._tail_size - self.tail_bytes
            last = self._tail_from == len(tail) - 1
            newest_left = False
            end = -1
            if not (block.size <= excess and not last):
                end = block.data.find(b"\n", max(excess - 1, 0))
                if end < 0 and last:
                    # The newest line is always kept, however long: only the lines before go.
                    end = block.data.rfind(b"\n")
                    if end < 0:
                        break
                    newest_left = True
            if end < 0:  # the whole block goes
                self._tail_from += 1
                lines, size = block.count, block.size
            else:
                lines, size = block.data.count(b"\n", 0, end) + 1, end + 1
                block.drop_front(lines, end)
            self._tail_size -= size
            self._kept_lines -= lines
            self.dropped_bytes += size
            self.dropped_lines += lines
            if newest_left:
                break
        if self._tail_from > 64 and self._tail_from * 2 > len(tail):
            del tail[: self._tail_from]
            self._tail_from = 0

    # -- reading ---------------------------------------------------------------------------
    def _blocks(self) -> list[_Block]:
        return [*self._head, *self._tail[self._tail_from :]]

    def since(self, start: int, limit: int) -> tuple[list[LogLine], int]:
        """Up to ``limit`` lines numbered ``start`` on (a negative ``start`` counts back from
        the end), and the number to ask for next. Lines already dropped are skipped: the
        lines returned follow each other, so when the first is numbered above ``start``,
        the difference was dropped. Nothing new: no lines, and ``start`` back."""
        with self._lock:
            if start < 0:
                start = max(0, self.total_lines + start)
            if start >= self.total_lines or limit <= 0:
                return [], max(start, 0)
            head = self._head
            tail = self._tail
            if head and start < head[-1].first + head[-1].count:
                blocks, index = head, bisect_right(head, start, key=_first) - 1
            else:
                blocks = tail
                index = bisect_right(tail, start, lo=self._tail_from, key=_first) - 1
                index = max(index, self._tail_from)
            index = max(index, 0)
            lines: list[LogLine] = []
            number = start
            while index < len(blocks) and len(lines) < limit:
                block = blocks[index]
                if lines and block.first != number:
                    break  # a gap: the next call reports it
                number = max(number, block.first)
                skip = number - block.first
                if skip < block.count:
                    texts = block.texts()[skip : skip + limit - len(lines)]
                    lines.extend(LogLine(block.time, block.stream, text) for text in texts)
                    number += len(texts)
                index += 1
            return lines, number

    def lines(self) -> list[LogLine]:
        with self._lock:
            blocks = self._blocks()
        return [LogLine(b.time, b.stream, text) for b in blocks for text in b.texts()]

    def text(self) -> str:
        """The kept output as text, with a note where lines were dropped."""
        with self._lock:
            parts = [block.data for block in self._head]
            if self.dropped_lines:
                note = f"[... {self.dropped_lines} lines ({self.dropped_bytes} bytes) dropped ...]"
                parts.append(note.encode())
            parts.extend(block.data for block in self._tail[self._tail_from :])
        return b"\n".join(parts).decode("utf-8", "replace")

    def __len__(self) -> int:
        return self._kept_lines


def _first(block: _Block) -> int:
    return block.first
