"""What reading jobs.toml produces: each job's validated spec and the file's settings,
which a host turns into a scheduler and a reload compares against the file's next version."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from ..engine import DataStore, Scheduler
from ..engine.job import DEFAULT_OPTIONS, OPTION_NAMES
from ..engine.triggers import TRIGGER_KEYS
from .hooks import JobHooks
from .problems import Problem
from .statedb import LEASE, describe


@dataclass(slots=True)
class JobSpec:
    """One job as jobs.toml declares it, validated and ready to add to a scheduler."""

    id: str
    target: Any  # a callable, a shell command string or an argv list
    target_text: str  # "module:function" or the command, as written
    target_key: str  # "run" or "command"
    trigger: dict[str, Any]  # {"cron": "..."} or {} for a job run only on demand
    options: dict[str, Any]
    timezone: str | None
    paused: bool
    line: int | None
    fingerprint: str = ""
    hooks: JobHooks | None = None  # read at each occurrence's end: editing them resets nothing

    def add_to(self, scheduler: Scheduler) -> None:
        scheduler.add_job(
            self.target,
            id=self.id,
            timezone=self.timezone,
            paused=self.paused,
            **self.trigger,
            **self.options,
        )

    def apply_to(self, scheduler: Scheduler, previous: JobSpec) -> None:
        """Bring the scheduler's job in line with this (changed) spec, keeping its state."""
        options = {name: getattr(DEFAULT_OPTIONS, name) for name in OPTION_NAMES}
        options.update(self.options)
        trigger: dict[str, Any] = dict.fromkeys(TRIGGER_KEYS)
        trigger.update(self.trigger)
        if self.paused != previous.paused:
            options["paused"] = self.paused
        scheduler.modify(self.id, target=self.target, timezone=self.timezone, **trigger, **options)


@dataclass(slots=True)
class Config:
    path: Path
    timezone: tzinfo
    state_path: Path
    max_concurrency: int | None
    stop_grace: float
    jobs: dict[str, JobSpec] = field(default_factory=dict)
    keep_runs: int | None = 1000  # run history kept per job
    keep_days: float | None = None  # and/or for this many days
    keymap: dict[str, str] = field(default_factory=dict)  # [console.keys]: binding id -> keys
    state_url: str | None = None  # a PostgreSQL connection string instead of state_path
    lease: float = LEASE  # with state_url: how long a host's runs stay its own unrenewed
    middleware: list[Any] = field(default_factory=list)  # read at start, not on reload
    warnings: list[Problem] = field(default_factory=list)

    @property
    def state_shown(self) -> str:
        """The state as messages name it: the file, or the database (not the path that
        stands for it, see statedb.shared_state_key)."""
        return describe(self.state_url) if self.state_url is not None else str(self.state_path)

    def make_scheduler(self, *, store: DataStore | None = None, **kwargs: Any) -> Scheduler:
        params: dict[str, Any] = {
            "timezone": self.timezone,
            "max_concurrency": self.max_concurrency,
            "stop_grace": self.stop_grace,
            "store": store,
            "middleware": self.middleware,
        }
        scheduler = Scheduler(**(params | kwargs))
        for spec in self.jobs.values():
            spec.add_to(scheduler)
        return scheduler
