"""Why a job ran or did not, and when it runs next, in plain words (the `jobtui why` answer)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ...control.why import Why
from ...engine.printable import printable, printable_text

if TYPE_CHECKING:
    from ..app import JobtuiApp

STYLE = {
    "ran": "",
    "dst_gap": "yellow",
    "skipped": "yellow",
    "missed": "yellow",
    "down": "yellow",
    "abandoned": "red",
    "hook_failed": "red",
    "paused": "bold yellow",
    "disabled": "bold red",
}


class WhyScreen(ModalScreen[None]):
    CSS_PATH = "why.tcss"
    BINDINGS = [Binding("escape,q,w", "app.pop_screen", "Close", id="why.close")]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="why"):
            yield Static(
                Text(f"Why: {printable(self.job_id)}\n\nreading the history…", style="dim")
            )

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="why")
    def load(self) -> None:
        """Off the UI thread: reading the history may wait for the store's writer."""
        app: JobtuiApp = self.app  # type: ignore[assignment]
        try:
            answer: Why | Exception | None = app.controller.why(self.job_id)
        except Exception as exc:  # a daemon gone, a state file unreadable: said, not fatal
            answer = exc
        self.app.call_from_thread(self._show, answer)

    def _show(self, answer: Why | Exception | None) -> None:
        if not self.is_attached:
            return
        text = Text(f"Why: {printable(self.job_id)}\n\n", style="bold")
        if isinstance(answer, Exception):
            text.append(f"The answer could not be read: {printable_text(str(answer))}", style="red")
        elif answer is None:
            text.append("This job was removed.", style="dim")
        else:
            if not answer.lines:
                text.append("No occurrence recorded yet.\n", style="dim")
            for line in answer.lines:
                text.append(printable_text(line.text) + "\n", style=STYLE.get(line.kind, ""))
            text.append(answer.next_text, style="bold")
        self.query_one(Static).update(text)
