"""The command palette (ctrl+p): every job action, with job names searchable. A job's name is
shown as plain text, its control characters as escapes: the palette would read a bare string
as markup."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher

from ..engine.printable import printable

if TYPE_CHECKING:
    from .app import JobtuiApp


class JobCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app: JobtuiApp = self.app  # type: ignore[assignment]
        controller = app.controller
        commands: list[tuple[str, str, Callable[[], object]]] = []
        for job in controller.jobs():
            name, job_id = printable(job.name), printable(job.id)
            label = name if job.name == job.id else f"{name} ({job_id})"
            commands.append(
                (f"Run {label} now", "a manual run", partial(controller.run_now, job.id))
            )
            if job.paused or job.disabled_reason:
                resume = partial(controller.resume, job.id)
                commands.append((f"Resume {label}", "plan its next runs again", resume))
            else:
                pause = partial(controller.pause, job.id)
                commands.append((f"Pause {label}", "no new runs until resumed", pause))
            if job.running:
                cancel = partial(controller.cancel, job.id)
                commands.append((f"Cancel the run of {label}", "stop the running run", cancel))
            details = partial(app.show_details, job.id)
            commands.append((f"Show {label}", "configuration, next runs, log and history", details))
        commands.append(("Reload jobs.toml", "apply edits now", app.reload_soon))
        return commands

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, callback in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, _highlight(matcher, text), callback, text, help=help_text)  # type: ignore[arg-type]

    async def discover(self) -> Hits:
        for text, help_text, callback in self._commands():
            yield Hit(1.0, Content(text), callback, text, help=help_text)  # type: ignore[arg-type]


def _highlight(matcher: Matcher, text: str) -> Content:
    """Matcher.highlight, but reading ``text`` as plain text, not as markup."""
    content = Content(text)
    _, offsets = matcher.fuzzy_search.match(matcher.query, text)
    for offset in offsets:
        if not text[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content
