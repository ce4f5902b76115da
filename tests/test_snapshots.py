"""SVG snapshots of each screen, on a frozen virtual clock so they are stable.

Regenerate after a deliberate change to the console: pytest tests/test_snapshots.py
--snapshot-update (and python -m jobtui.console.screenshots for the README's screenshots).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtui import VirtualClock
from jobtui.config import load
from jobtui.console.app import JobtuiApp

from .conftest import START
from .test_console import JOBS, select, table_rows, write
from .test_console_hosts import console, insert_runs, until

SIZE = (120, 32)


@pytest.fixture
def app(tmp_path, monkeypatch) -> JobtuiApp:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "jobs.toml", JOBS)
    return JobtuiApp(load(Path("jobs.toml")), clock=VirtualClock(START), watch_file=False, grace=0)


def test_main_screen(snap_compare, app):
    assert snap_compare(app, terminal_size=SIZE)


def test_detail_screen(snap_compare, app):
    async def open_details(pilot):
        await select(pilot, app, "backup")
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=open_details)


def test_confirm_dialog(snap_compare, app):
    async def ask(pilot):
        await select(pilot, app, "sync")
        await pilot.press("d")

    assert snap_compare(app, terminal_size=SIZE, run_before=ask)


def test_error_banner(snap_compare, app, tmp_path):
    async def break_the_file(pilot):
        write(tmp_path / "jobs.toml", JOBS.replace('cron = "30 2 * * *"', 'cron = "61 2 * * *"'))
        await pilot.press("ctrl+r")
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=break_the_file)


def test_help_screen(snap_compare, app):
    assert snap_compare(app, terminal_size=SIZE, press=["question_mark"])


@pytest.fixture
def shared_app(pg_cluster, pg_database, tmp_path) -> Iterator[JobtuiApp]:
    """The console of host web-1 of several sharing a PostgreSQL state, with web-2's run
    going on and web-3's last run of another job in the database."""
    from jobtui.store.pgstore import PostgresStore

    url = pg_cluster.url(pg_database)
    PostgresStore.open_database(url, host="setup").close()  # the schema, for the rows below
    insert_runs(url)
    app = console(tmp_path, url)
    yield app
    if app.host is not None and app.host.store is not None:
        app.host.store.close()  # the picture is taken without the console's quit


def test_main_screen_with_hosts(snap_compare, shared_app):
    async def runs_shown(pilot):
        await until(pilot, lambda: "40%" in " ".join(table_rows(shared_app).get("copy", [])))
        await select(pilot, shared_app, "copy")

    assert snap_compare(shared_app, terminal_size=(140, 16), run_before=runs_shown)
