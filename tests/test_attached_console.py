"""The console attached to a running jobtui: the daemon (a Host with its control server) runs
in this process on the virtual clock, and the console talks to it over the real socket."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from textual.css.query import NoMatches

from jobtui import JobState, Outcome, Run, VirtualClock
from jobtui.config import load
from jobtui.console.app import JobtuiApp
from jobtui.console.screens.confirm import ConfirmScreen
from jobtui.console.screens.detail import JobDetailScreen
from jobtui.control.client import RemoteController
from jobtui.control.controller import (
    ActionFailed,
    JobsChanged,
    LocalController,
    ReloadFinished,
    RunFailed,
)
from jobtui.control.server import ControlServer
from jobtui.host import Host

from .conftest import START
from .test_console import JOBS, select, table_rows, write


@dataclass
class Daemon:
    host: Host
    local: LocalController
    server: ControlServer

    async def restart_server(self) -> None:
        self.server = ControlServer(self.local, flush_interval=0.02)
        await self.server.start()


@pytest.fixture
async def daemon(tmp_path) -> AsyncIterator[Daemon]:
    config = load(write(tmp_path / "jobs.toml", JOBS))
    host = Host(config, clock=VirtualClock(START))
    local = LocalController(host)
    await host.start(watch=False)
    server = ControlServer(local, flush_interval=0.02)
    await server.start()
    running = Daemon(host, local, server)
    yield running
    await running.server.close()
    local.close()
    await host.stop(0)


def attached_app(daemon: Daemon) -> JobtuiApp:
    config = daemon.host.config
    remote = RemoteController(config.path, config.timezone, state_path=config.state_path,
                              follow_lease=0.5)  # fmt: skip
    return JobtuiApp(config, attach=remote, refresh_interval=0.1)


def header(app: JobtuiApp) -> str:
    try:
        return app.screen.query_one("#summary").render().plain
    except NoMatches:  # the main screen is not composed yet
        return ""


def rows(app: JobtuiApp) -> dict[str, list[str]]:
    try:
        return table_rows(app)
    except NoMatches:  # the main screen is not composed yet
        return {}


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for something to cross the socket; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def crunching(daemon: Daemon) -> asyncio.Event:
    """An on-demand job in the daemon whose progress the test moves; returns its release."""
    release = asyncio.Event()

    async def crunch(run: Run) -> None:
        run.progress = 0.3
        run.status_message = "warming up"
        await release.wait()

    daemon.host.scheduler.add_job(crunch, id="crunch")
    return release


async def test_the_attached_console_says_so_and_shows_the_daemons_jobs(daemon):
    app = attached_app(daemon)
    async with app.run_test(size=(140, 30)):
        await until(lambda: "attached to pid" in header(app))
        since = time.strftime("%H:%M", time.gmtime())
        assert f"attached to pid {os.getpid()} since {since}" in header(app)
        assert "5 jobs · 0 running · 0 failed (24h) · 1 paused" in header(app)
        shown = rows(app)
        assert set(shown) == {"backup", "sync", "slow", "broken", "held"}
        assert shown["held"][2] == "‖ paused"


async def test_progress_moves_and_r_and_p_reach_the_daemon(daemon):
    release = await crunching(daemon)
    scheduler = daemon.host.scheduler
    app = attached_app(daemon)
    async with app.run_test(size=(140, 30)) as pilot:
        await until(lambda: "crunch" in rows(app))
        await select(pilot, app, "crunch")
        await pilot.press("r")
        await until(lambda: scheduler.get("crunch").active)
        await until(lambda: rows(app)["crunch"][5].endswith("30%"))
        assert rows(app)["crunch"][2] == "▶ running"
        scheduler.get("crunch").active[0].progress = 0.7
        await until(lambda: rows(app)["crunch"][5].endswith("70%"))

        await select(pilot, app, "sync")
        await pilot.press("p")
        await until(lambda: scheduler.get("sync").state is JobState.PAUSED)
        await until(lambda: rows(app)["sync"][2] == "‖ paused")
        assert "resume" in {b.binding.action for b in app.screen.active_bindings.values()
                            if b.enabled}  # fmt: skip
        await pilot.press("p")
        await until(lambda: scheduler.get("sync").state is JobState.SCHEDULED)
        release.set()


async def test_quitting_an_attached_console_asks_nothing_and_leaves_the_runs(daemon):
    release = await crunching(daemon)
    scheduler = daemon.host.scheduler
    scheduler.run_now("crunch")
    app = attached_app(daemon)
    async with app.run_test(size=(140, 30)) as pilot:
        await until(lambda: "▶ running" in rows(app).get("crunch", []))
        await pilot.press("q")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
    assert app.return_code == 0
    assert scheduler.running and scheduler.get("crunch").active  # untouched
    await until(lambda: daemon.server.client_count == 0)
    release.set()


async def test_a_daemon_that_goes_leaves_the_last_picture_and_is_picked_up_again(daemon):
    scheduler = daemon.host.scheduler
    app = attached_app(daemon)
    async with app.run_test(size=(140, 30)) as pilot:
        await until(lambda: "attached to pid" in header(app))
        before = rows(app)
        await daemon.server.close()
        await until(lambda: "disconnected, retrying…" in header(app))
        assert "attached to pid" not in header(app)
        app.refresh_screen()
        assert rows(app) == before  # the last picture stays

        await select(pilot, app, "sync")
        await pilot.press("p")  # nowhere to send it: the user is told
        await until(lambda: any("not connected" in n.message for n in app._notifications))
        assert scheduler.get("sync").state is JobState.SCHEDULED

        scheduler.pause("backup")  # while no console was looking
        # also said where the header is not on screen
        await until(lambda: any(n.title == "Disconnected" for n in app._notifications))
        await daemon.restart_server()
        await until(lambda: "attached to pid" in header(app), timeout=5.0)
        await until(lambda: any(n.title == "Daemon back" for n in app._notifications))
        await until(lambda: rows(app)["backup"][2] == "‖ paused")  # a fresh snapshot
        scheduler.pause("sync")
        await until(lambda: rows(app)["sync"][2] == "‖ paused")  # and events again


async def test_the_details_follow_a_runs_log_only_while_shown(daemon):
    scheduler = daemon.host.scheduler
    release = asyncio.Event()

    async def chatty(run: Run) -> None:
        run.log("first line")
        await release.wait()
        run.log("second line")
        await asyncio.Event().wait()

    scheduler.add_job(chatty, id="chatty")
    scheduler.run_now("chatty")
    app = attached_app(daemon)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(lambda: "chatty" in rows(app))
        await select(pilot, app, "chatty")
        await pilot.press("enter")
        assert isinstance(app.screen, JobDetailScreen)
        log = app.screen.query_one("#log")
        await until(lambda: "first line" in "\n".join(log.lines))
        (client,) = daemon.server._clients
        assert list(client.follows) == [scheduler.get("chatty").active[0].run_id]
        release.set()
        await until(lambda: "second line" in "\n".join(log.lines))
        await until(lambda: "Next runs" in app.screen.query_one("#next").render().plain)
        await pilot.press("escape")
        await until(lambda: not client.follows)  # the lease ran out
        scheduler.cancel("chatty")


async def test_a_hosting_console_can_be_attached_to(tmp_path):
    path = write(tmp_path / "jobs.toml", JOBS)
    hosting = JobtuiApp(load(path), clock=VirtualClock(START), watch_file=False, grace=0,
                        serve=True)  # fmt: skip
    async with hosting.run_test(size=(140, 30)) as pilot:
        config = hosting.config
        remote = RemoteController(config.path, config.timezone, state_path=config.state_path)
        await remote.start()
        try:
            assert remote.hello is not None and remote.hello.host == "console"
            assert {job.id for job in remote.jobs()} == {"backup", "sync", "slow", "broken", "held"}
        finally:
            await remote.close()
        socket_path = hosting.server.path if hosting.server is not None else None
        assert socket_path is not None and socket_path.exists()
        await pilot.press("q")
        await until(lambda: not socket_path.exists())  # it goes with the console


def test_attach_with_nothing_running_names_the_file_and_how_to_start_one(tmp_path):
    import subprocess
    import sys

    path = write(tmp_path / "jobs.toml", JOBS)
    done = subprocess.run([sys.executable, "-m", "jobtui", "attach", str(path)],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 1
    assert f"nothing runs {path}" in done.stderr
    assert f"jobtui {path} --headless" in done.stderr


def test_attach_without_a_file_reads_jobs_toml_here(tmp_path):
    import subprocess
    import sys

    write(tmp_path / "jobs.toml", JOBS)
    done = subprocess.run([sys.executable, "-m", "jobtui", "attach"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 1 and "nothing runs jobs.toml" in done.stderr


def test_a_state_whose_owner_never_answers_is_refused_naming_it(tmp_path, monkeypatch, capsys):
    from jobtui.console import launch
    from jobtui.host import open_store

    path = write(tmp_path / "jobs.toml", JOBS)
    store = open_store(load(path))  # a jobtui that owns the state but opened no socket
    monkeypatch.setattr(launch, "STARTING_DAEMON_WAIT", 0.2)
    try:
        assert launch.open_console(path) == 1
    finally:
        store.close()
    assert f"pid {os.getpid()}" in capsys.readouterr().err


# -- the Controller over the socket, without the screens ----------------------------------
async def connected(daemon: Daemon) -> tuple[RemoteController, list]:
    config = daemon.host.config
    remote = RemoteController(config.path, config.timezone, state_path=config.state_path)
    notices: list = []
    remote.subscribe(notices.append)
    await remote.start()
    assert remote.connected.is_set()
    return remote, notices


async def test_failures_history_and_the_next_times_come_across(daemon):
    remote, notices = await connected(daemon)
    try:
        daemon.host.scheduler.run_now("broken")
        await until(lambda: any(isinstance(n, RunFailed) for n in notices))
        (failed,) = [n for n in notices if isinstance(n, RunFailed)]
        assert failed.job_id == "broken" and "3" in failed.message
        await until(lambda: remote.summary().failed_24h == 1)
        view = remote.job("broken")
        assert view is not None and view.last_run is not None
        assert view.last_run.outcome is Outcome.FAILED
        # history blocks: the screens call it from a thread worker
        runs = await asyncio.to_thread(remote.history, "broken", 10)
        assert [run["outcome"] for run in runs] == ["failed"]
        assert remote.next_times("sync", 3) == []  # asked in the background...
        await until(lambda: len(remote.next_times("sync", 3)) == 3)  # ...and answered
        assert remote.next_times("sync", 3) == daemon.host.scheduler.next_times("sync", 3)
    finally:
        await remote.close()


async def test_reload_remove_and_a_refused_action(daemon):
    remote, notices = await connected(daemon)
    try:
        assert await remote.reload() is True
        await until(lambda: any(isinstance(n, ReloadFinished) and n.ok for n in notices))
        remote.remove("backup")  # the daemon edits jobs.toml, as a hosting console does
        await until(lambda: remote.job("backup") is None)
        assert "[jobs.backup]" not in daemon.host.config.path.read_text()
        assert any(isinstance(n, JobsChanged) and "backup" in n.job_ids for n in notices)
        remote.cancel("sync")  # nothing runs: the daemon says so, and so does the console
        await until(lambda: any(isinstance(n, ActionFailed) for n in notices))
        (refused,) = [n for n in notices if isinstance(n, ActionFailed)]
        assert refused.message.startswith("cancel sync: ")
        line = remote.config_line("sync")  # read where the editor will open it: the file now
        assert line is not None
        assert daemon.host.config.path.read_text().splitlines()[line - 1] == "[jobs.sync]"
    finally:
        await remote.close()
    await until(lambda: daemon.server.client_count == 0)


def test_a_jobtui_that_refuses_this_user_is_named_and_not_hosted_over(tmp_path, capsys):
    import socket
    import threading

    from jobtui.console import launch
    from jobtui.control import paths
    from jobtui.control import protocol as p

    path = write(tmp_path / "jobs.toml", JOBS)
    where = paths.candidates(load(path).state_path)[0]
    paths.make_private_folder(where.parent)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(where))
    listener.listen(1)

    def refuse() -> None:  # what a daemon of another user answers
        connection, _ = listener.accept()
        message = "refused: this jobtui runs as uid 1000; uid 0 may not control it"
        connection.sendall(p.error_reply(None, "refused", message))
        connection.close()

    thread = threading.Thread(target=refuse)
    thread.start()
    try:
        assert launch.open_console(path) == 1
    finally:
        thread.join(10)
        listener.close()
        where.unlink()
    err = capsys.readouterr().err
    assert f"the jobtui running {path} will not talk to this one" in err and "uid 1000" in err


async def test_why_while_disconnected_says_it_could_not_be_read_not_removed(daemon):
    app = attached_app(daemon)
    async with app.run_test(size=(140, 30)) as pilot:
        await until(lambda: "attached to pid" in header(app))
        await select(pilot, app, "sync")
        await pilot.press("enter")
        await daemon.server.close()
        await until(lambda: app.controller.summary().disconnected)
        await pilot.press("w")

        def why_text() -> str:
            try:
                return str(app.screen.query_one("#why Static").render())
            except NoMatches:
                return ""

        await until(lambda: "could not be read" in why_text())
        assert "removed" not in why_text() and app.is_running
