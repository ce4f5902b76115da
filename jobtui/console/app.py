"""The console: a Textual app that either hosts the scheduler on its own event loop or is
attached to a jobtui daemon that runs it (launch.py decides which).

Job bodies never block it: async jobs are awaited on the loop (they must not block), plain
functions run in threads and commands in subprocesses. Screens talk only to a controller
(control/controller.py, or control/client.py when attached): they read its plain views, its
change notices reach them as Textual messages, and a steady tick redraws countdowns and
progress, touching only cells that changed.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess

from textual.app import App, SuspendNotSupported
from textual.binding import Binding

from ..config import Config
from ..control.client import RemoteController
from ..control.controller import Controller, LocalController, Notice
from ..control.listen import ControlSocketError
from ..control.server import ControlServer
from ..engine import Clock, Scheduler
from ..engine.printable import printable, printable_text
from ..host import Host
from ..store import StateStore
from . import messages
from .commands import JobCommands
from .screens.confirm import ConfirmScreen
from .screens.detail import JobDetailScreen
from .screens.help import HelpScreen
from .screens.main import MainScreen


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
        store: StateStore | None = None,
        refresh_interval: float = 0.5,
        grace: float | None = None,
        watch_file: bool = True,
        attach: RemoteController | None = None,
        serve: bool = False,
        tune_runtime: bool = False,
    ) -> None:
        """Host the scheduler for ``config`` (with ``serve``, other consoles and the CLI
        verbs reach it on the state file's control socket); or, with ``attach``, show the
        jobtui that client talks to (``config`` then only supplies the key map).
        ``tune_runtime``: the jobtui command's policy for the garbage collector and the GIL's
        switching (see host.tune_collector and host.tune_switching)."""
        super().__init__()
        self.serve = serve
        self.server: ControlServer | None = None
        self.refresh_interval = refresh_interval
        self.grace = grace
        self.watch_file = watch_file
        self.remote = attach
        self.host: Host | None = None
        self._local: LocalController | None = None
        self._config = config
        self.controller: Controller
        if attach is not None:
            self.controller = attach
        else:
            self.host = Host(config, store=store, clock=clock, tune_runtime=tune_runtime)
            self.controller = self._local = LocalController(self.host)
        self.controller.subscribe(self._on_notice)
        self.tick = 0
        self._link_up: bool | None = None  # attached: whether the daemon answered at last look
        self._details: JobDetailScreen | None = None  # made on first use, then kept

    @property
    def config(self) -> Config:
        return self.host.config if self.host is not None else self._config  # the host reloads

    @property
    def scheduler(self) -> Scheduler:
        """For tests and tools that drive the engine directly; screens go through the
        controller."""
        if self.host is None:
            raise RuntimeError("an attached console has no scheduler of its own")
        return self.host.scheduler

    @property
    def attached(self) -> bool:
        return self.remote is not None

    # -- life cycle -----------------------------------------------------------------------
    async def on_mount(self) -> None:
        if self.config.keymap:
            self.set_keymap(self.config.keymap)
        if self.remote is not None:
            await self.remote.start()
        elif self.host is not None:
            await self.host.start(watch=self.watch_file)
            if self.serve and self._local is not None:
                await self._start_server(self._local)
        self.set_interval(self.refresh_interval, self.on_tick)
        await self.push_screen(MainScreen())

    async def _start_server(self, controller: LocalController) -> None:
        server = ControlServer(controller, host_kind="console", log=self._on_control)
        try:
            await server.start()
        except ControlSocketError as exc:  # the jobs matter more than the socket
            self.notify(
                f"Other consoles cannot attach: {printable_text(str(exc))}",
                severity="warning",
                markup=False,
            )
            return
        self.server = server

    def on_tick(self) -> None:
        self.tick += 1
        if self.remote is not None:
            self._notice_link(self.remote)
        self.refresh_screen()

    def _notice_link(self, remote: RemoteController) -> None:
        """Say when the daemon goes and comes back: only the main screen's header shows the
        link, and the user may be looking at a job's details."""
        up = remote.connected.is_set()
        if up == self._link_up:
            return
        if up and self._link_up is False and remote.hello is not None:
            self.notify(f"Attached again, to pid {remote.hello.pid}", title="Daemon back")
        elif not up:
            self.notify("Showing the last picture until a jobtui answers again; retrying…",
                        title="Disconnected", severity="warning")  # fmt: skip
        self._link_up = up

    def refresh_screen(self) -> None:
        if not self.screen_stack or not self.is_running:  # starting up or shutting down
            return
        screen = self.screen
        if isinstance(screen, MainScreen):
            screen.refresh_jobs()
        elif isinstance(screen, JobDetailScreen):
            screen.refresh_view()

    async def shut_down(self) -> None:
        if self.remote is not None:
            await self.remote.close()  # the daemon and its runs go on
        elif self.host is not None and self._local is not None:
            if self.server is not None:  # before the lock goes, as headless mode does
                await self.server.close()
            self._local.close()
            await self.host.stop(self.grace)

    def _on_control(self, *, event: str, **fields: object) -> None:
        if event == "control_refused":
            self.notify(
                f"refused a connection to the control socket from uid {fields.get('uid')} "
                f"(pid {fields.get('pid')})",
                severity="warning",
            )

    def ask_quit(self) -> None:
        """Quit. A hosting console with runs going asks first (they are stopped gracefully);
        an attached one leaves the daemon and its runs as they are, so it has nothing to ask."""
        if self.attached:
            self.run_worker(self._quit(), exclusive=True, name="quit")
            return
        running = [run for job in self.controller.jobs() for run in job.running]
        if not running:
            self.run_worker(self._quit(), exclusive=True, name="quit")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._quit(), exclusive=True, name="quit")

        names = sorted({printable(run.job_id) for run in running})
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

    # -- changes ---------------------------------------------------------------------------
    def _on_notice(self, notice: Notice) -> None:
        # Called from inside the engine's event publishing: only queue a message here.
        self.post_message(messages.message_for(notice))

    def on_jobs_changed(self, message: messages.JobsChanged) -> None:
        self.refresh_screen()

    def on_run_failed(self, message: messages.RunFailed) -> None:
        self.notify(f"{printable(message.job_id)}: {printable(message.error)}", title="Run failed",
                    severity="error", markup=False)  # fmt: skip

    def on_hook_failed(self, message: messages.HookFailed) -> None:
        # The run's outcome stands; this says an alert about it did not get through.
        self.notify(f"{printable(message.job_id)}: {printable(message.error)}", title="Hook failed",
                    severity="warning", markup=False)  # fmt: skip

    def on_reload_finished(self, message: messages.ReloadFinished) -> None:
        self.refresh_screen()

    def on_action_failed(self, message: messages.ActionFailed) -> None:
        # The daemon's words quote the job's id, which may hold control characters.
        self.notify(printable(message.message), title="Not done", severity="error", markup=False)

    # -- what screens ask for -------------------------------------------------------------
    def show_details(self, job_id: str, focus: str | None = None) -> None:
        """The job's details, on the one details screen the app keeps (installed, so going
        back leaves it composed): with 10,000 jobs, composing a screen anew and taking it down
        again took longer than the 50 ms a keypress may."""
        screen = self._details
        if screen is None:
            screen = self._details = JobDetailScreen(job_id, focus=focus)
            self.install_screen(screen, "details")
        elif screen in self.screen_stack:  # the palette, over it: another on top, as always
            self.push_screen(JobDetailScreen(job_id, focus=focus))
            return
        else:
            screen.show_job(job_id, focus)
        self.push_screen(screen)

    def show_help(self) -> None:
        self.push_screen(HelpScreen(list(self.screen.BINDINGS) + list(self.BINDINGS)))

    # -- changing things ------------------------------------------------------------------
    async def reload(self) -> bool:
        return await self.controller.reload()

    def reload_soon(self) -> None:
        self.run_worker(self.reload(), name="reload")

    def remove_job(self, job_id: str) -> None:
        """Remove the job and delete its table from jobs.toml, keeping the rest of the file
        as it was (comments, order, formatting)."""
        path = self.controller.config_path
        shown = printable(job_id)
        try:
            self.controller.remove(job_id)
        except OSError as exc:
            why = f"could not edit {printable(str(path))}: {printable_text(str(exc))}"
            self.notify(f"Removed {shown}, but {why}", severity="warning", markup=False)
            return
        self.notify(f"Removed {shown} (and its table in {printable(path.name)})", markup=False)
        self.run_worker(self.reload(), name="reload-after-remove")

    async def edit_config(self, job_id: str | None) -> None:
        """Open jobs.toml in $EDITOR at the job's line, then reload it."""
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        number = self.controller.config_line(job_id) if job_id is not None else None
        line = f"+{number}" if number else None
        path = self.controller.config_path
        command = [*shlex.split(editor), *([line] if line else []), str(path)]
        try:
            with self.suspend():  # the editor gets the terminal
                subprocess.call(command)
        except SuspendNotSupported:  # no terminal to hand over (a GUI editor can still run)
            await asyncio.to_thread(subprocess.call, command)
        await self.reload()
