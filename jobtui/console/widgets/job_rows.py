"""What the jobs table shows, apart from the widget that draws it: its columns and how they
share the terminal's width, each job's cells, and the keys that tell whether a row must be built
again (``row_key``, ``steady_until``) or moved (``sort_key``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from rich.text import Text

from ...control.controller import JobView
from ...engine import JobState
from ...engine.printable import printable
from ..format import (
    coarse,
    countdown_steady,
    elapsed_steady,
    next_text,
    outcome_text,
    progress_text,
    state_text,
)

COLUMNS = (  # key, label, the least it is given, the most its content may claim
    ("job", "Job", 10, 48),
    ("trigger", "Trigger", 12, 32),
    ("state", "State", 11, 11),
    ("next", "Next run", 15, 30),
    ("last", "Last run", 12, 24),
    ("progress", "Progress", 12, 17),
    ("status", "Status", 12, 12),  # and then whatever the others leave
)
# Where a job's runs are, shown only when hosts share the state (after "Last run").
HOST_COLUMN = ("host", "Host", 6, 20)
SORTS = ("next", "job", "state", "last")
# When the terminal is narrow, columns give up width in this order, down to these widths: first
# the status message down to its label, then some of everything but the essentials, then long
# names in part, then the status and last run altogether (a column is never left a few cells
# wide); names and countdowns go last.
SHRINK = (
    ("status", 6), ("host", 12), ("last", 12), ("trigger", 12), ("progress", 12), ("job", 24),
    ("status", 0), ("host", 6), ("last", 0), ("next", 15), ("job", 10),
)  # fmt: skip
# Who gets back the cells a column dropped whole did not need to give, best first.
REGAIN = ("job", "next", "trigger", "last", "host", "progress")
PADDING = 2  # one cell each side of a column
SCROLLBAR = 1


@dataclass
class Column:
    key: str
    label: str
    width: int


def columns_for(hosts: bool) -> tuple[tuple[str, str, int, int], ...]:
    """The table's columns: with ``hosts``, a Host column after the last run."""
    if not hosts:
        return COLUMNS
    at = [key for key, *_ in COLUMNS].index("last") + 1
    return (*COLUMNS[:at], HOST_COLUMN, *COLUMNS[at:])


def fit_widths(
    total: int, content: dict[str, int] | None = None, *, hosts: bool = False
) -> dict[str, int]:
    """Column widths that fit ``total`` cells. Each column asks for its widest cell (``content``),
    within its bounds, so names and countdowns are whole first; the status message takes what is
    left. When that does not fit, columns shrink in SHRINK's order."""
    content = content or {}
    widths = {
        key: max(len(label), least, min(most, content.get(key, 0)))
        for key, label, least, most in columns_for(hosts)
    }
    spare = total - sum(widths.values()) - PADDING * len(widths) - SCROLLBAR
    if spare >= 0:
        widths["status"] += spare
        return widths
    wanted = dict(widths)
    need = -spare
    for key, minimum in SHRINK:
        if need <= 0:
            break
        if key not in widths:
            continue
        if minimum == 0:  # dropped whole, with the padding around it
            need -= widths[key] + PADDING if widths[key] else 0
            widths[key] = 0
            continue
        give = min(need, max(0, widths[key] - minimum))
        widths[key] -= give
        need -= give
    for key in REGAIN:  # a dropped column may have freed more than was needed
        if need >= 0:
            break
        if key not in widths:
            continue
        back = min(-need, wanted[key] - widths[key]) if widths[key] else 0
        widths[key] += back
        need += back
    return widths


def job_cell(job: JobView) -> Text:
    """The name, and the id a user types (`jobtui history --job ID`) when the name hides it."""
    cell = Text(printable(job.name))  # plain Text: a job's name is never markup
    if job.name != job.id:
        cell.append(f"  {printable(job.id)}", style="dim")
    return cell


def host_text(job: JobView) -> Text:
    """Where the job's runs go on (each host once), else where its last run ran."""
    hosts = list(dict.fromkeys(run.host for run in job.running if run.host))
    if not hosts and job.last_run is not None and job.last_run.host:
        hosts = [job.last_run.host]
    if not hosts:
        return Text("—", style="dim")
    return Text(printable(", ".join(hosts)), style="cyan" if job.running else "")


def row_key(job: JobView, now: float, tick: int) -> tuple[object, ...]:
    """Everything a row's text depends on, cheap to compute: a row whose key did not change
    is not rebuilt."""
    running = job.running[-1] if job.running else None
    last = job.last_run
    progress: object = None
    if running is not None:
        progress = tick if running.progress is None else int(running.progress * 100 * 8)
    return (
        job.name,
        job.trigger,
        job.state,
        job.next_fire,
        coarse(job.next_fire - now) if job.next_fire is not None else None,
        last.run_id if last else None,
        coarse(now - (last.finished_ts or now)) if last else None,
        progress,
        running.status_message if running else (job.disabled_reason or job.pause_reason),
        tuple(run.host for run in job.running),
        last.host if last else None,
    )


def steady_until(job: JobView, now: float) -> float:
    """Until when ``row_key`` of an unchanged view reads the same, at least: the countdowns
    and times since it shows are coarse (see format.coarse), so a far-off job's row need not
    be looked at again for up to a minute, and with ten thousand jobs the table looks only at
    the few whose minute turned. A moving block (progress unknown) changes every tick."""
    running = job.running[-1] if job.running else None
    if running is not None and running.progress is None:
        return now
    until = float("inf")
    for when in (job.next_fire, job.next_run_ts):  # the key reads one, the text the other
        if when is not None:
            until = min(until, now + countdown_steady(when - now))
    last = job.last_run
    if last is not None and last.finished_ts is not None:
        until = min(until, now + elapsed_steady(now - last.finished_ts))
    elif last is not None:
        return now
    return until


def row_for(
    job: JobView, now: float, zone: tzinfo, tick: int, *, hosts: bool = False
) -> tuple[Text, ...]:
    running = job.running[-1] if job.running else None
    status = running.status_message if running else ""
    if not running and job.disabled_reason:
        status = job.disabled_reason
    elif not running and job.paused and job.pause_reason:
        status = job.pause_reason
    where = (host_text(job),) if hosts else ()
    return (
        job_cell(job),
        Text(printable(job.trigger)),
        state_text(job.state),
        next_text(job, now, zone),
        outcome_text(job.last_run, now),
        *where,
        progress_text(running, tick),
        Text(printable(status.replace("\n", " ")), style="dim" if not running else ""),
    )


def sort_key(column: str, job: JobView) -> tuple[object, ...]:
    if column == "job":
        return (job.name.lower(),)
    if column == "state":
        return (list(JobState).index(job.state), job.name.lower())
    if column == "last":
        finished = job.last_run.finished_ts if job.last_run else None
        return (finished is None, -(finished or 0.0))
    return (job.next_run_ts is None, job.next_fire or 0.0, job.name.lower())
