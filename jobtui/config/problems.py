"""What is wrong with a jobs.toml, said so that a user can find and fix it."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.printable import printable


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem: ``jobs.toml:LINE:COL: job "backup", key "cron": message``, on one line: what
    it quotes from the file (ids, keys, values) shows control characters and newlines as
    escapes, so a hostile file cannot send sequences to the terminal or fake a second line."""

    path: str
    line: int | None
    col: int | None
    message: str
    job: str | None = None
    key: str | None = None
    warning: bool = False
    section: str | None = None  # "scheduler" or "defaults" for keys outside a job

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        about = []
        if self.section is not None and self.job is None:
            about.append(f"[{self.section}]")
        if self.job is not None:
            about.append(f'job "{self.job}"')
        if self.key is not None:
            about.append(f'key "{self.key}"')
        prefix = "warning: " if self.warning else ""
        subject = f"{', '.join(about)}: " if about else ""
        return printable(f"{where}: {prefix}{subject}{self.message}")


class ConfigError(Exception):
    """The file cannot be used; ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
