"""Applying an edited jobs.toml to a running scheduler. A file that does not validate changes
nothing; its problems go to ``on_failed`` until the file is fixed."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from ..engine import Scheduler
from ..engine.printable import printable
from .loader import NO_FILE, UNREADABLE, load
from .problems import ConfigError, Problem
from .spec import Config

POLL = 0.5  # seconds between looks at the file: an edit is picked up within a second
GONE = (
    "is gone (deleted, or moved away): the jobs keep running as they were; "
    "the file is read again as soon as it is back"
)

log = logging.getLogger("jobtui.config")


def _stat_key(path: Path) -> tuple[int, ...] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    # A save by rename changes the inode; a chmod changes only the ctime and the mode.
    return info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino, info.st_mode


class Reloader:
    def __init__(
        self,
        scheduler: Scheduler,
        config: Config,
        *,
        on_reloaded: Callable[[Config], None] | None = None,
        on_failed: Callable[[list[Problem]], None] | None = None,
        on_job_changed: Callable[[str, str], None] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.config = config
        self.problems: list[Problem] = []  # of the last reload that failed; empty once fixed
        self.on_reloaded = on_reloaded
        self.on_failed = on_failed
        self.on_job_changed = on_job_changed
        self._seen = _stat_key(config.path)

    async def watch(self) -> None:
        """Follow the file until cancelled. Nothing the file, the disk or a listener does
        ends the watch: later edits must still be applied."""
        while True:
            await asyncio.sleep(POLL)
            try:
                key = _stat_key(self.config.path)
                if key == self._seen:
                    continue
                self._seen = key
                if key is None:
                    self._fail([Problem(str(self.config.path), None, None, GONE)])
                else:
                    await self.reload()
            except Exception:
                log.exception("following %s failed; still following it", self.config.path)

    async def reload(self) -> bool:
        self._seen = _stat_key(self.config.path)
        try:
            config = await asyncio.to_thread(load, self.config.path)
        except ConfigError as exc:
            self._fail(exc.problems)
            return False
        except OSError as exc:  # unreadable now (permissions, I/O): the old jobs go on
            why = exc.strerror or str(exc)
            message = f"{UNREADABLE}: {why}"
            self._fail([Problem(str(self.config.path), None, None, message)])
            return False
        self.apply(config)
        self.problems = []
        if self.on_reloaded is not None:
            self.on_reloaded(config)
        return True

    def _fail(self, problems: list[Problem]) -> None:
        self.problems = [p for p in problems if not p.warning]
        if self.on_failed is not None:
            self.on_failed(problems)

    def apply(self, config: Config) -> None:
        old, new = self.config.jobs, config.jobs
        for job_id in old.keys() - new.keys():
            if job_id in self.scheduler:
                self.scheduler.remove(job_id)  # a running run is allowed to finish
        for job_id, spec in new.items():
            if job_id not in self.scheduler:  # new, or removed from the console meanwhile
                spec.add_to(self.scheduler)
            elif job_id in old and spec.fingerprint != old[job_id].fingerprint:
                spec.apply_to(self.scheduler, old[job_id])
            else:
                continue
            if self.on_job_changed is not None:
                self.on_job_changed(job_id, spec.fingerprint)
        self.config = config


def failure_headline(path: Path, problems: tuple[str, ...]) -> str:
    """What happened to jobs.toml, as a banner over ``problems`` (as they are shown) says it:
    a file that cannot be read or is gone has not failed to validate, and saying so would send
    the user looking for a mistake in it."""
    shown = printable(str(path))
    said = {problem.removeprefix(f"{shown}: ") for problem in problems}
    if said & {printable(GONE), NO_FILE}:
        return f"{shown} is gone"
    if any(message.startswith(f"{UNREADABLE}: ") for message in said):
        return f"{shown} cannot be read"
    return f"{shown} does not validate"
