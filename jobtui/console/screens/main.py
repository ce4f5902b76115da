"""The main screen: every job, its state, next and last run, live progress; the keys act on the
selected job."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, Static

from ...config.reload import failure_headline
from ...control.controller import Controller, JobView
from ...engine import JobState, Outcome
from ...engine.printable import printable, printable_text
from ..format import summary_text
from ..widgets.footer import KeysFooter
from ..widgets.job_table import JobTable
from .confirm import ConfirmScreen

if TYPE_CHECKING:
    from ..app import JobtuiApp


# The actions check_action may enable, disable or dim, depending on the selected job.
KEYS_THAT_CHANGE = ("pause", "resume", "cancel_run")


class MainScreen(Screen[None]):
    CSS_PATH = "main.tcss"
    BINDINGS = [
        Binding("r", "run_now", "Run now", id="run"),
        Binding("p", "pause", "Pause", id="pause"),
        Binding("p", "resume", "Resume", id="resume"),
        Binding("d,delete", "remove", "Remove", id="remove"),
        Binding("x", "cancel_run", "Cancel run", id="cancel"),
        Binding("enter", "details", "Details", id="details"),
        Binding("l", "log", "Log", id="log"),
        Binding("h", "history", "History", id="history"),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="clear_filter"),
        Binding("s", "sort", "Sort", id="sort"),
        Binding("e", "edit", "Edit", show=False, id="edit"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="reload"),
        Binding("question_mark", "help", "Help", id="help"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    @property
    def jobtui(self) -> JobtuiApp:
        return self.app  # type: ignore[return-value]

    @property
    def controller(self) -> Controller:
        return self.jobtui.controller

    _keys_state: tuple[object, ...] = ()
    _summary_shown: Text | None = None
    _problems_shown: tuple[Path, tuple[str, ...]] | None = None
    _ready = False  # the app's tick may come before this screen is composed

    def compose(self) -> ComposeResult:
        yield Static(id="summary")
        yield Static(id="banner", markup=False)
        yield Input(placeholder="filter: text or state (esc clears)", id="filter")
        yield JobTable(id="jobs")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#banner", Static).display = False
        self._ready = True
        self.refresh_jobs()
        self.query_one(JobTable).focus()

    # -- what is shown --------------------------------------------------------------------
    @property
    def selected(self) -> str | None:
        return self.query_one(JobTable).selected_job_id

    def refresh_jobs(self) -> None:
        if not self._ready:
            return
        app, controller = self.jobtui, self.controller
        now = controller.now()
        query = self.query_one("#filter", Input).value.strip().lower()
        jobs = [job for job in controller.jobs() if not query or query in _haystack(job)]
        table = self.query_one(JobTable)
        summary_view = controller.summary()
        # A Host column only when hosts share the state: with one host every row says the same.
        table.show(jobs, now, controller.timezone, app.tick, hosts=bool(summary_view.host))
        summary = summary_text(summary_view, now, controller.timezone)
        if summary != self._summary_shown:
            self._summary_shown = summary
            # One line high whatever it says: without layout=False every tick would lay the
            # whole screen out again and repaint every widget (most of the console's time).
            self.query_one("#summary", Static).update(summary, layout=False)
        self._show_problems(controller.config_path, controller.reload_problems)
        self._refresh_keys()

    def _show_problems(self, path: Path, problems: tuple[str, ...]) -> None:
        """The banner, redone only when the problems changed: its height follows its text, so
        each update lays the screen out again."""
        if (path, problems) == self._problems_shown:
            return
        self._problems_shown = (path, problems)
        banner = self.query_one("#banner", Static)
        banner.display = bool(problems)
        if problems:
            headline = failure_headline(path, problems)
            lines = [f"{headline}; the previous jobs keep running:"]
            lines += [f"  {printable_text(problem)}" for problem in problems[:5]]
            if len(problems) > 5:
                lines.append(f"  ... and {len(problems) - 5} more (jobtui check shows them all)")
            banner.update(Text("\n".join(lines)))

    def _selected_job(self) -> JobView | None:
        job_id = self.selected
        return self.controller.job(job_id) if job_id is not None else None

    def _refresh_keys(self) -> None:
        """Redraw the footer only when what it shows changed: it is rebuilt whole (tens of ms),
        so doing it on every cursor move made moving the cursor slow."""
        state = tuple(self.check_action(action, ()) for action in KEYS_THAT_CHANGE)
        if state != self._keys_state:
            self._keys_state = state
            self.refresh_bindings()

    def on_job_table_row_highlighted(self) -> None:
        self._refresh_keys()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pause", "resume"):
            job = self._selected_job()
            if job is None:
                return action == "pause" and None  # shown dimmed while nothing is selected
            stopped = job.paused or bool(job.disabled_reason)
            return stopped if action == "resume" else not stopped
        if action == "cancel_run":
            job = self._selected_job()
            return None if job is None or not job.running else True
        return True

    # -- actions --------------------------------------------------------------------------
    def _job(self) -> str | None:
        job = self._selected_job()
        if job is None:
            self.notify("No job selected", severity="warning")
            return None
        return job.id

    def action_run_now(self) -> None:
        if (job_id := self._job()) is not None:
            self.controller.run_now(job_id)
            self.notify(f"Started {printable(job_id)} (manual run)", markup=False)
            self.refresh_jobs()

    def action_pause(self) -> None:
        if (job_id := self._job()) is not None:
            self.controller.pause(job_id)
            self.refresh_jobs()

    def action_resume(self) -> None:
        if (job_id := self._job()) is not None:
            self.controller.resume(job_id)
            self.refresh_jobs()

    def action_remove(self) -> None:
        job_id = self._job()
        if job_id is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.jobtui.remove_job(job_id)
                self.refresh_jobs()

        shown = printable(job_id)
        self.app.push_screen(
            ConfirmScreen(
                f'Remove job "{shown}"?',
                f"Its [jobs.{shown}] table is deleted from "
                f"{printable(self.controller.config_path.name)} "
                "(comments and all), so it does not come back on restart. A running run "
                "finishes.",
            ),
            answered,
        )

    def action_cancel_run(self) -> None:
        job = self._selected_job()
        if job is None:
            self.notify("No job selected", severity="warning")
            return
        if not job.running:
            self.notify(f"{printable(job.id)} is not running", markup=False)
            return
        job_id = job.id

        def answered(yes: bool | None) -> None:
            still = self.controller.job(job_id)
            if yes and still is not None and still.running:
                self.controller.cancel(job_id)
                self.refresh_jobs()

        question = f'Cancel the running run of "{printable(job_id)}"?'
        here = self.controller.host_name  # hosts share the state: say where it goes on
        elsewhere = sorted({run.host for run in job.running} - {here}) if here else []
        if elsewhere:
            question += f" (it runs on {printable(', '.join(elsewhere))})"
        self.app.push_screen(ConfirmScreen(question), answered)

    def action_details(self) -> None:
        if (job_id := self._job()) is not None:
            self.jobtui.show_details(job_id)

    def action_log(self) -> None:
        if (job_id := self._job()) is not None:
            self.jobtui.show_details(job_id, focus="log")

    def action_history(self) -> None:
        if (job_id := self._job()) is not None:
            self.jobtui.show_details(job_id, focus="history")

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.query_one(JobTable).focus()
        self.refresh_jobs()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.refresh_jobs()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(JobTable).focus()

    def on_job_table_row_selected(self, event: JobTable.RowSelected) -> None:
        self.jobtui.show_details(event.job_id)

    def action_sort(self) -> None:
        column = self.query_one(JobTable).cycle_sort()
        self.notify(f"Sorted by {column}")
        self.refresh_jobs()

    async def action_reload(self) -> None:
        if await self.controller.reload():
            name = printable(self.controller.config_path.name)
            self.notify(f"Reloaded {name}", markup=False)  # a file may be named [red]x.toml
        self.refresh_jobs()

    async def action_edit(self) -> None:
        await self.jobtui.edit_config(self.selected)
        self.refresh_jobs()

    def action_help(self) -> None:
        self.jobtui.show_help()

    def action_quit(self) -> None:
        self.jobtui.ask_quit()


def _haystack(job: JobView) -> str:
    state = job.state
    last = job.last_run
    extra = " failed" if last and last.outcome in (Outcome.FAILED, Outcome.TIMED_OUT) else ""
    return f"{job.id} {job.name} {job.trigger} {state.value}{extra}".lower() + (
        " active" if state in (JobState.RUNNING, JobState.RETRYING) else ""
    )
