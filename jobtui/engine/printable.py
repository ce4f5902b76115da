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
_UNSAFE_CLASS = "\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(character: str) -> str:
    code = ord(character)
    if character in _NAMED:
        return _NAMED[character]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _pattern(keep: str) -> re.Pattern[str]:
    kept = "".join(re.escape(character) for character in keep)
    if not kept:
        return re.compile(f"[{_UNSAFE_CLASS}]")
    return re.compile(f"(?![{kept}])[{_UNSAFE_CLASS}]")


_ANY = _pattern("")
_BUT_TAB = _pattern("\t")
_BUT_TAB_AND_NEWLINE = _pattern("\t\n")


def _replace(match: re.Match[str]) -> str:
    return _escaped(match.group())


def _escape(pattern: re.Pattern[str], text: str) -> str:
    # Most text is plain printable ASCII: two C-level scans, no regex, no copy.
    if text.isascii() and text.isprintable():
        return text
    if pattern.search(text) is None:
        return text
    return pattern.sub(_replace, text)


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
