"""The jobs table: one row per job, updated in place. Rows are diffed by their rendered text, so
a tick that changes nothing visible costs nothing, and only changed cells are touched."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from ...engine import Job, JobState
from ..format import coarse, next_text, outcome_text, progress_text, state_text, trigger_words

COLUMNS = (
    ("job", "Job", 18),
    ("trigger", "Trigger", 20),
    ("state", "State", 11),
    ("next", "Next run", 22),
    ("last", "Last run", 17),
    ("progress", "Progress", 17),
    ("status", "Status", 19),
)
SORTS = ("next", "job", "state", "last")
# When the terminal is narrow, columns give up width in this order, down to these minimums.
SHRINK = (("status", 0), ("last", 0), ("trigger", 12), ("progress", 12), ("next", 15), ("job", 10))
PADDING = 2  # a DataTable cell's padding, one each side


def fit_widths(total: int) -> dict[str, int]:
    """Column widths that fit ``total`` cells: the status column takes what is left over,
    and the others shrink in SHRINK's order when there is not enough."""
    widths = {key: width for key, _, width in COLUMNS}
    spare = total - sum(widths.values()) - PADDING * len(widths) - 1  # the vertical scrollbar
    if spare > 0:
        grow = min(spare, 12)  # names first, up to 30 cells; the status gets the rest
        widths["job"] += grow
        widths["status"] += spare - grow
        return widths
    need = -spare
    for key, minimum in SHRINK:
        give = min(need, widths[key] - minimum)
        widths[key] -= give
        need -= give
        if need == 0:
            break
    return widths


def row_key(job: Job, now: float, tick: int) -> tuple[object, ...]:
    """Everything a row's text depends on, cheap to compute: a row whose key did not change
    is not rebuilt."""
    running = job.active[-1] if job.active else None
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
        coarse(now - (last._finished_ts or now)) if last else None,
        progress,
        running.status_message if running else (job.disabled_reason or job.pause_reason),
    )


def row_for(job: Job, now: float, zone: tzinfo, tick: int) -> tuple[Text, ...]:
    running = job.active[-1] if job.active else None
    name = Text(job.name)  # plain Text: a job's name is never markup
    status = running.status_message if running else ""
    if not running and job.disabled_reason:
        status = job.disabled_reason
    elif not running and job.paused and job.pause_reason:
        status = job.pause_reason
    return (
        name,
        Text(trigger_words(job)),
        state_text(job.state),
        next_text(job, now, zone),
        outcome_text(job.last_run, now),
        progress_text(running, tick),
        Text(status.replace("\n", " "), style="dim" if not running else ""),
    )


def sort_key(column: str, job: Job) -> tuple:
    if column == "job":
        return (job.name.lower(),)
    if column == "state":
        return (list(JobState).index(job.state), job.name.lower())
    if column == "last":
        finished = job.last_run._finished_ts if job.last_run else None
        return (finished is None, -(finished or 0.0))
    return (job.next_run_time is None, job.next_fire or 0.0, job.name.lower())


class JobTable(DataTable[Text]):
    """Jobs as rows keyed by job id."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="down"),
        Binding("k", "cursor_up", "Up", show=False, id="up"),
        Binding("g", "scroll_top", "Top", show=False, id="top"),
        Binding("G", "scroll_bottom", "Bottom", show=False, id="bottom"),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._rendered: dict[str, tuple[str, ...]] = {}
        self._keys: dict[str, tuple[object, ...]] = {}
        self._order: list[str] = []
        self._name_cells: dict[str, Text] = {}  # job id -> the Text in its "job" cell
        self.sort_column = "next"

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def on_resize(self) -> None:
        for key, width in fit_widths(self.size.width).items():
            column = self.columns[key]  # type: ignore[index]
            column.width = width
            column.auto_width = False
        self._require_update_dimensions = True
        self.refresh()

    @property
    def selected_job_id(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value

    def show(self, jobs: Iterable[Job], now: float, zone: tzinfo, tick: int) -> None:
        """Bring the table in line with ``jobs`` (already filtered), touching only changes."""
        if not self.columns:  # not mounted yet: an early event; the first tick fills it
            return
        jobs = list(jobs)
        ordered = [job.id for job in sorted(jobs, key=lambda j: sort_key(self.sort_column, j))]
        keep = set(ordered)
        selected = self.selected_job_id
        for job_id in [j for j in self._rendered if j not in keep]:
            self.remove_row(job_id)
            del self._rendered[job_id]
            del self._name_cells[job_id]
            self._keys.pop(job_id, None)
        for job in jobs:
            key = row_key(job, now, tick)
            if self._keys.get(job.id) == key and job.id in self._rendered:
                continue
            self._keys[job.id] = key
            cells = row_for(job, now, zone, tick)
            plain = tuple(cell.plain + str(cell.style) for cell in cells)
            previous = self._rendered.get(job.id)
            if previous is None:
                self.add_row(*cells, key=job.id)
                self._name_cells[job.id] = cells[0]
            elif previous != plain:
                for (key, _, _), cell, old, new in zip(
                    COLUMNS, cells, previous, plain, strict=True
                ):
                    if old != new:
                        self.update_cell(job.id, key, cell)
                        if key == "job":
                            self._name_cells[job.id] = cell
            self._rendered[job.id] = plain
        if ordered != self._order:
            position = {job_id: index for index, job_id in enumerate(ordered)}
            # DataTable sorts by cell values; each row's "job" cell object says which job it is.
            by_cell = {id(self._name_cells[job_id]): index for job_id, index in position.items()}
            self.sort("job", key=lambda cell: by_cell[id(cell)])
            self._order = ordered
            if selected in position:
                self.move_cursor(row=position[selected])

    def cycle_sort(self) -> str:
        self.sort_column = SORTS[(SORTS.index(self.sort_column) + 1) % len(SORTS)]
        self._order = []
        return self.sort_column

    def action_scroll_top(self) -> None:
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(row=max(0, self.row_count - 1))
