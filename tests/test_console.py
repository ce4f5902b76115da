"""The console, driven as a user would with Textual's Pilot, on the virtual clock."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from jobtui import JobState, Outcome, VirtualClock
from jobtui.config import load
from jobtui.console.app import JobtuiApp
from jobtui.console.screens.confirm import ConfirmScreen
from jobtui.console.screens.detail import JobDetailScreen
from jobtui.console.screens.help import HelpScreen
from jobtui.console.widgets.job_table import JobTable
from jobtui.store import UnusableStatePath

from .conftest import START, Recorder

JOBS = """
# the jobs of the console tests
[scheduler]
timezone = "UTC"

[jobs.backup]            # a comment that must survive an edit
name = "Nightly [red]backup[/red]"
command = "echo backing up"
cron = "30 2 * * *"

[jobs.sync]
command = "echo synced"
every = "10m"

[jobs.slow]
command = "sleep 30"
every = "1h"

[jobs.broken]
command = "echo 'disk full' >&2; exit 3"
every = "1h"

[jobs.held]
command = "true"
every = "1h"
paused = true
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(0o644)
    return path


@pytest.fixture
def jobs_file(tmp_path) -> Path:
    return write(tmp_path / "jobs.toml", JOBS)


def make_app(path: Path, clock: VirtualClock | None = None) -> JobtuiApp:
    # grace=0: virtual time does not pass by itself, so a graceful stop would wait for ever
    return JobtuiApp(load(path), clock=clock or VirtualClock(START), watch_file=False, grace=0)


def table_rows(app: JobtuiApp) -> dict[str, list[str]]:
    return app.screen.query_one(JobTable).rows_text()


async def select(pilot, app: JobtuiApp, job_id: str) -> None:
    table = app.screen.query_one(JobTable)
    table.move_cursor(row=table.get_row_index(job_id))
    await pilot.pause()


async def test_the_table_shows_every_job_with_its_state_and_next_run(jobs_file):
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        rows = table_rows(app)
        assert list(rows) == ["sync", "broken", "slow", "backup", "held"]  # by next run, then name
        assert rows["backup"][0] == "Nightly [red]backup[/red]  backup"  # literally, and the id
        assert rows["backup"][1] == "at 02:30 every day"
        assert rows["sync"][2] == "● scheduled"
        assert rows["sync"][3] == "12:10:00  in 10m"
        assert rows["held"][2] == "‖ paused" and rows["held"][3] == "—"
        summary = app.screen.query_one("#summary").render().plain
        assert "5 jobs · 0 running · 0 failed (24h) · 1 paused" in summary
        assert "12:00:00 UTC" in summary


async def test_r_runs_the_selected_job_now(jobs_file):
    app = make_app(jobs_file)
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, app, "backup")
        await pilot.press("r")
        await recorder.wait_for(lambda: recorder.finished("backup"))
        app.refresh_screen()
        await pilot.pause()
        (run,) = recorder.finished("backup")
        assert run.manual and run.outcome is Outcome.SUCCEEDED
        assert table_rows(app)["backup"][4].startswith("✔ 0s ago")


async def test_p_pauses_and_resumes_and_the_footer_follows(jobs_file):
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, app, "sync")
        assert "pause" in {
            b.binding.action for b in app.screen.active_bindings.values() if b.enabled
        }
        await pilot.press("p")
        assert app.scheduler.get("sync").state is JobState.PAUSED
        assert table_rows(app)["sync"][2] == "‖ paused"
        footer_actions = {
            b.binding.action for b in app.screen.active_bindings.values() if b.enabled
        }
        assert "resume" in footer_actions and "pause" not in footer_actions
        await pilot.press("p")
        assert app.scheduler.get("sync").state is JobState.SCHEDULED


async def test_remove_asks_first_defaults_to_no_and_edits_jobs_toml(jobs_file):
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, app, "sync")
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # No has the focus
        assert "sync" in app.scheduler
        await pilot.press("delete", "y")
        await pilot.pause()
        assert "sync" not in app.scheduler
        assert "sync" not in table_rows(app)
    text = jobs_file.read_text()
    assert "[jobs.sync]" not in text
    assert "# a comment that must survive an edit" in text and "[jobs.backup]" in text
    assert "sync" not in load(jobs_file).jobs


async def test_x_cancels_the_running_run_after_confirming(jobs_file):
    app = make_app(jobs_file)
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, app, "slow")
        await pilot.press("r")
        await recorder.wait_for(lambda: app.scheduler.get("slow").active)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await recorder.wait_for(lambda: recorder.finished("slow"))
    assert recorder.finished("slow")[0].outcome is Outcome.CANCELLED


async def test_a_failure_pops_a_notification_naming_the_job_and_error(jobs_file):
    app = make_app(jobs_file)
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, app, "broken")
        await pilot.press("r")
        await recorder.wait_for(lambda: recorder.finished("broken"))
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert "broken: ExitStatus: exited with status 3: disk full" in messages


async def test_enter_opens_the_detail_screen_with_next_times_and_history(jobs_file):
    app = make_app(jobs_file)
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 40)) as pilot:
        await select(pilot, app, "sync")
        await pilot.press("r")
        await recorder.wait_for(lambda: recorder.finished("sync"))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, JobDetailScreen)
        screen = app.screen
        screen.refresh_view()
        await screen.workers.wait_for_complete()  # the history is read in a thread
        await pilot.pause()
        upcoming = screen.query_one("#next").render().plain
        assert "Mon 2026-01-05 12:10:00 +0000" in upcoming
        assert "synced" in "\n".join(screen.query_one("#log").lines)
        history = screen.query_one("#history")
        assert history.row_count == 1
        await pilot.press("escape")
        assert not isinstance(app.screen, JobDetailScreen)


async def test_filter_by_text_or_state_and_escape_clears(jobs_file):
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("slash", *"paused")
        await pilot.pause()
        assert list(table_rows(app)) == ["held"]
        await pilot.press("escape")
        await pilot.pause()
        assert len(table_rows(app)) == 5


async def test_an_invalid_edit_shows_a_banner_until_fixed(jobs_file):
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 30)) as pilot:
        write(jobs_file, JOBS.replace('every = "10m"', 'every = "10 minutes please"'))
        await pilot.press("ctrl+r")
        await pilot.pause()
        banner = app.screen.query_one("#banner")
        assert banner.display
        assert 'job "sync", key "every"' in banner.render().plain
        assert "sync" in app.scheduler  # the old jobs keep running
        write(jobs_file, JOBS)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not app.screen.query_one("#banner").display


async def test_help_is_built_from_the_live_bindings(jobs_file):
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.query_one("Static").render().plain
        for line in (
            "r               Run now",
            "d, delete       Remove",
            "x               Cancel run",
        ):
            assert line in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_keys_can_be_remapped_in_jobs_toml(tmp_path):
    path = write(tmp_path / "jobs.toml", JOBS + '\n[console.keys]\nrun = "R"\n')
    app = make_app(path)
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, app, "sync")
        await pilot.press("r")
        await pilot.pause()
        assert app.scheduler.running_runs() == []
        await pilot.press("R")
        await recorder.wait_for(lambda: recorder.finished("sync"))


async def test_q_quits_and_asks_first_while_runs_are_active(jobs_file):
    app = make_app(jobs_file)
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, app, "slow")
        await pilot.press("r")
        await recorder.wait_for(lambda: app.scheduler.get("slow").active)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.is_running
        await pilot.press("q", "y")
        await recorder.wait_for(lambda: recorder.finished("slow"))
        await pilot.pause()
    assert recorder.finished("slow")[0].outcome is Outcome.CANCELLED
    assert app.return_code == 0


async def test_countdowns_and_runs_follow_the_clock(jobs_file):
    clock = VirtualClock(START)
    app = make_app(jobs_file, clock)
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 30)) as pilot:
        await clock.advance(9 * 60)
        app.refresh_screen()
        await pilot.pause()
        assert table_rows(app)["sync"][3] == "12:10:00  in 1m"
        await clock.advance(60)
        await recorder.wait_for(lambda: recorder.finished("sync"))
        app.refresh_screen()
        await pilot.pause()
        assert table_rows(app)["sync"][3] == "12:20:00  in 10m"
    assert START + timedelta(minutes=10) == recorder.finished("sync")[0].scheduled_for


async def test_the_command_palette_lists_job_actions(jobs_file):
    app = make_app(jobs_file)
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"run sync now")
        await pilot.pause(0.3)  # the palette searches in a worker
        await pilot.press("enter")
        await recorder.wait_for(lambda: recorder.finished("sync"))
    assert recorder.finished("sync")[0].manual


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (160, 40)])
async def test_columns_fit_the_terminal(jobs_file, size):
    app = make_app(jobs_file)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        table = app.screen.query_one(JobTable)
        used = sum(c.width + 2 for c in table.columns if c.width)
        assert used <= size[0]
        widths = {c.key: c.width for c in table.columns}
        assert widths["job"] >= 10 and widths["state"] == 11 and widths["next"] >= 15
        header = table.render_line(0).text
        assert header.startswith(" Job") and "State" in header and len(header) == table.size.width


async def test_at_140_columns_names_ids_and_countdowns_are_whole(tmp_path):
    demo = Path(__file__).resolve().parents[1] / "jobs.toml"
    jobs = write(tmp_path / "jobs.toml", demo.read_text())
    app = make_app(jobs)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(JobTable)
        widths = {c.key: c.width for c in table.columns}
        for job in app.scheduler.jobs():
            cells = table.rows_text()[job.id]
            line = table.render_line(1 + table.get_row_index(job.id)).text
            assert f"{job.name}  {job.id}" in line  # the id a user types in `history --job`
            assert cells[3] in line  # "Jan 06 02:30  in 14h 30m" keeps its unit
        assert widths["status"] >= len("Status")  # the status message takes what is left
        assert sum(c.width + 2 for c in table.columns) + 1 == 140


async def test_s_cycles_the_sort_column(jobs_file):
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 30)) as pilot:
        await pilot.press("s")  # by name
        await pilot.pause()
        assert list(table_rows(app)) == ["broken", "held", "backup", "slow", "sync"]
        await pilot.press("s")  # by state: scheduled first, paused after
        await pilot.pause()
        assert list(table_rows(app))[-1] == "held"


async def test_j_k_g_and_G_move_the_cursor(jobs_file):
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 30)) as pilot:
        table = app.screen.query_one(JobTable)
        await pilot.press("j", "j")
        assert table.selected_job_id == "slow"
        await pilot.press("k")
        assert table.selected_job_id == "broken"
        await pilot.press("G")
        assert table.selected_job_id == "held"
        await pilot.press("g")
        assert table.selected_job_id == "sync"


async def test_l_and_h_open_the_details_at_the_log_and_the_history(jobs_file):
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, JobDetailScreen) and app.focused.id == "log"
        await pilot.press("escape", "h")
        await pilot.pause()
        assert isinstance(app.screen, JobDetailScreen) and app.focused.id == "history"


async def test_the_detail_screen_marks_a_dst_shift_in_the_next_times(tmp_path):
    path = write(
        tmp_path / "jobs.toml",
        '[scheduler]\ntimezone = "Europe/Berlin"\n'
        '[jobs.n]\ncommand = "true"\ncron = "30 2 * * *"\n',
    )
    clock = VirtualClock(START.replace(month=3, day=26))
    app = make_app(path, clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        upcoming = app.screen.query_one("#next").render().plain.splitlines()
        assert upcoming[1].startswith("Fri 2026-03-27 02:30:00 +0100")
        assert upcoming[3] == "Sun 2026-03-29 03:00:00 +0200  DST shift"


async def test_e_opens_the_editor_at_the_job_and_reloads(jobs_file, tmp_path, monkeypatch):
    editor = tmp_path / "editor.sh"
    seen = tmp_path / "editor-args"
    # A stand-in editor: records its arguments and changes the sync job's period.
    editor.write_text(
        f'#!/bin/sh\necho "$@" > {seen}\nsed -i \'s/every = "10m"/every = "20m"/\' "$2"\n'
    )
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 30)) as pilot:
        await select(pilot, app, "sync")
        await pilot.press("e")
        await pilot.pause()
        assert seen.read_text().split() == ["+10", str(jobs_file)]  # [jobs.sync] is line 10
        assert app.scheduler.get("sync").trigger.period == 1200


async def test_a_history_that_cannot_be_read_is_said_and_the_details_stay(jobs_file, monkeypatch):
    app = make_app(jobs_file)
    async with app.run_test(size=(140, 40)) as pilot:

        def unreadable(job_id: str, limit: int = 100) -> list[dict]:
            raise UnusableStatePath("/srv/.jobtui/state.db is a named pipe (FIFO)")

        monkeypatch.setattr(app.controller, "history", unreadable)
        await select(pilot, app, "sync")
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, JobDetailScreen)
        await screen.workers.wait_for_complete()
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("The run history could not be read: /srv" in m for m in messages), messages
        assert app.is_running and app.screen is screen
