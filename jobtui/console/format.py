"""How job state reads on screen: glyphs, colours, countdowns, progress bars, triggers in words.
Everything here returns rich Text built from plain strings, so job-supplied text is never read
as markup."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text

from ..engine import Job, JobState, Outcome, Run, format_duration
from ..engine.triggers import CronTrigger, DateTrigger, IntervalTrigger

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


def outcome_text(run: Run | None, now: float) -> Text:
    if run is None or run.outcome is None:
        return Text("—", style="dim")
    glyph, style = OUTCOME_STYLE[run.outcome]
    ended = run.finished_ts or now
    text = Text(f"{glyph} ", style=style)
    text.append(f"{coarse(now - ended)} ago", style="default")
    if run.duration is not None:
        text.append(f" ({format_duration(run.duration)})", style="dim")
    return text


def next_text(job: Job, now: float, zone: tzinfo) -> Text:
    when = job.next_run_time
    if when is None:
        return Text("—", style="dim")
    local = when.astimezone(zone)
    same_day = local.date() == datetime.fromtimestamp(now, zone).date()
    stamp = local.strftime("%H:%M:%S" if same_day else "%b %d %H:%M")
    wait = max(0.0, when.timestamp() - now)
    return Text.assemble(stamp, (f"  in {coarse(wait)}", "dim"))


def progress_text(run: Run | None, tick: int = 0) -> Text:
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


def trigger_words(job: Job) -> str:
    """The trigger as a person would say it: "every 10m", "at 02:30 every day"."""
    trigger = job.trigger
    if isinstance(trigger, IntervalTrigger):
        return trigger.describe()
    if isinstance(trigger, DateTrigger):
        moment = datetime.fromtimestamp(trigger.at, job.zone)
        return f"once at {moment:%Y-%m-%d %H:%M}"
    if isinstance(trigger, CronTrigger):
        return cron_words(trigger.expression.text)
    return "on demand"


_DAYS = {"0": "Sunday", "1": "Monday", "2": "Tuesday", "3": "Wednesday", "4": "Thursday",
         "5": "Friday", "6": "Saturday", "7": "Sunday", "mon": "Monday", "tue": "Tuesday",
         "wed": "Wednesday", "thu": "Thursday", "fri": "Friday", "sat": "Saturday",
         "sun": "Sunday"}  # fmt: skip
_MACROS = {"@hourly": "every hour", "@daily": "at 00:00 every day",
           "@midnight": "at 00:00 every day", "@weekly": "at 00:00 every Sunday",
           "@monthly": "at 00:00 on day 1 of every month",
           "@yearly": "at 00:00 on January 1", "@annually": "at 00:00 on January 1"}  # fmt: skip


def cron_words(expression: str) -> str:
    """Common cron shapes in words; anything else is shown as written."""
    text = expression.strip()
    if text.lower() in _MACROS:
        return _MACROS[text.lower()]
    parts = text.split()
    if len(parts) != 5:
        return f"cron {text}"
    minute, hour, dom, month, dow = parts
    if minute.isdigit() and hour == "*" and dom == month == dow == "*":
        return f"every hour at :{int(minute):02d}"
    if minute.startswith("*/") and hour == "*" and dom == month == dow == "*":
        return f"every {minute[2:]} minutes"
    if minute.isdigit() and hour.isdigit() and month == "*":
        at = f"at {int(hour):02d}:{int(minute):02d}"
        if dom == "*" and dow == "*":
            return f"{at} every day"
        if dom == "*" and dow.lower() in _DAYS:
            return f"{at} every {_DAYS[dow.lower()]}"
        if dom == "*" and dow.lower() in ("1-5", "mon-fri"):
            return f"{at} on weekdays"
        if dow == "*" and dom.isdigit():
            return f"{at} on day {dom} of every month"
    return f"cron {text}"
