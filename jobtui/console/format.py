"""How job state reads on screen: glyphs, colours, countdowns, progress bars, triggers in words.
Everything here returns rich Text built from plain strings, so job-supplied text is never read
as markup, and passes it through printable(), so its control characters show as escapes."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text

from ..control.controller import JobView, RunView, Summary
from ..engine import JobState, Outcome, format_duration
from ..engine.printable import printable

STATE_STYLE = {
    JobState.SCHEDULED: ("●", "green"),
    JobState.RUNNING: ("▶", "bold cyan"),
    JobState.RETRYING: ("↻", "yellow"),
    JobState.PAUSED: ("‖", "dim"),
    JobState.DISABLED: ("⊘", "bold red"),
    JobState.FINISHED: ("✓", "dim green"),
}
OUTCOME_STYLE = {
    Outcome.SUCCEEDED: ("✔", "green"),
    Outcome.FAILED: ("✘", "red"),
    Outcome.TIMED_OUT: ("⏱", "red"),
    Outcome.CANCELLED: ("■", "yellow"),
    Outcome.SKIPPED: ("↷", "dim"),
    Outcome.MISSED: ("↷", "dim"),
    Outcome.ABANDONED: ("☠", "red"),
}
BAR_WIDTH = 12
_EIGHTHS = " ▏▎▍▌▋▊▉"


def state_text(state: JobState) -> Text:
    glyph, style = STATE_STYLE[state]
    return Text(f"{glyph} {state.value}", style=style)


def coarse(seconds: float) -> str:
    """A duration as precise as it is worth showing: seconds only under ten minutes, so a
    table of far-off times does not change (and repaint) every second."""
    seconds = max(0.0, seconds)
    if seconds < 600:
        return format_duration(seconds)
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    return format_duration(seconds - seconds % 60)


def countdown_steady(left: float) -> float:
    """How long ``coarse`` of a countdown now at ``left`` seconds reads the same, at least:
    under ten minutes it shows seconds (it may change at any moment), above that whole minutes
    (it holds until the minute turns)."""
    return 0.0 if left < 600 else left % 60


def elapsed_steady(elapsed: float) -> float:
    """As ``countdown_steady``, for a duration that grows (the time since a run ended)."""
    return 0.0 if elapsed < 600 else 60 - elapsed % 60


def outcome_text(run: RunView | None, now: float) -> Text:
    if run is None or run.outcome is None:
        return Text("—", style="dim")
    glyph, style = OUTCOME_STYLE[run.outcome]
    ended = run.finished_ts or now
    text = Text(f"{glyph} ", style=style)
    text.append(f"{coarse(now - ended)} ago", style="default")
    if run.duration is not None:
        text.append(f" ({format_duration(run.duration)})", style="dim")
    return text


def next_text(job: JobView, now: float, zone: tzinfo) -> Text:
    when = job.next_run_ts
    if when is None:
        return Text("—", style="dim")
    local = datetime.fromtimestamp(when, zone)
    same_day = local.date() == datetime.fromtimestamp(now, zone).date()
    stamp = local.strftime("%H:%M:%S" if same_day else "%b %d %H:%M")
    wait = max(0.0, when - now)
    return Text.assemble(stamp, (f"  in {coarse(wait)}", "dim"))


def progress_text(run: RunView | None, tick: int = 0) -> Text:
    """A bar drawn in the cell; an indeterminate run shows a moving block."""
    if run is None:
        return Text("")
    if run.progress is None:
        position = tick % BAR_WIDTH
        cells = ["░"] * BAR_WIDTH
        cells[position] = "█"
        return Text("".join(cells), style="cyan")
    filled = run.progress * BAR_WIDTH
    whole = int(filled)
    part = int((filled - whole) * 8)
    bar = "█" * whole + (_EIGHTHS[part] if whole < BAR_WIDTH and part else "")
    bar = bar.ljust(BAR_WIDTH, "░")
    return Text.assemble((bar, "cyan"), f" {round(run.progress * 100):>3}%")


def summary_text(summary: Summary, now: float, zone: tzinfo) -> Text:
    """The header line. Text, not a str: the file's name is not markup (``[red]x.toml``)."""
    clock = datetime.fromtimestamp(now, zone).strftime("%H:%M:%S %Z")
    store = f"   store: {printable(summary.store_status)}" if summary.store_status else ""
    text = Text(f"jobtui · {printable(summary.config_name)}")
    # Where the scheduler is comes right after the file's name: the line is cut at the
    # terminal's edge, and this must not be what is cut.
    if summary.disconnected:
        text.append(" · disconnected, retrying…", style="bold red")
    elif summary.daemon_pid is not None:
        since = summary.attached_since if summary.attached_since is not None else now
        when = datetime.fromtimestamp(since, zone).strftime("%H:%M")
        text.append(f" · attached to pid {summary.daemon_pid} since {when}", style="bold cyan")
    if summary.host:  # hosts share the state: which one this is, the others' runs counted
        text.append(f" · host {printable(summary.host)}")
    others = summary.running_elsewhere
    elsewhere = f" ({others} on other hosts)" if others else ""
    text.append(
        f"   {summary.jobs} jobs · {summary.running} running{elsewhere} · "
        f"{summary.failed_24h} failed (24h) · {summary.paused} paused{store}   {clock}"
    )
    return text
