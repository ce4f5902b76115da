"""The jobs table: one line per job, drawn with Textual's line API.

A DataTable repaints every visible cell whenever any cell changes, which with fifty progress bars
moving costs most of a core. Here each row has a version; a row whose inputs did not change is
not rebuilt, and only the lines of rows that did change (and are on screen) are repainted, as
toolong does for log lines. What the rows say and how the columns share the width is in
job_rows.
"""

from __future__ import annotations

from collections.abc import Iterable
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
from .job_rows import (
    COLUMNS,
    SORTS,
    Column,
    columns_for,
    fit_widths,
    row_for,
    row_key,
    sort_key,
    steady_until,
)


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
        selected = self.selected_job_id  # before a Host column switch forgets the order
        if hosts != self.hosts:  # every row gains or loses a cell: all are built again
            self.hosts = hosts
            self.columns = [Column(k, label, least) for k, label, least, _ in columns_for(hosts)]
            self._cells, self._keys, self._versions, self._content = {}, {}, {}, {}
            self._views, self._steady, self._filled, self._sort_keys = {}, {}, {}, {}
            self._unbuilt.clear()
            self._order, self._ids = [], []
            self._lines.clear()
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
