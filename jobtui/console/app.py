"""The console: a Textual app that hosts the scheduler on its own event loop.

Job bodies never block it: async jobs are awaited on the loop (they must not block), plain
functions run in threads and commands in subprocesses. The screen learns of runs from the
engine's events and redraws from a steady tick, touching only cells that changed.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from collections import deque
from pathlib import Path
from typing import Any

import tomlkit
from textual.app import App, SuspendNotSupported
from textual.binding import Binding

from ..config import Config, Problem, Reloader
from ..engine import (
    Clock,
    Event,
    JobAdded,
    JobRemoved,
    JobStateChanged,
    Outcome,
    Run,
    RunFinished,
    RunStarted,
    Scheduler,
)
from ..store import Store, read_runs
from .commands import JobCommands
from .screens.confirm import ConfirmScreen
from .screens.detail import JobDetailScreen
from .screens.help import HelpScreen
from .screens.main import MainScreen

DAY = 86400.0


class JobtuiApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "jobtui"
    COMMANDS = App.COMMANDS | {JobCommands}
    BINDINGS = [Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True, id="quit.now")]

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        store: Store | None = None,
        refresh_interval: float = 0.5,
        grace: float | None = None,
        watch_file: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.store = store
        self.refresh_interval = refresh_interval
        self.grace = grace
        self.watch_file = watch_file
        self.scheduler: Scheduler = config.make_scheduler(clock=clock, store=store)
        if store is not None:
            store.restore(
                self.scheduler, {job_id: spec.fingerprint for job_id, spec in config.jobs.items()}
            )
        self.reloader = Reloader(
            self.scheduler,
            config,
            on_reloaded=self._reloaded,
            on_failed=self._reload_failed,
            on_job_changed=store.set_fingerprint if store is not None else None,
        )
        self.tick = 0
        self._failures: deque[float] = deque()  # when runs failed, for the 24 h count
        self._recent: dict[str, deque[dict[str, Any]]] = {}  # history without a store
        self.scheduler.subscribe(self._on_event)

    # -- life cycle -----------------------------------------------------------------------
    async def on_mount(self) -> None:
        if self.config.keymap:
            self.set_keymap(self.config.keymap)
        if self.store is not None:
            self.store.start()
        await self.scheduler.start()
        if self.watch_file:
            self.run_worker(self.reloader.watch(), name="watch-jobs-toml", exclusive=True)
        self.set_interval(self.refresh_interval, self.on_tick)
        await self.push_screen(MainScreen())

    def on_tick(self) -> None:
        self.tick += 1
        self.refresh_screen()

    def refresh_screen(self) -> None:
        if not self.screen_stack:  # starting up or shutting down
            return
        screen = self.screen
        if isinstance(screen, MainScreen):
            screen.refresh_jobs()
        elif isinstance(screen, JobDetailScreen):
            screen.refresh_view()

    async def shut_down(self) -> None:
        await self.scheduler.stop(self.grace)
        if self.store is not None:
            await asyncio.to_thread(self.store.close)

    def ask_quit(self) -> None:
        """Quit; with runs going, ask first: they are stopped gracefully."""
        running = self.scheduler.running_runs()
        if not running:
            self.run_worker(self._quit(), exclusive=True, name="quit")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._quit(), exclusive=True, name="quit")

        names = sorted({run.job_id for run in running})
        self.push_screen(
            ConfirmScreen(
                f"Quit with {len(running)} run{'s' if len(running) != 1 else ''} going?",
                f"{', '.join(names)} will be stopped (commands get SIGTERM, then SIGKILL).",
            ),
            answered,
        )

    async def _quit(self) -> None:
        await self.shut_down()
        self.exit(0)

    def action_request_quit(self) -> None:
        self.ask_quit()

    # -- events ---------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            run = event.run
            if run.outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
                self._failures.append(event.time)
                what = run.error.first_line if run.error else run.outcome.value
                self.notify(f"{run.job_id}: {what}", title="Run failed", severity="error",
                            markup=False)  # fmt: skip
            if self.store is None:
                self._remember(run)
            self.refresh_screen()
        elif isinstance(event, RunStarted | JobAdded | JobRemoved | JobStateChanged):
            self.refresh_screen()

    def _remember(self, run: Run) -> None:
        runs = self._recent.setdefault(run.job_id, deque(maxlen=200))
        runs.appendleft(_run_record(run))

    # -- what screens ask for -------------------------------------------------------------
    @property
    def reload_problems(self) -> list[Problem]:
        return self.reloader.problems

    def summary(self) -> str:
        scheduler = self.scheduler
        now = scheduler.clock.wall()
        while self._failures and self._failures[0] < now - DAY:
            self._failures.popleft()
        jobs = scheduler.jobs()
        running = len(scheduler.running_runs())
        paused = sum(1 for job in jobs if job.paused)
        clock = scheduler.clock.now().astimezone(scheduler.timezone).strftime("%H:%M:%S %Z")
        store = (
            f"   store: {self.store.status}" if self.store is not None and self.store.status else ""
        )
        left = (
            f"jobtui · {self.config.path.name}   {len(jobs)} jobs · {running} running · "
            f"{len(self._failures)} failed (24h) · {paused} paused{store}"
        )
        return f"{left}   {clock}"

    def history(self, job_id: str, limit: int = 100) -> list[dict[str, Any]]:
        if self.store is not None:
            self.store.flush(1.0)
            return read_runs(self.store.path, job=job_id, limit=limit)
        return list(self._recent.get(job_id, ()))[:limit]

    def show_details(self, job_id: str, focus: str | None = None) -> None:
        self.push_screen(JobDetailScreen(job_id, focus=focus))

    def show_help(self) -> None:
        self.push_screen(HelpScreen(list(self.screen.BINDINGS) + list(self.BINDINGS)))

    # -- changing things ------------------------------------------------------------------
    async def reload(self) -> bool:
        return await self.reloader.reload()

    def _reloaded(self, config: Config) -> None:
        self.config = config
        self.refresh_screen()

    def _reload_failed(self, problems: list[Problem]) -> None:
        self.refresh_screen()

    def remove_job(self, job_id: str) -> None:
        """Remove the job and delete its table from jobs.toml, keeping the rest of the file
        as it was (comments, order, formatting)."""
        if job_id in self.scheduler:
            self.scheduler.remove(job_id)
        try:
            remove_job_table(self.config.path, job_id)
        except OSError as exc:
            self.notify(f"Removed {job_id}, but could not edit {self.config.path}: {exc}",
                        severity="warning", markup=False)  # fmt: skip
            return
        self.notify(f"Removed {job_id} (and its table in {self.config.path.name})", markup=False)
        self.run_worker(self.reload(), name="reload-after-remove")

    async def edit_config(self, job_id: str | None) -> None:
        """Open jobs.toml in $EDITOR at the job's line, then reload it."""
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        spec = self.config.jobs.get(job_id or "")
        line = f"+{spec.line}" if spec is not None and spec.line else None
        command = [*shlex.split(editor), *([line] if line else []), str(self.config.path)]
        try:
            with self.suspend():  # the editor gets the terminal
                subprocess.call(command)
        except SuspendNotSupported:  # no terminal to hand over (a GUI editor can still run)
            await asyncio.to_thread(subprocess.call, command)
        await self.reload()


def remove_job_table(path: Path, job_id: str) -> None:
    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    jobs = document.get("jobs")
    if jobs is None or job_id not in jobs:
        return
    del jobs[job_id]
    mode = path.stat().st_mode
    temporary = path.with_name(f".{path.name}.jobtui-edit")
    temporary.write_text(tomlkit.dumps(document), encoding="utf-8")
    temporary.chmod(mode & 0o7777)
    temporary.replace(path)  # an editor-style save: never a half-written file


def _run_record(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "job_id": run.job_id,
        "scheduled_for": run.scheduled_for.isoformat(),
        "manual": run.manual,
        "attempt": run.attempt,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "outcome": run.outcome.value if run.outcome else None,
        "reason": run.reason,
        "error_type": run.error.type if run.error else None,
        "error_message": run.error.message if run.error else None,
        "duration": run.duration if run.started_at else None,
    }
