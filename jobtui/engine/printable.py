"""Text from a job or a file made safe to show on a terminal.

A job's name, status message, output and error text, and anything quoted from jobs.toml, may
hold control characters: an ESC from a command's output would reach the operator's terminal as
an escape sequence (an OSC that renames the tmux pane, an ``ESC[2J`` that blanks the screen), a
tab or a zero-width control would break a table's columns, and a bidi override would show text
in another order than it is. Each such character is shown as a visible escape instead (``\\x1b``,
``\\u202e``), one that is plain ASCII, so columns measure what is drawn. Everything else,
CJK and emoji included, is left as it is. What is stored (the run history) keeps the original;
this is for showing only.
"""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls (U+009B is a one-character CSI to a terminal reading
# ISO 8859), line and paragraph separators (a line break to str.splitlines and some terminals),
# the bidi embeddings, overrides and isolates of "Trojan Source" (CVE-2021-42574), and lone
# surrogates (printing one raises UnicodeEncodeError).
_UNSAFE = (
    (0x00, 0x1F), (0x7F, 0x9F), (0x2028, 0x2029), (0x202A, 0x202E), (0x2066, 0x2069),
    (0xD800, 0xDFFF),
)  # fmt: skip
_UNSAFE_CLASS = "".join(f"\\u{first:04x}-\\u{last:04x}" for first, last in _UNSAFE)
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(character: str) -> str:
    code = ord(character)
    if character in _NAMED:
        return _NAMED[character]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# Each such character with its escape: a dict lookup per match, no formatting.
_ESCAPES = {
    chr(code): _escaped(chr(code)) for first, last in _UNSAFE for code in range(first, last + 1)
}


def _splitter(keep: str) -> re.Pattern[str]:
    """A pattern whose split() gives text, escapable character, text, ... ."""
    kept = "".join(re.escape(character) for character in keep)
    if not kept:
        return re.compile(f"([{_UNSAFE_CLASS}])")
    return re.compile(f"((?![{kept}])[{_UNSAFE_CLASS}])")


_ANY = _splitter("")
_BUT_TAB = _splitter("\t")
_BUT_TAB_AND_NEWLINE = _splitter("\t\n")


def _escape(pattern: re.Pattern[str], text: str) -> str:
    # Most text is plain printable ASCII: two C-level scans, no regex, no copy.
    if text.isascii() and text.isprintable():
        return text
    if pattern.search(text) is None:  # CJK, emoji, accents: nothing to escape
        return text
    parts = pattern.split(text)
    parts[1::2] = map(_ESCAPES.__getitem__, parts[1::2])
    return "".join(parts)


def printable(text: str) -> str:
    """One line of text (a name, an id, a status message, a table cell): every control
    character, tab and newline included, shown as a visible escape."""
    return _escape(_ANY, text)


def printable_line(text: str) -> str:
    """One line of a run's output: as ``printable``, but a tab stays a tab (the log
    widget expands it)."""
    return _escape(_BUT_TAB, text)


def printable_text(text: str) -> str:
    """Text of several lines (an error message, a list of problems): as ``printable``, but
    newlines and tabs stay. A carriage return is escaped: on a terminal it would return to
    the line's start and let the rest of the line overwrite what came before."""
    return _escape(_BUT_TAB_AND_NEWLINE, text)
