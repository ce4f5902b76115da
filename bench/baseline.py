"""jobtui as it was at an earlier commit, for a benchmark's "before" column."""

from __future__ import annotations

import subprocess
from pathlib import Path


def extract(rev: str, folder: Path) -> None:
    """The jobtui package as it was at ``rev``, unpacked into ``folder`` (put it first on
    PYTHONPATH to import that jobtui)."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "jobtui"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
