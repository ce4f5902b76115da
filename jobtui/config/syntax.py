"""TOML syntax errors, said with their line and column and, for the usual slips (an unclosed
quote, a duration without quotes), what to write instead."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from .problems import ConfigError, Problem


def parse_toml(text: str, shown: str) -> dict[str, Any]:
    """The TOML document in ``text`` (of the file named ``shown``); raises ConfigError."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        line, col = (int(match.group(1)), int(match.group(2))) if match else (None, None)
        reason = re.sub(r"\s*\(at .*\)$", "", message)
        if match is None and "end of document" in message:
            line = text.count("\n") + 1
        hint = ""
        if "Illegal character '\\n'" in reason or "Unterminated string" in reason:
            hint = "; a quoted string is not closed on this line"
        if line is not None and "Expected newline" in reason:
            source = text.splitlines()[line - 1] if line <= len(text.splitlines()) else ""
            if re.search(r"=\s*\d+[smhd]", source):
                hint = '; durations are text: write them in quotes, as in every = "5m"'
        raise ConfigError([Problem(shown, line, col, f"TOML syntax: {reason}{hint}")]) from None
