"""printable(): control characters from a job or a file shown as visible escapes."""

from __future__ import annotations

import pytest

from jobtui.engine.printable import printable, printable_line, printable_text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),  # clear screen
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # OSC: set the window/pane title
        ("\x1b]8;;http://x\x1b\\link", "\\x1b]8;;http://x\\x1b\\link"),  # OSC 8 hyperlink
        ("\u009b2J", "\\x9b2J"),  # the one-character C1 CSI
        ("\x9d0;t\x9c", "\\x9d0;t\\x9c"),  # C1 OSC and ST
        ("a\x00b\x7fc", "a\\x00b\\x7fc"),  # NUL and DEL
        ("a\x08b", "a\\x08b"),  # backspace would overwrite the character before it
        ("abc\rXY", "abc\\rXY"),  # carriage return would overwrite the line's start
        ("a\tb\nc", "a\\tb\\nc"),  # one line: a tab or newline would break a table's columns
        ("\u202eexe.txt", "\\u202eexe.txt"),  # right-to-left override (Trojan Source)
        ("a\u2066b\u2069", "a\\u2066b\\u2069"),  # bidi isolates
        ("a\u2028b", "a\\u2028b"),  # a line separator splits a line for str.splitlines
        ("bad\ud800", "bad\\ud800"),  # a lone surrogate cannot even be encoded to print
    ],
)
def test_control_characters_become_visible_escapes(raw, shown):
    assert printable(raw) == shown


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain ASCII, with punctuation: [red]not markup[/red] \\x1b stays as typed",
        "日本語のジョブ 名前",  # CJK (two cells each)
        "backup 🎉 👩‍👩‍👧 ✔ ⏱ ☠",  # emoji, a ZWJ family sequence and the console's glyphs
        "café naïve Ω ß",  # accents, Greek, German
        "عربي עברית",  # right-to-left scripts without overrides
        "a\u00a0b\u200bc",  # no-break and zero-width spaces are text, not controls
    ],
)
def test_normal_unicode_is_left_alone(text):
    assert printable(text) == text
    assert printable_line(text) == text and printable_text(text) == text


def test_the_escape_is_plain_ascii_so_columns_measure_what_is_drawn():
    shown = printable("a\x1b[31mb\u202ec")
    assert shown.isascii() and shown.isprintable()
    assert f"{shown:<20}|".index("|") == 20


def test_output_lines_keep_tabs_and_several_lines_keep_newlines():
    assert printable_line("col1\tcol2\x1b[0m") == "col1\tcol2\\x1b[0m"
    assert printable_line("a\nb") == "a\\nb"  # a line is one line
    assert printable_text("Traceback:\n\tline 1\x1b[2J\r\n") == "Traceback:\n\tline 1\\x1b[2J\\r\n"


def test_escaping_twice_changes_nothing():
    once = printable("\x1b]0;t\x07\u009b\u202e")
    assert printable(once) == once


def test_plain_text_is_returned_as_it_is():
    line = "2026-12-06 17:50:07 INFO processed 12345 records"
    assert printable_line(line) is line  # no copy for the common case
