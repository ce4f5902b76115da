"""Where things are in a TOML file: tomllib returns values without positions, so the source is
scanned for table headers and ``key =`` lines to point errors at the right line and column."""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"""^(\s*)("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|=)""")


def _unquote(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part


def _split_dotted(text: str) -> tuple[str, ...]:
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


class Locator:
    """Line and column of tables and keys, 1-based."""

    def __init__(self, text: str) -> None:
        self.tables: dict[tuple[str, ...], int] = {}
        self.keys: dict[tuple[tuple[str, ...], str], tuple[int, int]] = {}
        table: tuple[str, ...] = ()
        in_multiline = False
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                    in_multiline = False
                continue
            header = _HEADER.match(line)
            if header and not line.lstrip().startswith("[["):
                table = _split_dotted(header.group(1))
                for depth in range(1, len(table) + 1):  # [job.a] also places "job"
                    self.tables.setdefault(table[:depth], number)
                continue
            key = _KEY.match(line)
            if key:
                name = _unquote(key.group(2))
                self.keys.setdefault((table, name), (number, len(key.group(1)) + 1))
                if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                    in_multiline = True

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
