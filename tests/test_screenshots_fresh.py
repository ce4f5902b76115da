"""screenshots/ must be made from the console as it is: regenerate them with
`python -m jobtui.console.screenshots` after changing anything under jobtui/console/."""

from __future__ import annotations

from pathlib import Path

from jobtui.console.screenshots import sources_digest

MANIFEST = Path(__file__).resolve().parents[1] / "screenshots" / "MANIFEST.txt"


def test_screenshots_match_the_console_sources():
    recorded = MANIFEST.read_text()
    assert f"console sources: sha256 {sources_digest()}" in recorded, (
        "the console changed since screenshots/ was made: run python -m jobtui.console.screenshots"
    )
    for name in ("main.svg", "detail.svg", "confirm.svg", "help.svg", "attached.svg"):
        assert (MANIFEST.parent / name).stat().st_size > 1000
