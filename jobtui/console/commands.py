"""The command palette (ctrl+p): every job action, with job names searchable."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from textual.command import Hit, Hits, Provider

if TYPE_CHECKING:
    from .app import JobtuiApp


class JobCommands(Provider):
    def _commands(self) -> list[tuple[str, str, object]]:
        app: JobtuiApp = self.app  # type: ignore[assignment]
        commands = []
        for job in app.scheduler.jobs():
            label = job.name if job.name == job.id else f"{job.name} ({job.id})"
            commands.append(
                (f"Run {label} now", "a manual run", partial(app.scheduler.run_now, job.id))
            )
            if job.paused or job.disabled_reason:
                commands.append((f"Resume {label}", "plan its next runs again",
                                 partial(app.scheduler.resume, job.id)))  # fmt: skip
            else:
                commands.append((f"Pause {label}", "no new runs until resumed",
                                 partial(app.scheduler.pause, job.id, "paused from the console")))  # fmt: skip
            if job.active:
                commands.append((f"Cancel the run of {label}", "stop the running run",
                                 partial(app.scheduler.cancel, job.id)))  # fmt: skip
            commands.append((f"Show {label}", "configuration, next runs, log and history",
                             partial(app.show_details, job.id)))  # fmt: skip
        commands.append(
            ("Reload jobs.toml", "apply edits now", partial(app.run_worker, app.reload()))
        )
        return commands

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, callback in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)  # type: ignore[arg-type]

    async def discover(self) -> Hits:
        for text, help_text, callback in self._commands():
            yield Hit(1.0, text, callback, help=help_text)  # type: ignore[arg-type]
