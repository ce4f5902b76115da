"""What the kernel can take as a new process's command and environment. A string holding NUL
cannot be passed to execve(), nor a variable whose name holds "=": jobs.toml and add_job refuse
them, with the job and key, instead of every run failing with a traceback."""

from __future__ import annotations

from collections.abc import Mapping

from .errors import InvalidJobOption

__all__ = ["NUL_IN_COMMAND", "check_environment"]

NUL_IN_COMMAND = "holds a NUL character, which no command can hold: every run would fail"


def check_environment(env: Mapping[str, str], key: str, job_id: str | None) -> None:
    """The kernel takes each variable as one NAME=value string: a name with "=" or NUL, or a
    value with NUL, cannot be passed, and every run would fail."""
    for name, value in env.items():
        if not name or "=" in name or "\0" in name:
            raise InvalidJobOption(
                f"{name!r} cannot be an environment variable's name: a name is not empty and "
                'has no "=" and no NUL character (such as PGHOST)',
                key=key,
                job_id=job_id,
            )
        if "\0" in value:
            raise InvalidJobOption(
                f"the value of {name} holds a NUL character, which an environment variable "
                "cannot hold",
                key=key,
                job_id=job_id,
            )
