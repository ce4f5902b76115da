"""printable() benchmark: what showing a run's output lines costs, against simpler ways.

    python bench/printable.py
    python bench/printable.py --lines 20000

Each way escapes the same lines (plain ASCII log lines, CJK and emoji, lines full of escape
sequences); the table gives nanoseconds per line and MB/s of text, and each way's time as a
multiple of printable_line's, measured in the same run. Target: plain lines well under a
microsecond, so the log view never waits on it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from jobtui.engine.printable import _ESCAPES, printable_line

KINDS = {
    "ascii": "2026-12-06 17:50:07 INFO worker-3 processed 12345 records from /var/lib/x in 0.35s",
    "cjk": "2026-12-06 17:50:07 情報 処理しました 12345 件のレコード 🎉 完了 👩‍👩‍👧",
    "escapes": "\x1b[32mINFO\x1b[0m \x1b]0;title\x07 progress \x1b[2K\r 42% \u009b1A done\t!",
}


# The same escapes as printable_line's, as a str.translate table (a tab stays a tab).
_TABLE = {ord(character): shown for character, shown in _ESCAPES.items() if character != "\t"}


def per_character(text: str) -> str:
    """The obvious way: look at every character in Python."""
    return "".join(_TABLE.get(ord(ch), ch) for ch in text)


def translate(text: str) -> str:
    """str.translate with a mapping, no fast path."""
    return text.translate(_TABLE)


WAYS: dict[str, Callable[[str], str]] = {
    "printable_line": printable_line,
    "str.translate": translate,
    "per character": per_character,
}


def measure(way: Callable[[str], str], lines: list[str]) -> float:
    """Best of five passes, in seconds per line."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for line in lines:
            way(line)
        best = min(best, time.perf_counter() - start)
    return best / len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10000, help="lines per pass (default 10000)")
    args = parser.parse_args()
    print(f"{'lines':<8} {'way':<15} {'ns/line':>9} {'MB/s':>8} {'x printable_line':>17}")
    for kind, sample in KINDS.items():
        lines = [f"{sample} {n}" for n in range(args.lines)]  # distinct strings, as output is
        size = sum(len(line.encode()) for line in lines) / len(lines)
        for line in lines[:50]:  # every way must show the same thing
            assert translate(line) == printable_line(line) == per_character(line), line
        timings = {name: measure(way, lines) for name, way in WAYS.items()}
        for name, seconds in timings.items():
            ratio = seconds / timings["printable_line"]
            print(
                f"{kind:<8} {name:<15} {seconds * 1e9:>9.0f} {size / seconds / 1e6:>8.1f} "
                f"{ratio:>16.1f}x"
            )


if __name__ == "__main__":
    main()
