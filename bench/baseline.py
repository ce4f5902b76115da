"""jobtui as it was at an earlier commit, for a benchmark's "before" column."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path


def extract(rev: str, folder: Path) -> None:
    """The jobtui package as it was at ``rev``, unpacked into ``folder`` (put it first on
    PYTHONPATH to import that jobtui)."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", rev, "jobtui"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)


def beside(rev: str | None, report: Callable[[Path | None], None]) -> None:
    """``report(None)`` alone, or with the jobtui of ``rev`` unpacked for it (the folder to
    put first on PYTHONPATH) when a baseline was asked for."""
    if rev is None:
        report(None)
        return
    with tempfile.TemporaryDirectory() as folder:
        extract(rev, Path(folder))
        report(Path(folder))


def child_env(where: Path | None) -> dict[str, str]:
    """The environment of a measuring subprocess: hashing fixed, and jobtui imported from
    ``where`` (a baseline unpacked by extract) when given."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if where is not None:
        env["PYTHONPATH"] = str(where)
    return env
