"""A followed run's lines on the client: numbered as the daemon numbers them, so a reconnect
that sends lines again shows none twice, and the detail screen can page through them."""

from __future__ import annotations

from jobtui.control.protocol import LogEvent
from jobtui.control.runlog import RunLog


def event(start: int, *lines: str) -> LogEvent:
    return LogEvent(job_id="j", run_id="r", start=start, lines=list(lines),
                    next=start + len(lines))  # fmt: skip


def test_lines_sent_again_after_a_reconnect_are_shown_once():
    log = RunLog("j")
    log.take(event(0, "a", "b", "c"))
    log.take(event(1, "b", "c", "d"))  # the new connection followed from an older line
    assert log.page(0, 10) == (("a", "b", "c", "d"), 4)
    assert log.page(3, 10) == (("d",), 4)


def test_a_page_counts_from_the_runs_first_line_and_back_from_the_newest():
    log = RunLog("j")
    log.take(event(100, *[f"line {n}" for n in range(100, 110)]))  # joined a long run late
    assert log.page(105, 3) == (("line 105", "line 106", "line 107"), 108)
    assert log.page(-2, 10) == (("line 108", "line 109"), 110)
    lines, following = log.page(98, 2)
    assert lines == ("[... 2 lines not kept ...]", "line 100", "line 101") and following == 102
    assert log.page(110, 5) == ((), 110)


def test_nothing_received_yet_is_an_empty_page():
    assert RunLog("j").page(-5000, 5000) == ((), 0)
    assert RunLog("j").page(0, 10) == ((), 0)
