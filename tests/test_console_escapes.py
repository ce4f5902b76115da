"""Escape sequences in what jobs say (names, status, output, errors) and in file names reach the
console's screen as visible text, never as sequences the terminal would act on."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from jobtui import VirtualClock
from jobtui.config import load
from jobtui.console.app import JobtuiApp
from jobtui.console.screens.confirm import ConfirmScreen
from jobtui.console.screens.detail import JobDetailScreen
from jobtui.console.widgets.job_table import JobTable

from .conftest import START, Recorder

# The command prints, on stdout and stderr: an OSC that sets the terminal's (or tmux pane's)
# title, ESC[2J that clears the screen, and a CSI written as the one character U+009B (UTF-8
# C2 9B). TOML's \u escapes put ESC and BEL into the job's name.
JOBS = r"""
[scheduler]
timezone = "UTC"

[jobs.hostile]
name = "evil\u001b]0;owned\u0007\u001b[2J name"
every = "1h"
command = '''
printf '::status busy \033[2J \302\2332J\n'
printf 'out \033]0;pwned\007 \033[2J csi \302\23331m\tend\n'
printf 'boom \033[2J\n' >&2
exit 3
'''

[jobs.waiting]
every = "1h"
command = '''
printf '::status wait \033]0;pwned\007\n'
sleep 30
'''
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(0o644)
    return path


def make_app(path: Path) -> JobtuiApp:
    return JobtuiApp(load(path), clock=VirtualClock(START), watch_file=False, grace=0)


def terminal_output(app: JobtuiApp) -> tuple[str, str]:
    """What drawing the current screen sends to the terminal, and the text it shows there."""
    out = io.StringIO()
    console = Console(file=out, width=app.size.width, height=app.size.height,
                      force_terminal=True, color_system="truecolor", record=True)  # fmt: skip
    console.print(app.screen._compositor.render_update(full=True))
    return out.getvalue(), console.export_text(styles=False)


def assert_inert(sent: str) -> None:
    """No sequence from a job in what is sent: the app's own drawing is only SGR colours and
    cursor moves (ESC [ ... m / H), never an OSC, a clear, a BEL or a C1 control."""
    assert "\x1b]" not in sent and "\x07" not in sent
    assert "\x1b[2J" not in sent and "\x9b" not in sent


async def test_the_table_shows_a_name_and_status_with_escapes_as_text(tmp_path):
    wide = '\n[jobs.wide]\nname = "日本語 🎉 job"\ncommand = "true"\nevery = "1h"\n'
    app = make_app(write(tmp_path / "jobs.toml", JOBS + wide))
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(160, 20)) as pilot:
        app.scheduler.run_now("waiting")
        await recorder.wait_for(
            lambda: any(r.status_message for r in app.scheduler.get("waiting").active)
        )
        app.refresh_screen()
        await pilot.pause()
        rows = app.screen.query_one(JobTable).rows_text()
        assert rows["hostile"][0] == "evil\\x1b]0;owned\\x07\\x1b[2J name  hostile"
        assert rows["waiting"][6] == "wait \\x1b]0;pwned\\x07"
        assert rows["wide"][0] == "日本語 🎉 job  wide"  # CJK and emoji are text
        sent, shown = terminal_output(app)
        assert_inert(sent)
        assert "evil\\x1b]0;owned\\x07\\x1b[2J name  hostile" in shown
        assert "wait \\x1b]0;pwned\\x07" in shown
        # the columns after the name still line up: the escaped name is measured as drawn
        lines = [line for line in shown.splitlines() if "every 1h" in line]
        assert len(lines) == 3
        assert len({cell_len(line[: line.index("every 1h")]) for line in lines}) == 1


async def test_details_log_and_notification_show_escapes_as_text(tmp_path):
    app = make_app(write(tmp_path / "jobs.toml", JOBS))
    recorder = Recorder(app.scheduler)
    async with app.run_test(size=(160, 40), notifications=True) as pilot:
        app.scheduler.run_now("hostile")
        await recorder.wait_for(lambda: recorder.finished("hostile"))
        await pilot.pause()
        notices = [n.message for n in app._notifications]
        assert "hostile: ExitStatus: exited with status 3: boom \\x1b[2J" in notices
        sent, shown = terminal_output(app)  # the toast, drawn
        assert_inert(sent)
        assert "boom \\x1b[2J" in shown
        app.show_details("hostile")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, JobDetailScreen)
        screen.refresh_view()
        await screen.workers.wait_for_complete()
        await pilot.pause()
        log = list(screen.query_one("#log").lines)
        assert "out \\x1b]0;pwned\\x07 \\x1b[2J csi \\x9b31m\tend" in log  # the tab stays
        assert "boom \\x1b[2J" in log
        title = screen.query_one("#run-title").render().plain
        assert "boom \\x1b[2J" in title
        config = screen.query_one("#config").render().plain
        assert config.startswith("evil\\x1b]0;owned\\x07\\x1b[2J name  (hostile)")
        sent, shown = terminal_output(app)
        assert_inert(sent)
        assert "out \\x1b]0;pwned\\x07 \\x1b[2J csi \\x9b31m" in shown
        assert "ExitStatus: exited with status 3: boom \\x1b[2J" in shown  # the history table


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("[red]x.toml", "[red]x.toml"),
        ("a[b.toml", "a[b.toml"),
        ("t\x1b]0;owned\x07.toml", "t\\x1b]0;owned\\x07.toml"),
    ],
)
async def test_a_file_name_is_not_markup_in_the_header_and_reload_notice(tmp_path, name, shown):
    app = make_app(write(tmp_path / name, JOBS))
    async with app.run_test(size=(160, 20), notifications=True) as pilot:
        await pilot.pause()
        header = app.screen.query_one("#summary").render().plain
        assert header.startswith(f"jobtui · {shown}   2 jobs")
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert f"Reloaded {shown}" in [n.message for n in app._notifications]
        sent, text = terminal_output(app)
        assert_inert(sent)
        assert f"Reloaded {shown}" in text


async def test_the_remove_dialog_shows_the_file_name_as_text(tmp_path):
    app = make_app(write(tmp_path / "t\x1b]0;owned\x07.toml", JOBS))
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause()
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.pause()
        sent, shown = terminal_output(app)
        assert_inert(sent)
        assert "█  t\\x1b]0;owned\\x07.toml (comments and all)" in shown


async def test_the_palette_shows_names_as_text(tmp_path):
    app = make_app(write(tmp_path / "jobs.toml", JOBS.replace(" name", " [b]name[/b]")))
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"evil")
        await pilot.pause(0.3)  # the palette searches in a worker
        sent, shown = terminal_output(app)
        assert_inert(sent)
        assert "Run evil\\x1b]0;owned\\x07\\x1b[2J [b]name[/b] (hostile) now" in shown
