"""Where things are in a TOML file: tomllib returns values without positions, so the source is
scanned for table headers and ``key =`` lines to point errors at the right line and column."""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"""^(\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|=)""")
# _HEADER over the whole file at once (the lines joined with "\n"): the same pattern with no
# part able to reach past the end of its line, so it matches exactly the lines _HEADER does.
_HEADERS = re.compile(r"^[^\S\n]*\[[^\S\n]*([^\[\]\n]+?)[^\S\n]*\][^\S\n]*(#.*)?$", re.MULTILINE)


def _unquote(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part


def _split_dotted(text: str) -> tuple[str, ...]:
    if '"' not in text and "'" not in text:  # the usual [jobs.name]: no quote to keep a dot
        return tuple(part.strip() for part in text.split("."))
    parts, current, quote = [], "", ""
    for char in text:
        if quote:
            current += char
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            current += char
        elif char == ".":
            parts.append(_unquote(current))
            current = ""
        else:
            current += char
    parts.append(_unquote(current))
    return tuple(parts)


def _place_table(tables: dict[tuple[str, ...], int], header: str, number: int) -> tuple[str, ...]:
    table = _split_dotted(header)
    for depth in range(1, len(table) + 1):  # [job.a] also places "job"
        tables.setdefault(table[:depth], number)
    return table


class Locator:
    """Line and column of tables and keys, 1-based.

    Every job's spec records its table's line, so the tables are found at once; the keys are
    only wanted to place a problem, so their line-by-line scan (most of the time, with ten
    thousand jobs) waits until one is asked for. A file without multi-line strings, where no
    header can hide inside a string, has its headers found by one regular expression over
    the whole text (tests/test_config.py checks both ways agree).
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._keys: dict[tuple[tuple[str, ...], str], tuple[int, int]] | None = None
        self.tables: dict[tuple[str, ...], int] = {}
        if '"""' in text or "'''" in text:
            self._scan()
            return
        # splitlines() numbers the lines (it also ends one at \r, \x0c, \u2028...): joined
        # with "\n", the text has the same lines under the same numbers.
        joined = "\n".join(text.splitlines())
        number, done = 1, 0
        for header in _HEADERS.finditer(joined):
            number += joined.count("\n", done, header.start())
            done = header.start()
            _place_table(self.tables, header.group(1), number)

    @property
    def keys(self) -> dict[tuple[tuple[str, ...], str], tuple[int, int]]:
        if self._keys is None:
            self._scan()
        assert self._keys is not None
        return self._keys

    def _scan(self) -> None:
        """Tables and keys, line by line, skipping the inside of multi-line strings."""
        tables: dict[tuple[str, ...], int] = {}
        keys: dict[tuple[tuple[str, ...], str], tuple[int, int]] = {}
        table: tuple[str, ...] = ()
        in_multiline = False
        for number, line in enumerate(self._text.splitlines(), start=1):
            if in_multiline:
                if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                    in_multiline = False
                continue
            header = _HEADER.match(line)
            if header and not line.lstrip().startswith("[["):
                table = _place_table(tables, header.group(1), number)
                continue
            key = _KEY.match(line)
            if key:
                name = _unquote(key.group(2))
                keys.setdefault((table, name), (number, len(key.group(1)) + 1))
                if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                    in_multiline = True
        self.tables, self._keys = tables, keys

    def table(self, *path: str) -> tuple[int | None, int | None]:
        line = self.tables.get(tuple(path))
        return (line, 1) if line is not None else (None, None)

    def key(self, table: tuple[str, ...], key: str) -> tuple[int | None, int | None]:
        found = self.keys.get((table, key))
        if found is not None:
            return found
        if (*table, key) in self.tables:  # the key is a table of its own
            return self.table(*table, key)
        return self.table(*table)
