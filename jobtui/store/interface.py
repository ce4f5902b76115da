"""What the rest of jobtui asks of a state store: the engine's `DataStore` (claim, record,
save_job), plus what a host needs to start, stop and show history. SQLite's `Store` is one;
a second backend implements this without touching the engine or the host."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..engine import JobSnapshot
from ..engine.datastore import DataStore
from ..engine.job import JobOptions


@dataclass(frozen=True, slots=True)
class PeerRun:
    """A run of another host sharing the state, as that host last wrote it to the database.
    Times are seconds since the epoch on that host's clock; ``outcome`` is None while it runs."""

    host: str
    job_id: str
    run_id: str
    manual: bool
    attempt: int
    scheduled_ts: float
    started_ts: float | None
    finished_ts: float | None = None
    outcome: str | None = None
    progress: float | None = None
    status_message: str = ""
    reason: str = ""
    error_type: str | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class PeerRuns:
    """What other hosts are doing with this host's jobs: their runs going on, and each job's
    newest finished run where another host ran it (by job id)."""

    running: Mapping[str, tuple[PeerRun, ...]] = field(default_factory=dict)
    last: Mapping[str, PeerRun] = field(default_factory=dict)


class StateStore(DataStore, Protocol):
    @property
    def status(self) -> str:
        """Empty while writes go through; else what is wrong."""
        ...

    on_status: Callable[[str], None] | None
    # Set by the host: called on the loop with the whole picture of other hosts' runs when it
    # changed. Only a store several hosts share calls it (SQLite never does).
    on_peer_runs: Callable[[PeerRuns], None] | None
    abandoned: list[dict[str, Any]]  # runs the last owner left unfinished, found at open
    # Set by the host: runs found abandoned while it runs (another host sharing the state
    # died), called on the loop, each run by the one host that found it. A file store, which
    # one process owns, never calls it.
    on_abandoned: Callable[[list[dict[str, Any]]], None] | None

    def load_snapshots(self, fingerprints: dict[str, str]) -> dict[str, JobSnapshot]:
        """The state kept for each job; a job whose fingerprint changed starts afresh."""
        ...

    def set_fingerprint(self, job_id: str, fingerprint: str) -> None:
        """A reload changed the job's definition."""
        ...

    def note_job_event(
        self, job_id: str, kind: str, detail: str, *, at: float | None = None
    ) -> None:
        """Keep something that happened to a job outside its runs (a hook that failed)."""
        ...

    def start(self) -> None:
        """Start writing; called on the scheduler's loop before the scheduler starts."""
        ...

    def read_runs(self, job: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The newest runs, newest first, with what is queued already written. Blocking."""
        ...

    def read_context(self, job: str) -> dict[str, Any]:
        """When jobtui was up, the job's notes and kept state, for `jobtui why`. Blocking."""
        ...

    def flush(self, timeout: float = 10.0) -> bool: ...

    def close(self) -> None: ...


@runtime_checkable
class SharedStateStore(StateStore, Protocol):
    """A store several hosts share (PostgreSQL): its claims need each job's overlap limit and
    its grids a shared anchor, so the host tells it the jobs' options before it loads their
    state, and again after each reload."""

    @property
    def host(self) -> str:
        """This host's name as the other hosts (and the history) know it."""
        ...

    # Set by the host: apply what a user did on another host (action "pause", "resume",
    # "cancel" or "remove", the job's id or a run's, the reason to show).
    on_remote: Callable[[str, str, str], None] | None
    # Where every host anchors an `every` grid without a `start` (the host hands it to its
    # scheduler for jobs a reload adds or changes, as load_snapshots does at start).
    grid_anchor: float

    def plan_jobs(self, options: Mapping[str, JobOptions], config_path: str = "") -> None: ...

    def hosts_running(self, target: str) -> list[str] | None:
        """The other hosts running the job (or the run, by its id); None if unknown."""
        ...

    def announce(self, action: str, target: str, reason: str = "") -> None:
        """Tell the other hosts what a user did here ("cancel", "remove"); pause and resume
        the store sends by itself, from the scheduler's events."""
        ...
