"""The jobs table: one line per job, drawn with Textual's line API.

A DataTable repaints every visible cell whenever any cell changes, which with fifty progress bars
moving costs most of a core. Here each row has a version; a row whose inputs did not change is
not rebuilt, and only the lines of rows that did change (and are on screen) are repainted, as
toolong does for log lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from itertools import islice

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ...control.bulk import BULK, collector_paused
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


class JobTable(ScrollView, can_focus=True):
    """Jobs as lines, keyed by job id, with a row cursor."""

    COMPONENT_CLASSES = {
        "job-table--header",
        "job-table--cursor",
        "job-table--odd",
    }
    DEFAULT_CSS = """
    JobTable {
        background: $surface;
    }
    JobTable > .job-table--header {
        text-style: bold;
        background: $panel;
    }
    JobTable > .job-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: bold;
    }
    JobTable > .job-table--odd {
        background: $surface-lighten-1 30%;
    }
    """
    BINDINGS = [
        Binding("down,j", "cursor_down", "Down", show=False, id="down"),
        Binding("up,k", "cursor_up", "Up", show=False, id="up"),
        Binding("g,home", "scroll_top", "Top", show=False, id="top"),
        Binding("G,end", "scroll_bottom", "Bottom", show=False, id="bottom"),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("enter", "select", "Details", show=False),
    ]

    class RowHighlighted(Message):
        def __init__(self, job_id: str | None) -> None:
            super().__init__()
            self.job_id = job_id

    class RowSelected(Message):
        def __init__(self, job_id: str) -> None:
            super().__init__()
            self.job_id = job_id

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.columns = [Column(key, label, least) for key, label, least, _ in COLUMNS]
        self.hosts = False  # whether the Host column is shown (hosts share the state)
        # The widest cell seen per column. It only grows (until the jobs change), so a countdown
        # that gets one character shorter does not re-lay the whole table every second.
        self._content: dict[str, int] = {}
        self.sort_column = "next"
        self.cursor_row = 0
        self._order: list[str] = []  # job ids, top to bottom
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._keys: dict[str, tuple[object, ...]] = {}
        self._versions: dict[str, int] = {}
        # Per job: the view its row was last checked against, until when that check holds
        # (steady_until), and its place in the sort. A row whose view is the same object and
        # whose time has not come is not looked at (see show).
        self._views: dict[str, JobView] = {}
        self._steady: dict[str, float] = {}
        self._sort_keys: dict[str, tuple[object, ...]] = {}
        self._ids: list[str] = []  # the jobs as last given, in their order
        self._checked: tuple[float, object] = (float("-inf"), None)  # now and its local day
        # Rows not built yet: when many jobs come at once (opening with ten thousand), only
        # the rows on screen are built before the table is first drawn, the rest just after
        # (see _fill), so the table shows in a fraction of the time.
        self._unbuilt: set[str] = set()
        self._filling = False  # a _fill is on its way
        self._filled: dict[str, int] = {}  # the widest cells of the rows it built so far
        self._last: tuple[float, tzinfo, int] = (0.0, UTC, 0)  # now, zone, tick of show()
        self._lines: LRUCache[tuple[object, ...], Strip] = LRUCache(4096)

    # -- what other code reads ------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def selected_job_id(self) -> str | None:
        if not self._order:
            return None
        return self._order[min(self.cursor_row, len(self._order) - 1)]

    def get_row_index(self, job_id: str) -> int:
        return self._order.index(job_id)

    def rows_text(self) -> dict[str, list[str]]:
        """The table as plain text, top to bottom (for tests and tools)."""
        self._fill(everything=True)
        return {job_id: [cell.plain for cell in self._cells[job_id]] for job_id in self._order}

    # -- filling it -----------------------------------------------------------------------
    def show(
        self, jobs: Iterable[JobView], now: float, zone: tzinfo, tick: int, *, hosts: bool = False
    ) -> None:
        """Bring the table in line with ``jobs`` (already filtered), repainting only changes;
        with ``hosts``, a Host column says where each job's runs are.

        This runs on every tick and after every change, over every job: a job is skipped with
        two comparisons when its view is the very object its row was built from and its
        countdowns cannot have turned (``steady_until``). Only the rest get their row key
        worked out, and only rows whose key changed are rebuilt and re-measured; the order is
        sorted again only when a sort key changed or jobs came, went or moved.
        """
        jobs = list(jobs)
        if hosts != self.hosts:  # every row gains or loses a cell: all are built again
            self.hosts = hosts
            self.columns = [Column(k, label, least) for k, label, least, _ in columns_for(hosts)]
            self._cells, self._keys, self._versions, self._content = {}, {}, {}, {}
            self._views, self._steady, self._filled, self._sort_keys = {}, {}, {}, {}
            self._unbuilt.clear()
            self._order, self._ids = [], []
            self._lines.clear()
        selected = self.selected_job_id
        ids = [job.id for job in jobs]
        self._last = (now, zone, tick)
        changed: set[str] = set()
        gone: list[str] = []
        if ids != self._ids:
            present = set(ids)
            gone = [job_id for job_id in self._views if job_id not in present]
            for job_id in gone:
                self._forget(job_id)
        # The clock going back is everyone's business: each row is looked at again. A new day
        # is more: a next run's stamp drops its date (or gains one), which no row key holds, so
        # every row is built again, those on screen now and the rest after the drawing.
        day = datetime.fromtimestamp(now, zone).date()
        everyone = now < self._checked[0]
        if day != self._checked[1]:
            self._unbuilt.update(self._keys)
            self._keys.clear()
        self._checked = (now, day)
        resort = ids != self._ids or not self._order
        # Many new rows at once (opening, a filter cleared): those on screen are built now.
        defer = len(ids) - len(self._keys) > BULK
        views, steady, unbuilt, never = self._views, self._steady, self._unbuilt, float("-inf")
        for job in jobs:
            job_id = job.id
            same = views.get(job_id) is job
            if same and not everyone and steady.get(job_id, never) > now:
                continue
            if not same:  # time alone does not move a job in the sort
                views[job_id] = job
                place = sort_key(self.sort_column, job)
                if self._sort_keys.get(job_id) != place:
                    self._sort_keys[job_id] = place
                    resort = True
            if job_id in unbuilt or (defer and job_id not in self._keys):
                unbuilt.add(job_id)
            elif self._build(job_id, job, now, zone, tick):
                changed.add(job_id)
        self._ids = ids
        order = self._order
        if resort:
            # sorted() is stable, so equal keys keep the order the jobs were given in.
            order = sorted(ids, key=self._sort_keys.__getitem__)
        top = int(self.scroll_offset.y)
        on_screen = order[top : top + self.size.height]
        if unbuilt:
            for job_id in on_screen:
                if job_id in unbuilt:
                    self._build(job_id, views[job_id], now, zone, tick)
                    changed.add(job_id)
            if not self._filling:
                self._filling = True
                self.call_after_refresh(self._fill)
        if self._widened(self._cells if gone else changed, forget=bool(gone)):
            self._order = []  # every line is drawn again below
        if order != self._order:
            self._order = order
            self.virtual_size = Size(self.size.width, len(order) + 1)
            if selected in views:
                self.cursor_row = order.index(selected)
            self.cursor_row = min(self.cursor_row, max(0, len(order) - 1))
            self.refresh()
            return
        for index, job_id in enumerate(on_screen, start=1):
            if job_id in changed:
                self.refresh_line(index)

    def _build(self, job_id: str, job: JobView, now: float, zone: tzinfo, tick: int) -> bool:
        """Check the job's row against its view; whether its text changed (and was rebuilt)."""
        self._unbuilt.discard(job_id)
        self._steady[job_id] = steady_until(job, now)
        key = row_key(job, now, tick)
        if self._keys.get(job_id) == key:
            return False
        self._keys[job_id] = key
        self._cells[job_id] = row_for(job, now, zone, tick, hosts=self.hosts)
        self._versions[job_id] = self._versions.get(job_id, 0) + 1
        return True

    def _fill(self, everything: bool = False) -> None:
        """Build the rows left for after the first drawing, BULK of them a turn with the loop
        free in between (all ten thousand at once held the scheduler's loop for a quarter of a
        second), then lay the columns out again if one of them is the widest."""
        self._filling = False
        if not self._unbuilt:
            return
        now, zone, tick = self._last
        batch = list(self._unbuilt) if everything else list(islice(self._unbuilt, BULK))
        with collector_paused():
            for job_id in batch:
                self._build(job_id, self._views[job_id], now, zone, tick)
        self._note_filled(batch)
        if self._unbuilt:
            self._filling = True
            self.call_later(self._fill)
            return
        filled, self._filled = self._filled, {}
        if self._grow(filled):
            self.refresh()

    def _note_filled(self, job_ids: Iterable[str]) -> None:
        for key, width in self._measure(job_ids).items():
            self._filled[key] = max(width, self._filled.get(key, 0))

    def _forget(self, job_id: str) -> None:
        for store in (self._cells, self._keys, self._versions, self._steady):
            store.pop(job_id, None)
        del self._views[job_id], self._sort_keys[job_id]
        self._unbuilt.discard(job_id)

    def _widened(self, job_ids: Iterable[str], forget: bool = False) -> bool:
        """Measure these rows; with ``forget``, the widest seen so far are forgotten first (a
        row that left may have been the widest). Whether the columns were laid out again."""
        widest = self._measure(job_ids)
        if forget:
            self._content = {}
        return self._grow(widest)

    def _grow(self, widest: dict[str, int]) -> bool:
        if not any(width > self._content.get(key, 0) for key, width in widest.items()):
            return False
        self._content = {k: max(w, self._content.get(k, 0)) for k, w in widest.items()}
        self._lay_out()
        return True

    def cycle_sort(self) -> str:
        self.sort_column = SORTS[(SORTS.index(self.sort_column) + 1) % len(SORTS)]
        self._sort_keys = {
            job_id: sort_key(self.sort_column, view) for job_id, view in self._views.items()
        }
        self._order = []
        return self.sort_column

    # -- drawing --------------------------------------------------------------------------
    def _measure(self, job_ids: Iterable[str]) -> dict[str, int]:
        widest: dict[str, int] = {}
        cells = self._cells
        for job_id in job_ids:
            if job_id not in cells:
                continue
            for column, cell in zip(self.columns, cells[job_id], strict=True):
                widest[column.key] = max(widest.get(column.key, 0), cell.cell_len)
        return widest

    def _lay_out(self) -> None:
        widths = fit_widths(self.size.width, self._content, hosts=self.hosts)
        for column in self.columns:
            column.width = widths[column.key]
        self._lines.clear()

    def on_resize(self) -> None:
        self._lay_out()
        self.virtual_size = Size(self.size.width, len(self._order) + 1)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            style = self.get_component_rich_style("job-table--header")
            cells = tuple(Text(column.label) for column in self.columns)
            return self._strip(("header", width), cells, style, width)
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self._order):
            return Strip.blank(width, self.rich_style)
        job_id = self._order[index]
        if job_id in self._unbuilt:  # scrolled to before _fill came; it measures it then
            self._build(job_id, self._views[job_id], *self._last)
            self._note_filled((job_id,))
        cursor = index == self.cursor_row and self.has_focus
        highlight = index == self.cursor_row
        if highlight:
            style = self.get_component_rich_style("job-table--cursor")
            if not cursor:
                style = self.rich_style + Style(reverse=False, bold=True)
        elif index % 2:
            style = self.rich_style + self.get_component_rich_style("job-table--odd")
        else:
            style = self.rich_style
        key = (job_id, self._versions[job_id], width, highlight, cursor, index % 2)
        return self._strip(key, self._cells[job_id], style, width)

    def _strip(
        self, key: tuple[object, ...], cells: tuple[Text, ...], base: Style, width: int
    ) -> Strip:
        cached = self._lines.get(key)
        if cached is not None:
            return cached
        line = Text(style=base, no_wrap=True, overflow="crop", end="")
        for column, cell in zip(self.columns, cells, strict=True):
            if column.width <= 0:
                continue
            piece = cell.copy()
            piece.truncate(column.width, overflow="crop", pad=True)
            line.append(" ")
            line.append_text(piece)
            line.append(" ")
        segments = list(line.render(self.app.console))
        strip = Strip(segments).adjust_cell_length(width, base).apply_style(base)
        self._lines[key] = strip
        return strip

    # -- moving ---------------------------------------------------------------------------
    def move_cursor(self, row: int) -> None:
        if not self._order:
            return
        row = max(0, min(row, len(self._order) - 1))
        if row == self.cursor_row:
            return
        previous, self.cursor_row = self.cursor_row, row
        visible = self.size.height - 1
        top = int(self.scroll_offset.y)
        if row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + visible:
            self.scroll_to(y=row - visible + 1, animate=False)
        else:  # no scrolling: only the two rows whose highlight changed are drawn again
            self.refresh_line(previous - top + 1)
            self.refresh_line(row - top + 1)
        self.post_message(self.RowHighlighted(self.selected_job_id))

    def action_cursor_down(self) -> None:
        self.move_cursor(self.cursor_row + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(self.cursor_row - 1)

    def action_scroll_top(self) -> None:
        self.move_cursor(0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(len(self._order) - 1)

    def action_page_down(self) -> None:
        self.move_cursor(self.cursor_row + max(1, self.size.height - 2))

    def action_page_up(self) -> None:
        self.move_cursor(self.cursor_row - max(1, self.size.height - 2))

    def action_select(self) -> None:
        if (job_id := self.selected_job_id) is not None:
            self.post_message(self.RowSelected(job_id))

    def on_click(self, event: object) -> None:
        offset = getattr(event, "y", 0)
        if offset >= 1:
            self.move_cursor(int(self.scroll_offset.y) + offset - 1)

    def on_focus(self) -> None:
        self._lines.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._lines.clear()
        self.refresh()
