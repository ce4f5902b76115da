"""The keys, built from the live bindings, so help can never drift from what the keys do."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "help.tcss"
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close", id="help.close")]

    def __init__(self, bindings: list[BindingType]) -> None:
        super().__init__()
        self.bindings = bindings

    def compose(self) -> ComposeResult:
        text = Text("Keys\n\n", style="bold")
        seen = set()
        for binding in self.bindings:
            if not isinstance(binding, Binding) or binding.action in seen:
                continue
            seen.add(binding.action)
            keys = ", ".join(k.strip() for k in binding.key.split(","))
            text.append(f"{keys:<16}", style="bold cyan")
            text.append(f"{binding.description or binding.action}\n")
        text.append("\nctrl+p          command palette (every action, job names searchable)\n")
        with VerticalScroll(id="help"):
            yield Static(text)
