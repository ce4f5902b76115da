"""One job in full: its configuration, next times, the current run with its progress and live
log, and its run history with a chart of recent durations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Log, ProgressBar, Sparkline, Static

from ...control.controller import Controller, JobView, RunView
from ...engine import format_duration
from ...engine.printable import printable, printable_line, printable_text
from ..format import OUTCOME_STYLE, state_text
from ..widgets.footer import KeysFooter
from .why import WhyScreen

if TYPE_CHECKING:
    from ..app import JobtuiApp

LOG_SHOWN = 5000  # lines of a run's log the screen holds
FIRST_FOCUS = "log"  # where a new screen's focus lands (its first focusable widget)


class JobDetailScreen(Screen[None]):
    CSS_PATH = "detail.tcss"
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back", id="detail.back"),
        Binding("r", "run_now", "Run now", id="detail.run"),
        Binding("l", "focus_widget('log')", "Log", id="detail.log"),
        Binding("h", "focus_widget('history')", "History", id="detail.history"),
        Binding("w", "why", "Why", id="detail.why"),
    ]

    def __init__(self, job_id: str, focus: str | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.initial_focus = focus
        self._log_run: str | None = None
        self._log_next = 0  # the next line of the run's output to show
        self._history_loaded_for: str | None = None
        self._history_shown: object = None  # what the history table and chart show
        self._ready = False  # the app's tick may come before this screen is composed

    def show_job(self, job_id: str, focus: str | None = None) -> None:
        """Show another job, before this screen is shown again: the app keeps one details
        screen, as composing one anew was most of the time opening it took. Nothing of
        another job is left: what a new screen would show empty is emptied. The same job
        again keeps its history until the new read (below) says what changed."""
        same = job_id == self.job_id
        self.job_id, self.initial_focus = job_id, focus
        self._log_run, self._log_next, self._history_loaded_for = None, 0, None
        if not self._ready:
            return  # on_mount shows it
        for static_id in ("#config", "#next", "#run-title"):
            self.query_one(static_id, Static).update("")
        self.query_one("#bar", ProgressBar).update(total=1.0, progress=0.0)
        self.query_one("#log", Log).clear()
        if not same:
            self._reset_history()
        else:  # its rows stay; the cursor goes where a new screen's is
            self.query_one("#history", DataTable).move_cursor(row=0, column=0)
        self.refresh_view()
        self.action_focus_widget(focus or FIRST_FOCUS)

    @property
    def controller(self) -> Controller:
        app: JobtuiApp = self.app  # type: ignore[assignment]
        return app.controller

    def compose(self) -> ComposeResult:
        with Horizontal(id="top"):
            yield Static(id="config")
            yield Static(id="next")
        with Vertical(id="current"):
            yield Static(id="run-title")
            yield ProgressBar(total=1.0, show_eta=False, id="bar")
        yield Log(id="log", highlight=False, max_lines=LOG_SHOWN)
        with Horizontal(id="bottom"):
            yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
            yield Sparkline([], id="durations")
        yield KeysFooter()

    def on_mount(self) -> None:
        self._reset_history()
        self._ready = True
        self.refresh_view()
        if self.initial_focus:
            self.action_focus_widget(self.initial_focus)

    def _reset_history(self) -> None:
        """The history table and chart as composed: the columns too, whose widths grew to the
        rows of the job shown before."""
        table = self.query_one("#history", DataTable)
        table.clear(columns=True)
        for label in ("Outcome", "Scheduled for", "Started", "Took", "Try", "Kind", "Error"):
            table.add_column(label, key=label.lower())
        chart = self.query_one("#durations", Sparkline)
        chart.display, chart.data = True, []
        self._history_shown = None

    # Not action_focus: Screen has its own, with another signature.
    def action_focus_widget(self, widget_id: str) -> None:
        self.query_one(f"#{widget_id}").focus()

    def action_why(self) -> None:
        self.app.push_screen(WhyScreen(self.job_id))

    def action_run_now(self) -> None:
        if self.controller.job(self.job_id) is not None:
            self.controller.run_now(self.job_id)
            self.notify(f"Started {printable(self.job_id)} (manual run)", markup=False)

    def refresh_view(self) -> None:
        if not self._ready:
            return
        job = self.controller.job(self.job_id)
        if job is None:
            self.query_one("#run-title", Static).update(Text("This job was removed."))
            return
        now = self.controller.now()
        self.query_one("#config", Static).update(self._config_text(job))
        self.query_one("#next", Static).update(self._next_text(job))
        self._show_run(job.current_run, now, self.controller.host_name)
        self._show_history(job)

    def _config_text(self, job: JobView) -> Text:
        text = Text()
        text.append(printable(job.name), style="bold")
        if job.name != job.id:
            text.append(f"  ({printable(job.id)})", style="dim")
        text.append("\n")
        text.append_text(state_text(job.state))
        text.append(f"    {printable(job.trigger)}    {printable(job.timezone)}\n")
        text.append(f"runs: {printable(job.target)}\n")
        for name, shown in job.options:
            text.append(f"{name} = {printable(shown)}   ", style="dim")
        reason = job.disabled_reason or (job.pause_reason if job.paused else "")
        if reason:
            text.append(f"\n{job.state.value}: {printable(reason)}", style="yellow")
        return text

    def _next_text(self, job: JobView) -> Text:
        text = Text("Next runs\n", style="bold")
        times = [] if job.paused or job.disabled_reason else self.controller.next_times(job.id, 5)
        if not times:
            text.append("none planned", style="dim")
        previous_offset = None
        for moment in times:
            offset = moment.utcoffset()
            line = f"{moment:%a %Y-%m-%d %H:%M:%S %z}"
            text.append(line)
            if previous_offset is not None and offset != previous_offset:
                text.append("  DST shift", style="yellow")
            text.append("\n")
            previous_offset = offset
        return text

    def _show_run(self, run: RunView | None, now: float, here: str = "") -> None:
        """The current run; ``here`` is this host's name when hosts share the state."""
        title = self.query_one("#run-title", Static)
        bar = self.query_one("#bar", ProgressBar)
        log = self.query_one("#log", Log)
        if run is None:
            title.update(Text("No run yet", style="dim"))
            bar.update(total=1.0, progress=0.0)
            return
        label = Text()
        where = f"on {printable(run.host)} " if here and run.host else ""
        if run.outcome is None:
            label.append("Running ", style="bold cyan")
            label.append(where)
            elapsed = run.elapsed(now)
            label.append(f"for {format_duration(elapsed)}")
            if run.progress:
                remaining = elapsed / run.progress * (1 - run.progress)
                label.append(f", about {format_duration(remaining)} left")
        else:
            glyph, style = OUTCOME_STYLE[run.outcome]
            label.append(f"{glyph} {run.outcome.value} ", style=style)
            label.append(where)
            label.append(f"after {format_duration(run.duration or 0.0)}")
            if run.error_line is not None:
                label.append(f"   {printable(run.error_line)}", style="red")
        if run.status_message:
            label.append(f"   {printable(run.status_message)}", style="italic")
        title.update(label)
        if run.progress is None and run.outcome is None:
            bar.update(total=None)
        else:
            bar.update(total=1.0, progress=run.progress if run.progress is not None else (
                1.0 if run.outcome is not None else 0.0))  # fmt: skip
        elsewhere = bool(here and run.host and run.host != here)
        if run.run_id != self._log_run:
            log.clear()
            self._log_run, self._log_next = run.run_id, -LOG_SHOWN  # a bounded tail, not all
            if elsewhere:
                log.write_line(f"(this run is on {printable(run.host)}: its output is shown there)")
        if elsewhere:
            return  # its output streams only on the host that runs it: nothing to ask for here
        lines, following = self.controller.log(run.job_id, run.run_id, self._log_next, LOG_SHOWN)
        if len(lines) >= LOG_SHOWN and self._log_next >= 0:
            # Behind a job that prints faster than the screen refreshes: show its newest lines
            # instead of paging through what scrolled past.
            log.clear()
            lines, following = self.controller.log(run.job_id, run.run_id, -LOG_SHOWN, LOG_SHOWN)
        if lines:
            log.write_lines([printable_line(line) for line in lines])
        self._log_next = following

    def _show_history(self, job: JobView) -> None:
        marker = f"{job.last_run.run_id if job.last_run else ''}"
        if marker == self._history_loaded_for or not self.query_one("#history", DataTable).columns:
            return  # unchanged, or not mounted yet (an event came first)
        self.load_history(job.id)
        self._history_loaded_for = marker

    @work(thread=True, exclusive=True, group="history")
    def load_history(self, job_id: str) -> None:
        """Read the history off the UI thread: it may wait for the store's writer."""
        try:
            runs = self.controller.history(job_id)
        except Exception as exc:  # a store that cannot be read: said, and the screen stays
            self.app.call_from_thread(
                self.notify, f"The run history could not be read: {printable_text(str(exc))}",
                severity="error", markup=False,
            )  # fmt: skip
            return
        self.app.call_from_thread(self._fill_history, job_id, runs)

    def _fill_history(self, job_id: str, runs: list[dict[str, Any]]) -> None:
        if not self.is_attached or job_id != self.job_id:  # closed, or another job shown since
            return
        rows = [history_row(run) for run in runs]
        durations = [r["duration"] for r in reversed(runs) if r.get("duration") is not None]
        shown = ([[(cell.plain, str(cell.style)) for cell in row] for row in rows], durations[-40:])
        if shown == self._history_shown:
            return  # what the table and chart show already: redrawing it costs a screen refresh
        self._history_shown = shown
        table = self.query_one("#history", DataTable)
        table.clear()
        for row in rows:
            table.add_row(*row)
        chart = self.query_one("#durations", Sparkline)
        chart.display = bool(durations)
        chart.data = durations[-40:]


def history_row(run: dict[str, Any]) -> tuple[Text, ...]:
    outcome = run["outcome"] or "running"
    glyph, style = next(
        ((g, s) for o, (g, s) in OUTCOME_STYLE.items() if o.value == outcome), ("▶", "cyan")
    )
    error = run.get("error_type")
    return (
        Text(f"{glyph} {outcome}", style=style),
        Text(run["scheduled_for"][:19].replace("T", " ")),
        Text((run["started_at"] or "")[11:19]),
        Text(format_duration(run["duration"]) if run.get("duration") is not None else ""),
        Text(str(run["attempt"])),
        Text(run_kind(run)),
        Text(
            printable(
                f"{error}: {run.get('error_message') or ''}" if error else run.get("reason") or ""
            )
        ),
    )


def run_kind(run: dict[str, Any]) -> str:
    """Manual or scheduled, and on which host when several share the state database."""
    kind = "manual" if run["manual"] else "scheduled"
    return f"{kind} on {printable(run['host'])}" if run.get("host") else kind
