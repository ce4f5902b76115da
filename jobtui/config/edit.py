"""Editing jobs.toml on a user's behalf (removing a job from the console), keeping the rest of
the file as it was: comments, order, formatting."""

from __future__ import annotations

from pathlib import Path

import tomlkit


def remove_job_table(path: Path, job_id: str) -> None:
    """Delete ``[jobs.ID]`` from the file, written beside it and renamed over it, as an editor
    saves: never a half-written file."""
    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    jobs = document.get("jobs")
    if jobs is None or job_id not in jobs:
        return
    del jobs[job_id]
    mode = path.stat().st_mode
    temporary = path.with_name(f".{path.name}.jobtui-edit")
    temporary.write_text(tomlkit.dumps(document), encoding="utf-8")
    temporary.chmod(mode & 0o7777)
    temporary.replace(path)
